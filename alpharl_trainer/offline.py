"""Offline AlphaRL on anyone's checkpoints: base + window of checkpoint folders -> trajectory -> forecast.

`predict` writes a checkpoint at a target step (or reward) that loads with `from_pretrained`;
`analyze` measures how rank-1 and how linear the updates are, which says whether `predict` is worth
trusting on this run. Both stream: matrices are the outer loop and checkpoints the inner one, so
memory holds about two tensors of the model at a time plus the compact trajectory.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from tqdm import tqdm

from alpharl_trainer import __version__
from alpharl_trainer.checkpoints import (
    DEFAULT_MAX_SHARD_BYTES,
    CheckpointReader,
    atomic_output_dir,
    check_model_config,
    checkpoint_step,
    copy_model_files,
    write_shards,
)
from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.extrapolation.apply import MODES, ParamSelector, predict_weight
from alpharl_trainer.extrapolation.forecast import Forecast, forecast
from alpharl_trainer.extrapolation.rank1 import Rank1, top_singular
from alpharl_trainer.extrapolation.trajectory import Trajectory

if TYPE_CHECKING:  # matplotlib is imported only when analyze plots
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

FITS = ("linear", "pls")
REPORT_FILE = "alpharl_report.json"
TRAJECTORY_DIR = "alpharl_trajectory"
ANALYSIS_FILE = "analysis.json"
LEGEND_BY_NAME_MAX = 8  # analyze's plots name up to this many tensors in their legend, else their kinds

# Called for every (matrix, checkpoint) with the float32 update and its rank-1 triplet.
DeltaHook = Callable[[str, int, torch.Tensor, Rank1], None]


@dataclass
class Window:
    """The opened base and checkpoints, their steps, and the tracked tensor names (validated)."""

    base: CheckpointReader
    checkpoints: list[CheckpointReader]
    steps: list[int]
    tracked: list[str]

    @property
    def last(self) -> CheckpointReader:
        return self.checkpoints[-1]


def open_window(
    base: str | os.PathLike,
    checkpoints: Sequence[str | os.PathLike],
    *,
    steps: Sequence[int] | None = None,
    selector: ParamSelector | None = None,
    allow_pickle: bool = False,
    min_checkpoints: int = 3,
) -> Window:
    """Open and cross-check every folder from headers only, before any heavy work."""
    if len(checkpoints) < min_checkpoints:
        raise AlphaRLError(f"need at least {min_checkpoints} checkpoints, got {len(checkpoints)}")
    if steps is None:
        steps = [checkpoint_step(c) for c in checkpoints]
    elif len(steps) != len(checkpoints):
        raise AlphaRLError(f"--steps has {len(steps)} values for {len(checkpoints)} checkpoints")
    for k in range(1, len(steps)):
        if steps[k] == steps[k - 1]:
            raise AlphaRLError(
                f"checkpoints {checkpoints[k - 1]} and {checkpoints[k]} have the same step {steps[k]}"
            )
        if steps[k] < steps[k - 1]:
            raise AlphaRLError(
                f"checkpoint {checkpoints[k]} (step {steps[k]}) comes after {checkpoints[k - 1]} "
                f"(step {steps[k - 1]}): list checkpoints in increasing step order, or pass --steps"
            )
    base_reader = CheckpointReader(base, allow_pickle=allow_pickle)
    readers = [CheckpointReader(c, allow_pickle=allow_pickle) for c in checkpoints]
    selector = selector or ParamSelector()
    tracked = [n for n in base_reader.names() if selector(n, base_reader.shape(n))]
    if not tracked:
        raise AlphaRLError(
            f"no tensor of {base} is tracked: check --include/--exclude and the --track-* flags"
        )
    _check_same_tensors(base_reader, readers[-1])
    for reader in readers:
        for name in tracked:
            if name not in reader:
                raise AlphaRLError(f"tracked tensor {name} is missing in checkpoint {reader.folder}")
            if reader.shape(name) != base_reader.shape(name):
                raise AlphaRLError(
                    f"tensor {name} has shape {list(reader.shape(name))} in {reader.folder} "
                    f"but {list(base_reader.shape(name))} in the base {base}"
                )
            if not reader.dtype(name).is_floating_point or not base_reader.dtype(name).is_floating_point:
                raise AlphaRLError(
                    f"tracked tensor {name} is stored as {reader.dtype(name)} in {reader.folder} (base: "
                    f"{base_reader.dtype(name)}): a forecast needs floating-point weights; dequantize the "
                    "checkpoints or leave the tensor out with --exclude"
                )
    return Window(base_reader, readers, [int(s) for s in steps], tracked)


def _check_same_tensors(base: CheckpointReader, last: CheckpointReader) -> None:
    """The written checkpoint is the last one with forecasts in it: a tensor only one side has would be
    silently dropped (missing from the last) or silently copied without a forecast (missing from the base)."""
    only_base = [n for n in base.names() if n not in last]
    only_last = [n for n in last.names() if n not in base]
    for names, where, other in ((only_base, base.folder, last.folder), (only_last, last.folder, base.folder)):
        if names:
            more = f" and {len(names) - 1} more" if len(names) > 1 else ""
            raise AlphaRLError(
                f"tensor {names[0]}{more} is in {where} but not in {other}: the base and the last "
                "checkpoint must hold the same tensors (the same model, saved the same way)"
            )


def build_trajectory(
    window: Window,
    covariates: dict[str, Sequence[float]] | None = None,
    *,
    on_delta: DeltaHook | None = None,
    progress: bool = True,
) -> tuple[Trajectory, list[str]]:
    """Rank-1 factors of every tracked update; returns the trajectory and the frozen tensors.

    A tensor whose update is zero at every step (frozen during training) is left out of the
    trajectory. A checkpoint whose every tracked update is zero is an error: it is the base again.
    """
    covariates = covariates or {}
    factors: list[dict[str, Rank1]] = [{} for _ in window.steps]
    frozen: list[str] = []
    for name in tqdm(
        window.tracked, desc="rank-1 factors", unit="tensor", disable=None if progress else True
    ):
        w0 = window.base.get(name).float()
        row: list[Rank1] = []
        v_prev = None
        for k, reader in enumerate(window.checkpoints):
            delta = reader.get(name).float() - w0
            r1 = top_singular(delta, v_prev, name=f"{name} in {reader.folder}")  # NaN/inf -> AlphaRLError
            if on_delta is not None:
                on_delta(name, k, delta, r1)
            if r1.s > 0:
                v_prev = r1.v
            row.append(r1)
        if all(r.s == 0 for r in row):
            frozen.append(name)
            continue
        for k, r1 in enumerate(row):
            factors[k][name] = r1
    for k, reader in enumerate(window.checkpoints):
        if not any(r.s > 0 for r in factors[k].values()):
            raise AlphaRLError(
                f"checkpoint {reader.folder} is identical to the base in every tracked tensor: no update"
            )
    traj = Trajectory()
    for k, step in enumerate(window.steps):
        traj.append(step, factors[k], {c: float(values[k]) for c, values in covariates.items()})
    return traj, frozen


LARGE_JUMP = 10.0
"""A forecast that moves a tensor more than this many times its whole window update is reported."""
ABSURD_JUMP = 1e4
"""...and more than this many times is refused: weights 1e4 times further out than training took them."""


def predicted_tensors(
    window: Window,
    forecasts: dict[str, Forecast],
    mode: str,
    scale: float,
    progress: bool = True,
    jumps: dict[str, float] | None = None,
    dtype: torch.dtype | None = None,
) -> Iterator[tuple[str, torch.Tensor]]:
    """Every tensor of the last checkpoint, in its order: forecast ones predicted, the rest untouched.

    `jumps` receives, per forecast tensor, `||W_pred - W_K|| / ||W_K - W_0||`: how far the forecast moves
    it, in units of the whole window's update. With `dtype`, every floating tensor is written in it."""
    for name in tqdm(window.last.names(), desc="writing", unit="tensor", disable=None if progress else True):
        w_last = window.last.get(name)
        if dtype is not None and w_last.is_floating_point():  # the forecast is computed and written in it
            w_last = w_last.to(dtype)
        if name not in forecasts:
            if w_last.is_floating_point() and not torch.isfinite(w_last).all():
                raise AlphaRLError(
                    f"tensor {name} of {window.last.folder} has NaN or inf values (it is copied, not "
                    "forecast): the last checkpoint is broken"
                )
            yield name, w_last
            continue
        w_base = window.base.get(name)
        w_pred = predict_weight(w_last, w_base, forecasts[name], mode=mode, scale=scale)
        if not torch.isfinite(w_pred).all():
            raise AlphaRLError(f"the forecast of tensor {name} has NaN or inf values")
        window_update = float((w_last.float() - w_base.float()).norm())
        jump = float((w_pred.float() - w_last.float()).norm()) / window_update if window_update > 0 else 0.0
        if jump > ABSURD_JUMP:
            raise AlphaRLError(
                f"the forecast moves {name} {jump:.3g} times its whole window update: the target is far "
                "outside what the window can predict; choose a nearer target or a smaller --scale"
            )
        if jumps is not None:
            jumps[name] = jump
        yield name, w_pred


