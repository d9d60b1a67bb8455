"""Offline AlphaRL on anyone's checkpoints: base + window of checkpoint folders -> trajectory -> forecast.

`predict` writes a checkpoint at a target step (or reward) that loads with `from_pretrained`;
`analyze` measures how rank-1 and how linear the updates are, which says whether `predict` is worth
trusting on this run. Both stream: matrices are the outer loop and checkpoints the inner one, so
memory holds about two tensors of the model at a time plus the compact trajectory.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from alpharl_trainer import __version__
from alpharl_trainer.checkpoints import (
    DEFAULT_MAX_SHARD_BYTES,
    CheckpointReader,
    atomic_output_dir,
    checkpoint_step,
    copy_model_files,
    write_shards,
)
from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.extrapolation.apply import MODES, ParamSelector, predict_weight
from alpharl_trainer.extrapolation.forecast import Forecast, forecast
from alpharl_trainer.extrapolation.rank1 import Rank1, top_singular
from alpharl_trainer.extrapolation.trajectory import Trajectory

FITS = ("linear", "pls")
REPORT_FILE = "alpharl_report.json"
TRAJECTORY_DIR = "alpharl_trajectory"
ANALYSIS_FILE = "analysis.json"

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
    for reader in readers:
        for name in tracked:
            if name not in reader:
                raise AlphaRLError(f"tracked tensor {name} is missing in checkpoint {reader.folder}")
            if reader.shape(name) != base_reader.shape(name):
                raise AlphaRLError(
                    f"tensor {name} has shape {list(reader.shape(name))} in {reader.folder} "
                    f"but {list(base_reader.shape(name))} in the base {base}"
                )
    return Window(base_reader, readers, [int(s) for s in steps], tracked)


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


def predicted_tensors(
    window: Window, forecasts: dict[str, Forecast], mode: str, scale: float, progress: bool = True
) -> Iterator[tuple[str, torch.Tensor]]:
    """Every tensor of the last checkpoint, in its order: forecast ones predicted, the rest untouched."""
    for name in tqdm(window.last.names(), desc="writing", unit="tensor", disable=None if progress else True):
        w_last = window.last.get(name)
        if name not in forecasts:
            yield name, w_last
            continue
        w_pred = predict_weight(w_last, window.base.get(name), forecasts[name], mode=mode, scale=scale)
        if not torch.isfinite(w_pred).all():
            raise AlphaRLError(f"the forecast of tensor {name} has NaN or inf values")
        yield name, w_pred


def _mean(values: Sequence[float]) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return sum(finite) / len(finite) if finite else None


def _check_output(out: Path, inputs: Sequence[str | os.PathLike]) -> None:
    if any(out.resolve() == Path(p).resolve() for p in inputs):
        raise AlphaRLError(f"--out {out} is one of the input checkpoints; choose a new folder")


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
) -> dict:
    """Write the forecast checkpoint to `out` (with its report and trajectory); return the report."""
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
        write_shards(tmp, predicted_tensors(window, forecasts, mode, scale, progress), max_shard_bytes)
        copy_model_files(window.last.folder, tmp)
        traj.save(tmp / TRAJECTORY_DIR)
        timings["write"] = time.perf_counter() - t0
        timings["total"] = time.perf_counter() - started

        matrices = {}
        for name, fc in forecasts.items():
            s, fro = traj.singular_values(name)[-1].item(), traj.fro(name)[-1].item()
            matrices[name] = {
                "shape": list(window.base.shape(name)),
                "r2": fc.r2,
                "rank1_share": s / fro if fro > 0 else None,
                "fro_last": fro,
                "fro_forecast": fc.fro_hat,
                "residual": traj.residuals(name)[-1].item(),
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
            "frozen": frozen,
            "summary": {
                "tracked": len(window.tracked),
                "forecast": len(forecasts),
                "frozen": len(frozen),
                "mean_r2": _mean([m["r2"] for m in matrices.values()]),
                "mean_rank1_share": _mean([m["rank1_share"] for m in matrices.values()]),
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
            r2 = {n: fc.r2 for n, fc in forecast(traj, float(window.steps[-1]), fit="linear").items()}
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


def _plot_analysis(analysis: dict, folder: Path) -> None:
    """`distributions.png` (rank-1 share and R^2 over tensors) and `singular_values.png` (over steps)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrices = analysis["matrices"].values()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    shares = [m["rank1_share"][-1] for m in matrices if m["rank1_share"][-1] is not None]
    axes[0].hist(shares, bins=20, range=(0, 1))
    axes[0].set(
        title=f"rank-1 share at step {analysis['steps'][-1]}", xlabel="s1 / ||dW||_F", ylabel="tensors"
    )
    r2 = [m["r2_linear"] for m in matrices if m["r2_linear"] is not None]
    axes[1].hist(r2, bins=20, range=(min([0.0, *r2]), 1))
    axes[1].set(title="linearity of a_t = s1 u1 vs step", xlabel="R^2", ylabel="tensors")
    fig.tight_layout()
    fig.savefig(folder / "distributions.png", dpi=100)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for m in matrices:
        axes[0].plot(analysis["steps"], m["s1"], alpha=0.4, lw=1)
        axes[1].plot(
            analysis["steps"], [s if s is not None else math.nan for s in m["rank1_share"]], alpha=0.4, lw=1
        )
    axes[0].set(title="top singular value s1 of W_t - W_0", xlabel="step", ylabel="s1")
    axes[1].set(title="rank-1 share s1 / ||dW||_F", xlabel="step", ylabel="share", ylim=(0, 1))
    fig.tight_layout()
    fig.savefig(folder / "singular_values.png", dpi=100)
    plt.close(fig)


