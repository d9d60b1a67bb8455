"""Turn a forecast into a jump of the weights, as a `Correction` every rank can apply identically.

With `K` = the last snapshot of the window, `a_hat` = the trend at the target, `v = v_K`:

- `rank1_replace` (default): `W_K + (a_hat - a_K) v^T`. Keeps everything learned so far and moves only the
  dominant component forward.
- `rank1_only`: `W_0 + c a_hat v^T`, `c = fro_hat / ||a_hat||`: the paper's rank-1 model, the top direction
  rescaled to the forecast `||dW||_F`. Needs `W_0` wherever it is applied.
- `reference`: `W_K + a_hat v^T`, what the reference scripts do (it counts the rank-1 part already in
  `W_K` twice); for comparison only.

`shrink` scales the jump itself: `W_K + shrink * (W_pred - W_K)`. Measured on this machine, unshrunk
forecasts overshoot where accuracy saturates early and 0.25-0.5 removes most of the damage, so the
trainer's acceptance gate tries shrunk candidates too.

A `Correction` is `W <- W + pull * (W_0 - W) + left right^T`: two vectors and a scalar, so after the owner
of a matrix computes it, only `m + n + 1` numbers cross the network and every replica applies the same
float32 arithmetic. The formulas assume the weights are still `W_K` when the correction is applied.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.extrapolation.forecast import Trend
from alpharl_trainer.extrapolation.trajectory import Trajectory, TrajectoryStore

MODES = ("rank1_replace", "rank1_only", "reference")
DEFAULT_MODE = "rank1_replace"


@dataclass(frozen=True)
class Correction:
    """`W <- W + pull * (W_0 - W) + left right^T` for one matrix."""

    left: torch.Tensor
    """(m,) float32."""
    right: torch.Tensor
    """(n,) float32."""
    pull: float = 0.0
    """Weight of the pull back to `W_0`; nonzero only in `rank1_only` mode."""


def make_correction(
    traj: Trajectory, trend: Trend, target: float, mode: str = DEFAULT_MODE, shrink: float = 1.0
) -> Correction:
    """The jump of one matrix from its last snapshot to the forecast at covariate value `target`."""
    if mode not in MODES:
        raise AlphaRLError(f"unknown apply mode '{mode}' (choose from {', '.join(MODES)})")
    if not shrink >= 0:
        raise AlphaRLError(f"shrink must be >= 0, got {shrink}")
    if len(traj) == 0:
        raise AlphaRLError("cannot apply a forecast to a trajectory with no snapshots")
    a_hat, v = trend.a_at(target), traj.v[-1]
    pull = 0.0
    if mode == "rank1_replace":
        left = a_hat - traj.a[-1]
    elif mode == "reference":
        left = a_hat
    else:
        norm = float(torch.linalg.vector_norm(a_hat))
        scale = max(trend.fro_at(target), 0.0) / norm if norm > 0 else 0.0
        left, pull = scale * a_hat, 1.0
    return Correction(shrink * left, v.clone(), shrink * pull)


def make_corrections(
    store: TrajectoryStore,
    trends: dict[str, Trend],
    target: float,
    mode: str = DEFAULT_MODE,
    shrink: float = 1.0,
) -> dict[str, Correction]:
    """One correction per fitted matrix: fit once (`fit_trends`), then call this per candidate target."""
    return {
        name: make_correction(store.matrices[name], trend, target, mode, shrink)
        for name, trend in trends.items()
    }


@torch.no_grad()
def apply_correction_(w: torch.Tensor, corr: Correction, base: torch.Tensor | None = None) -> torch.Tensor:
    """Apply `corr` to `w` in place (in float32, written back in `w`'s dtype) and return `w`.

    `base` is `W_0`, needed only when `corr.pull` is nonzero. Works on parameters that require grad.
    """
    shape = (corr.left.numel(), corr.right.numel())
    if tuple(w.shape) != shape:
        raise AlphaRLError(f"correction of shape {shape} for a weight of shape {tuple(w.shape)}")
    work = w if w.dtype == torch.float32 else w.float()
    if corr.pull:
        if base is None:
            raise AlphaRLError("this correction pulls towards W_0 (mode rank1_only): pass the base weights")
        work.lerp_(base.to(work), corr.pull)
    work.addr_(corr.left.to(work), corr.right.to(work))
    if work is not w:
        w.copy_(work)
    return w
