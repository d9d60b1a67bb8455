"""`analyze`'s plots: rank-1 share and linearity over tensors, singular values over steps (matplotlib is
imported only here, only when plotting)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from alpharl_trainer.extrapolation.forecast import MIN_STEPS

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

LEGEND_BY_NAME_MAX = 8  # the plots name up to this many tensors in their legend, else their kinds


def _tensor_kind(name: str) -> str:
    """A tensor's kind across layers, for legends: `model.layers.3.self_attn.q_proj.weight` -> `q_proj`."""
    module, _, param = name.rpartition(".")
    kind = module.rpartition(".")[2]
    if not kind:
        return name
    return kind if param == "weight" else f"{kind}.{param}"


def _legend(names: Sequence[str]) -> dict[str, tuple[tuple[float, ...], list[str]]]:
    """Legend label -> (colour, tensors drawn in it): each tensor by name when few, else by kind and count."""
    from matplotlib import colormaps

    if len(names) <= LEGEND_BY_NAME_MAX:
        groups = {name: [name] for name in names}
    else:
        kinds: dict[str, list[str]] = {}
        for name in names:
            kinds.setdefault(_tensor_kind(name), []).append(name)
        groups = {f"{kind} ({len(group)})": group for kind, group in kinds.items()}
    palette = [*colormaps["tab10"].colors, *colormaps["tab20"].colors[1::2]]  # 10 strong, then 10 light
    return {label: (palette[i % len(palette)], group) for i, (label, group) in enumerate(groups.items())}


def plot_analysis(analysis: dict, folder: Path) -> None:
    """`distributions.png` (rank-1 share and R^2 over tensors) and `singular_values.png` (over steps)."""
    _distributions_figure(analysis).savefig(folder / "distributions.png", dpi=100)
    _singular_values_figure(analysis).savefig(folder / "singular_values.png", dpi=100)


def _figure(analysis: dict, legend: dict) -> tuple[Figure, list[Axes]]:
    """A two-panel figure titled with what was analysed, with the colour legend to the right.

    A plain `Figure`, not pyplot: writing the plots changes no global matplotlib state of the caller.
    """
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    fig = Figure(figsize=(12, 4.5), layout="constrained")
    steps = analysis["steps"]
    span = "1 checkpoint (step " if len(steps) == 1 else f"{len(steps)} checkpoints (steps {steps[0]}-"
    fig.suptitle(f"{len(analysis['matrices'])} tracked tensors, {span}{steps[-1]})")
    handles = [Line2D([], [], color=color, lw=2, label=label) for label, (color, _) in legend.items()]
    fig.legend(handles=handles, loc="outside right upper", title="tensor", fontsize="small")
    return fig, fig.subplots(1, 2)


def _stacked_hist(
    ax: Axes, legend: dict, values: dict[str, float | None], value_range: tuple[float, float]
) -> None:
    """Histogram of one value per tensor, stacked by legend group in its colour (None values left out)."""
    per_group = [[values[n] for n in names if values[n] is not None] for _, names in legend.values()]
    colors = [color for color, _ in legend.values()]
    ax.hist(per_group, bins=20, range=value_range, stacked=True, color=colors)


def _distributions_figure(analysis: dict) -> Figure:
    from matplotlib.ticker import MaxNLocator

    matrices = analysis["matrices"]
    legend = _legend(list(matrices))
    fig, (share_ax, r2_ax) = _figure(analysis, legend)
    _stacked_hist(share_ax, legend, {n: m["rank1_share"][-1] for n, m in matrices.items()}, (0, 1))
    share_ax.set(
        title=f"rank-1 share at step {analysis['steps'][-1]}", xlabel="s1 / ||W_t - W_0||_F", ylabel="tensors"
    )
    r2 = {n: m["r2_linear"] for n, m in matrices.items()}
    if any(v is not None for v in r2.values()):
        _stacked_hist(r2_ax, legend, r2, (min(0.0, *(v for v in r2.values() if v is not None)), 1))
    else:
        r2_ax.text(
            0.5,
            0.5,
            f"needs {MIN_STEPS} or more checkpoints",
            ha="center",
            va="center",
            transform=r2_ax.transAxes,
        )
    r2_ax.set(title="linearity: R^2 of the line fit of a_t = s1 u1 vs step", xlabel="R^2", ylabel="tensors")
    for ax in (share_ax, r2_ax):
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts of tensors
    return fig


def _singular_values_figure(analysis: dict) -> Figure:
    from matplotlib.ticker import MaxNLocator

    matrices, steps = analysis["matrices"], analysis["steps"]
    legend = _legend(list(matrices))
    fig, (s1_ax, share_ax) = _figure(analysis, legend)
    for color, names in legend.values():
        for name in names:
            share = [v if v is not None else math.nan for v in matrices[name]["rank1_share"]]
            style = {"color": color, "alpha": 0.7, "lw": 1, "marker": "o", "ms": 3}
            s1_ax.plot(steps, matrices[name]["s1"], **style)
            share_ax.plot(steps, share, **style)
    s1_ax.set(title="top singular value of the update W_t - W_0", xlabel="step", ylabel="s1")
    share_ax.set(
        title="rank-1 share of the update", xlabel="step", ylabel="s1 / ||W_t - W_0||_F", ylim=(0, 1.05)
    )
    for ax in (s1_ax, share_ax):
        # steps are whole numbers; round multiples (not 6, 12, 18 for checkpoints every 10 steps)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10], min_n_ticks=1))
    return fig
