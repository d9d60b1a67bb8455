"""The suite's figures, one PNG each, one panel per run: accuracy vs step with every prediction at its
cost; each method's paired difference to the truncated run with its 95% interval (one panel per cell of
runs: over several seeds the seed-level t-interval, with one the problem-level bootstrap); per-matrix R^2
of the step-linear fit per window; rank-1 share of the update over training; and the diagnostic scans
(held-out accuracy along the forecast and along the true remaining update)."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from alpharl_trainer.reproduce.comparisons import compare  # noqa: E402
from alpharl_trainer.reproduce.registry import METHODS, PAIRED_AT, reference_of  # noqa: E402

MARKERS = {
    "alpharl_paper": ("tab:red", "v"),
    "step_linear": ("tab:orange", "^"),
    "expo": ("tab:purple", "s"),
    "first_update": ("tab:brown", "D"),
    "lawa": ("tab:gray", "P"),
    "default": ("tab:green", "o"),
    "default+ft": ("tab:olive", "*"),
    "default+jumps": ("tab:pink", "h"),
    "oracle_rank1": ("tab:cyan", "x"),
}


def _grid(n: int, width: float = 4.5, height: float = 3.4):
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    return fig, list(axes.flat[:n])


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def accuracy_vs_step(results: list[dict], path: Path) -> None:
    fig, axes = _grid(len(results))
    for ax, res in zip(axes, results, strict=True):
        ax.plot(
            [c["step"] for c in res["curve"]],
            [c["greedy"] for c in res["curve"]],
            "k-",
            lw=1.2,
            label="full run",
        )
        for method, (color, marker) in MARKERS.items():
            rows = [r for r in res["rows"] if r["method"] == method and "greedy" in r]
            ax.scatter(
                [r["cost"] for r in rows],
                [r["greedy"] for r in rows],
                c=color,
                marker=marker,
                s=28,
                label=method,
                zorder=3,
            )
        ax.set(title=res["run"], xlabel="RL steps spent (cost)", ylabel="test accuracy (greedy)")
    axes[0].legend(fontsize=6, loc="best")
    _save(fig, path)


def r2_heatmap(results: list[dict], path: Path) -> None:
    fig, axes = _grid(len(results), width=3.6, height=6.0)
    for ax, res in zip(axes, results, strict=True):
        r2 = res["r2"]
        values = [list(col) for col in zip(*r2["values"], strict=True)]  # matrices x windows
        image = ax.imshow(values, aspect="auto", vmin=0, vmax=1, cmap="viridis")
        ax.set_xticks(range(len(r2["windows"])), [str(w) for w in r2["windows"]])
        ax.set_yticks(range(len(r2["names"])), [_short(n) for n in r2["names"]], fontsize=5)
        ax.set(title=res["run"], xlabel="window end (step)")
        fig.colorbar(image, ax=ax, fraction=0.05, label="R^2 of a_t vs step")
    _save(fig, path)


def _short(name: str) -> str:
    return (
        name.removeprefix("model.").replace("layers.", "L").replace(".weight", "").replace("self_attn.", "")
    )


def rank1_share(results: list[dict], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4))
    for res in results:
        share = res["rank1_share"]
        (line,) = ax.plot(share["steps"], share["mean"], lw=1.2, label=res["run"])
        ax.fill_between(share["steps"], share["min"], share["max"], color=line.get_color(), alpha=0.08)
    ax.set(
        xlabel="step",
        ylabel="s1 / ||W_t - W_0||_F",
        ylim=(0, 1),
        title="rank-1 share of the update (mean over matrices, band: min-max)",
    )
    ax.legend(fontsize=6)
    _save(fig, path)


def scans(results: list[dict], path: Path) -> None:
    fig, axes = _grid(len(results))
    for ax, res in zip(axes, results, strict=True):
        ends = sorted({s["window_step"] for s in res["scans"]})
        colors = plt.cm.viridis([i / max(1, len(ends) - 1) for i in range(len(ends))])
        for end, color in zip(ends, colors, strict=True):
            for direction, style in (("forecast", "-"), ("true", "--")):
                pts = [s for s in res["scans"] if s["window_step"] == end and s["direction"] == direction]
                ax.plot(
                    [p["scale"] for p in pts],
                    [p["heldout"] for p in pts],
                    style,
                    color=color,
                    label=f"w={end} {direction}",
                )
        ax.axhline(res["heldout"]["full"], color="k", lw=0.8, ls=":", label="full run")
        ax.set(title=res["run"], xlabel="scale s: W_K + s (target - W_K)", ylabel="held-out accuracy")
    axes[0].legend(fontsize=5, ncol=2)
    _save(fig, path)


def paired_differences(results: list[dict], path: Path) -> None:
    """Per cell (task, loss, regime), each method's difference to the truncated run at the same cost over the
    cell's seeds: the mean and, with several seeds, the seed-level 95% t-interval (seeds the unit), with one
    the problem-level 95% bootstrap (conditional on the seed); one colour per window."""
    cells = defaultdict(list)
    for res in results:
        cells[(res["task"], res["loss"], res["regime"])].append(res)
    methods = [m for m in METHODS if m != "truncated" and PAIRED_AT.get(m) != m]
    fig, axes = _grid(len(cells), width=6.0)
    for ax, ((task, loss, regime), group) in zip(axes, cells.items(), strict=True):
        ends = sorted({r["window_step"] for r in group[0]["rows"]})
        for j, end in enumerate(ends):
            xs, ys, lows, highs = [], [], [], []
            for i, method in enumerate(methods):
                c = compare(group, f"{reference_of(method)}@{end}", f"{method}@{end}")
                if c is None:
                    continue
                d = c.problem if c.seeds is None else c.seeds
                xs.append(i + (j - (len(ends) - 1) / 2) * 0.18)
                ys.append(d.diff)
                lows.append(d.diff - d.low)
                highs.append(d.high - d.diff)
            share = end / group[0]["steps"]
            ax.errorbar(xs, ys, yerr=[lows, highs], fmt="o", ms=3, capsize=2, label=f"w={share:.0%}")
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xticks(range(len(methods)), methods, rotation=60, ha="right", fontsize=6)
        ax.set_ylabel("acc - truncated (paired)", fontsize=7)
        kind = "seed-level t" if len(group) > 1 else "problem-level"
        ax.set_title(f"{task}/{loss}/{regime}, {len(group)} seed(s), {kind} 95%", fontsize=8)
        ax.legend(fontsize=6)
    _save(fig, path)


def write_all(results: list[dict], folder: Path) -> list[str]:
    files = {
        "accuracy_vs_step.png": accuracy_vs_step,
        "paired_differences.png": paired_differences,
        "r2_heatmap.png": r2_heatmap,
        "rank1_share.png": rank1_share,
        "scans.png": scans,
    }
    for name, plot in files.items():
        plot(results, folder / name)
    return list(files)