def add_window_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments `predict` and `analyze` share: the folders and which tensors to track."""
    parser.add_argument(
        "--base", required=True, metavar="DIR", help="checkpoint folder of the weights RL started from"
    )
    parser.add_argument(
        "--checkpoints",
        nargs="+",
        required=True,
        metavar="DIR",
        help="checkpoint folders of the window, in step order",
    )
    parser.add_argument(
        "--steps",
        nargs="+",
        type=int,
        metavar="N",
        help="step of each checkpoint (default: from folder names)",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (created atomically)")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    parser.add_argument(
        "--allow-pickle",
        action="store_true",
        help="read pickled .bin/.pt weights (only from a trusted source)",
    )
    track = parser.add_argument_group("tracked tensors (default: attention and MLP projections)")
    track.add_argument("--track-embeddings", action="store_true", help="also track token embeddings")
    track.add_argument("--track-lm-head", action="store_true", help="also track an untied lm_head")
    track.add_argument("--track-vectors", action="store_true", help="also track 1-D tensors (norms, biases)")
    track.add_argument("--include", metavar="REGEX", help="also track tensors whose name matches")
    track.add_argument("--exclude", metavar="REGEX", help="never track tensors whose name matches")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def fmt(value: float | None) -> str:
    """A summary number for the console; means over no tensors are None."""
    return "n/a" if value is None else f"{value:.3f}"


def window_kwargs(args: argparse.Namespace) -> dict:
    """The keyword arguments of `predict`/`analyze` that `add_window_arguments` parsed."""
    for flag, pattern in (("--include", args.include), ("--exclude", args.exclude)):
        try:
            re.compile(pattern or "")
        except re.error as err:
            raise AlphaRLError(f"{flag} {pattern!r} is not a valid regular expression: {err}") from err
    selector = ParamSelector(
        embeddings=args.track_embeddings,
        lm_head=args.track_lm_head,
        vectors=args.track_vectors,
        include=args.include,
        exclude=args.exclude,
    )
    return {
        "steps": args.steps,
        "selector": selector,
        "allow_pickle": args.allow_pickle,
        "overwrite": args.overwrite,
        "progress": not args.quiet,
    }
