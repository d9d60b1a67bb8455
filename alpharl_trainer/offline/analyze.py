"""`analyze`: how rank-1 and how linear a run's updates are, which says whether `predict` is worth trusting
on it (JSON + plots)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import torch

from alpharl_trainer import __version__
from alpharl_trainer.atomic import check_output
from alpharl_trainer.checkpoints import atomic_output_dir, check_new_output
from alpharl_trainer.extrapolation.forecast import MIN_STEPS, forecast
from alpharl_trainer.extrapolation.select import ParamSelector
from alpharl_trainer.offline.checkpoint_window import build_trajectory, finite_mean, open_window
from alpharl_trainer.offline.plots import plot_analysis

ANALYSIS_FILE = "analysis.json"


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
    check_output(out, [base, *checkpoints])
    check_new_output(out, overwrite=overwrite)
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
        if len(window.steps) >= MIN_STEPS:
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
                "mean_rank1_share_last": finite_mean([m["rank1_share"][-1] for m in rows]),
                "mean_s1_over_s2_last": finite_mean([m["s1_over_s2"][-1] for m in rows]),
                "mean_r2_linear": finite_mean([m["r2_linear"] for m in rows]),
                "mean_u_cosine": finite_mean([c for m in rows for c in m["u_cosine"]]),
            },
            "matrices": matrices,
        }
        (tmp / ANALYSIS_FILE).write_text(json.dumps(analysis, indent=2) + "\n")
        plot_analysis(analysis, tmp)
    return analysis