def _set_config_dtype(path: Path, dtype: str) -> None:
    """Record the written dtype in config.json (`dtype`, and `torch_dtype` where the file uses that name),
    so `from_pretrained(dtype="auto")` loads the weights as written."""
    config = json.loads(path.read_text())
    config["dtype"] = dtype
    if "torch_dtype" in config:
        config["torch_dtype"] = dtype
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def _mean(values: Sequence[float]) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return sum(finite) / len(finite) if finite else None


def _check_output(out: Path, inputs: Sequence[str | os.PathLike]) -> None:
    """Refuse an output folder that is, contains or lies inside an input, or the working directory: with
    --overwrite, replacing it would delete the inputs (or write the result into one of them)."""
    target = out.resolve()
    if target == Path.cwd().resolve():
        raise AlphaRLError(f"--out {out} is the current directory; choose a new folder")
    for given in inputs:
        source = Path(given).resolve()
        if target == source:
            raise AlphaRLError(f"--out {out} is the input {given}; choose a new folder")
        if target in source.parents:
            raise AlphaRLError(f"--out {out} contains the input {given}: replacing it would delete it")
        if source in target.parents:
            raise AlphaRLError(f"--out {out} lies inside the input {given}; choose a folder outside it")


def predict(
    base: str | os.PathLike,
    checkpoints: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    target_step: int | None = None,
    target_reward: float | None = None,
    covariate: str = "step",
    rewards: Sequence[float] | None = None,
    fit: str = "linear",
    mode: str = "rank1_replace",
    scale: float = 1.0,
    steps: Sequence[int] | None = None,
    selector: ParamSelector | None = None,
    allow_pickle: bool = False,
    overwrite: bool = False,
    max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
    progress: bool = True,
    dtype: str | None = None,
) -> dict:
    """Write the forecast checkpoint to `out` (with its report and trajectory); return the report.

    `dtype` ('float32', 'bfloat16', 'float16'): write every floating tensor in it, and say so in the copied
    config.json; None keeps the last checkpoint's."""
    started = time.perf_counter()
    out = Path(out)
    _check_output(out, [base, *checkpoints])
    if fit not in FITS:
        raise AlphaRLError(f"unknown fit {fit!r}; choose one of {', '.join(FITS)}")
    if mode not in MODES:
        raise AlphaRLError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    if rewards is not None and len(rewards) != len(checkpoints):
        raise AlphaRLError(f"--rewards has {len(rewards)} values for {len(checkpoints)} checkpoints")
    if covariate == "reward":
        if rewards is None or target_reward is None:
            raise AlphaRLError("--covariate reward needs --rewards (one per checkpoint) and --target-reward")
        target = float(target_reward)
    elif covariate == "step":
        if target_step is None:
            raise AlphaRLError("--target-step is required with --covariate step")
        target = float(target_step)
    else:
        raise AlphaRLError(f"unknown covariate {covariate!r}; choose step or reward")

    window = open_window(base, checkpoints, steps=steps, selector=selector, allow_pickle=allow_pickle)
    check_model_config(window.last.folder)
    if target_step is not None and target_step <= window.steps[-1]:
        raise AlphaRLError(
            f"--target-step {target_step} is not after the last checkpoint's step {window.steps[-1]}"
        )
    timings = {}
    with atomic_output_dir(out, overwrite=overwrite) as tmp:
        t0 = time.perf_counter()
        traj, frozen = build_trajectory(
            window, {"reward": rewards} if rewards is not None else None, progress=progress
        )
        timings["trajectory"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        forecasts = forecast(traj, target, fit=fit, covariate=covariate)
        timings["forecast"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        jumps: dict[str, float] = {}
        torch_dtype = getattr(torch, dtype) if dtype is not None else None
        tensors = predicted_tensors(window, forecasts, mode, scale, progress, jumps, torch_dtype)
        write_shards(tmp, tensors, max_shard_bytes)
        copy_model_files(window.last.folder, tmp)
        if dtype is not None:
            _set_config_dtype(tmp / "config.json", dtype)
        traj.save(tmp / TRAJECTORY_DIR)
        timings["write"] = time.perf_counter() - t0
        timings["total"] = time.perf_counter() - started

        matrices = {}
        for name, fc in forecasts.items():
            s, fro = traj.singular_values(name)[-1].item(), traj.fro(name)[-1].item()
            matrices[name] = {
                "shape": list(window.base.shape(name)),
                "fit_r2": fc.fit_r2,
                "reward_r2": fc.reward_r2,
                "rank1_share": s / fro if fro > 0 else None,
                "fro_last": fro,
                "fro_forecast": fc.fro_hat,
                "residual": traj.residuals(name)[-1].item(),
                "jump": jumps.get(name),
            }
        report = {
            "version": __version__,
            "base": str(base),
            "checkpoints": [str(c) for c in checkpoints],
            "steps": window.steps,
            "covariates": traj.covariates,
            "target": {"covariate": covariate, "value": target, "step": target_step},
            "fit": fit,
            "mode": mode,
            "scale": scale,
            "dtype": dtype or "as the last checkpoint",
            "frozen": frozen,
            "summary": {
                "tracked": len(window.tracked),
                "forecast": len(forecasts),
                "frozen": len(frozen),
                "mean_fit_r2": _mean([m["fit_r2"] for m in matrices.values()]),
                "mean_reward_r2": _mean([m["reward_r2"] for m in matrices.values()]),
                "mean_rank1_share": _mean([m["rank1_share"] for m in matrices.values()]),
                "max_jump": max(jumps.values(), default=0.0),
                "large_jumps": sorted(n for n, j in jumps.items() if j > LARGE_JUMP),
            },
            "timings_s": timings,
            "matrices": matrices,
        }
        (tmp / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n")
    return report


def second_singular_value(delta: torch.Tensor) -> float:
    """s2 of an update, accurately: exact for small matrices, a well-iterated randomized SVD otherwise."""
    if delta.ndim < 2 or min(delta.shape) < 2:
        return 0.0
    if min(delta.shape) <= 64:
        return torch.linalg.svdvals(delta)[1].item()
    _, s, _ = torch.svd_lowrank(delta, q=6, niter=8)
    return s[1].item()


def analyze(
    base: str | os.PathLike,
    checkpoints: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    steps: Sequence[int] | None = None,
    selector: ParamSelector | None = None,
    allow_pickle: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> dict:
    """Write `analysis.json` and plots of rank-1 dominance and linearity to `out`; return the analysis.

    Per tensor and step: rank-1 share `s1/||dW||_F` and `s1/s2`; per tensor: R^2 of the straight-line
    fit of `a_t = s1 u1` against the step (needs 3 checkpoints) and the cosine of consecutive aligned
    `u` (needs 2).
    """
    out = Path(out)
    _check_output(out, [base, *checkpoints])
    window = open_window(
        base, checkpoints, steps=steps, selector=selector, allow_pickle=allow_pickle, min_checkpoints=1
    )
    s2: dict[str, list[float]] = {}
    with atomic_output_dir(out, overwrite=overwrite) as tmp:
        traj, frozen = build_trajectory(
            window,
            on_delta=lambda name, k, delta, r1: s2.setdefault(name, []).append(second_singular_value(delta)),
            progress=progress,
        )
        r2 = {}
        if len(window.steps) >= 3:
            r2 = {n: fc.fit_r2 for n, fc in forecast(traj, float(window.steps[-1]), fit="linear").items()}
        matrices = {}
        for name in traj.names:
            s1, fro = traj.singular_values(name).tolist(), traj.fro(name).tolist()
            u = torch.nn.functional.normalize(traj.state(name), dim=1)
            matrices[name] = {
                "shape": list(window.base.shape(name)),
                "s1": s1,
                "fro": fro,
                "rank1_share": [s / f if f > 0 else None for s, f in zip(s1, fro, strict=True)],
                "s1_over_s2": [s / t if t > 0 else None for s, t in zip(s1, s2[name], strict=True)],
                "r2_linear": r2.get(name),
                "u_cosine": (u[1:] * u[:-1]).sum(dim=1).tolist(),
            }
        rows = list(matrices.values())
        analysis = {
            "version": __version__,
            "base": str(base),
            "checkpoints": [str(c) for c in checkpoints],
            "steps": window.steps,
            "frozen": frozen,
            "summary": {
                "tracked": len(window.tracked),
                "frozen": len(frozen),
                "mean_rank1_share_last": _mean([m["rank1_share"][-1] for m in rows]),
                "mean_s1_over_s2_last": _mean([m["s1_over_s2"][-1] for m in rows]),
                "mean_r2_linear": _mean([m["r2_linear"] for m in rows]),
                "mean_u_cosine": _mean([c for m in rows for c in m["u_cosine"]]),
            },
            "matrices": matrices,
        }
        (tmp / ANALYSIS_FILE).write_text(json.dumps(analysis, indent=2) + "\n")
        _plot_analysis(analysis, tmp)
    return analysis


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


def _plot_analysis(analysis: dict, folder: Path) -> None:
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
            0.5, 0.5, "needs 3 or more checkpoints", ha="center", va="center", transform=r2_ax.transAxes
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
