"""Denoised fixed-basis forecast of one matrix's update `W_t - W_0`, from the window's updates.

The rank-1 forecast fits each coordinate of `a_t = s_t u_t` separately, while `v_t` rotates from snapshot to
snapshot; pushed several windows ahead, that amplifies noise and misses the direction the update turns to.
Here the basis is fixed at the window end and the trend is shared:

1. `V_K`: the top-`k` right singular vectors of the window-end update `dW_K`;
2. `b_t = dW_t V_K` for every update of the window (an `m x k` path in a fixed subspace);
3. the path, flattened and stacked over time, is approximated by one time profile times one direction,
   `b_t ~ p_t q` (its top singular pair: a rank-1-in-time fit, as RELEX does for whole-model deltas): the
   noise of single snapshots averages out;
4. the profile is extrapolated to the target step, by a line through the origin (`dW_0 = 0`) or by a
   saturating curve (`saturation.py`), and `dW_hat = dW_K + (p_hat q - b_K) V_K^T`: everything outside the
   subspace is kept as learned, the subspace moves along the shared trend.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch

from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.extrapolation.saturation import MIN_POINTS, SaturationFit, fit_saturation

PROFILES = ("linear", "saturating")


def _right_basis(delta: torch.Tensor, k: int) -> torch.Tensor:
    """The top-`k` right singular vectors of `delta` (n x k)."""
    if min(delta.shape) > 512:  # large matrices: a randomized range finder is exact enough for the top k
        _, _, v = torch.svd_lowrank(delta, q=min(k + 8, min(delta.shape)), niter=6)
        return v[:, :k]
    return torch.linalg.svd(delta, full_matrices=False).Vh[:k].T


@dataclass(frozen=True)
class FixedBasisFit:
    """What a window says about one matrix's update in its fixed basis; `update` evaluates it at any target
    (the fit does not depend on the target, so one fit serves every candidate step)."""

    basis: torch.Tensor
    """`V_K`, n x k."""
    last_path: torch.Tensor
    """`b_K = dW_K V_K`, m x k."""
    direction: torch.Tensor
    """`q`, the path's shared direction (m * k)."""
    slope: float | None
    """The linear profile's slope through the origin (None for a saturating profile)."""
    saturation: SaturationFit | None
    """The saturating profile (None for a linear one)."""

    def update(self, last: torch.Tensor, target: float) -> torch.Tensor:
        """`dW_hat = dW_K + (p_hat q - b_K) V_K^T` at step `target`, from `last` = dW_K (float64, m x n)."""
        if self.slope is not None:
            at_target = self.slope * target
        else:
            at_target = float(self.saturation.predict(target))
        moved = (at_target * self.direction).reshape(self.last_path.shape) - self.last_path
        out = last + moved @ self.basis.T
        if not torch.isfinite(out).all():
            raise AlphaRLError("fixed-basis forecast: the forecast has NaN or inf values")
        return out


def fit_fixed_basis(
    steps: Sequence[float], deltas: Sequence[torch.Tensor], k: int = 1, profile: str = "linear"
) -> FixedBasisFit:
    """The fixed-basis fit of the window's updates `deltas[i] = W_{steps[i]} - W_0` (2-D, the window's last
    one at `steps[-1]`), in float64 arithmetic."""
    if len(steps) != len(deltas) or len(steps) < 2:
        raise AlphaRLError(f"fixed-basis forecast: needs >= 2 (step, update) pairs, got {len(steps)}")
    if profile not in PROFILES:
        raise AlphaRLError(f"fixed-basis forecast: profile must be one of {PROFILES}, got {profile!r}")
    if profile == "saturating" and len(steps) < MIN_POINTS:
        raise AlphaRLError(f"fixed-basis forecast: a saturating profile needs >= {MIN_POINTS} updates")
    shape = deltas[-1].shape
    if any(d.shape != shape or d.ndim != 2 for d in deltas):
        raise AlphaRLError(f"fixed-basis forecast: every update must be one 2-D shape, the last is {shape}")
    if not 1 <= k <= min(shape):
        raise AlphaRLError(f"fixed-basis forecast: k must be in 1..{min(shape)}, got {k}")
    t = torch.tensor([float(s) for s in steps], dtype=torch.float64)
    if (t <= 0).any() or (t[1:] <= t[:-1]).any():
        raise AlphaRLError("fixed-basis forecast: steps must be positive and increasing")
    last = deltas[-1].to(torch.float64)
    if not torch.isfinite(last).all():
        raise AlphaRLError("fixed-basis forecast: the window-end update has NaN or inf values")
    basis = _right_basis(last, k)
    path = torch.stack([d.to(torch.float64) @ basis for d in deltas])  # (time, m, k)
    u, s, vh = torch.linalg.svd(path.reshape(len(t), -1), full_matrices=False)
    profile_t, direction = u[:, 0] * s[0], vh[0]
    if profile_t[-1] < 0:  # one sign convention: the profile ends positive
        profile_t, direction = -profile_t, -direction
    if profile == "linear":
        return FixedBasisFit(basis, path[-1], direction, float((t * profile_t).sum() / (t * t).sum()), None)
    return FixedBasisFit(basis, path[-1], direction, None, fit_saturation(t.tolist(), profile_t.tolist()))


def fixed_basis_forecast(
    steps: Sequence[float], deltas: Sequence[torch.Tensor], target: float, k: int = 1, profile: str = "linear"
) -> torch.Tensor:
    """The update `W - W_0` predicted at step `target` from `deltas[i] = W_{steps[i]} - W_0` (2-D, the
    window's last one at `steps[-1]`), in float64 arithmetic, returned in the deltas' dtype."""
    fit = fit_fixed_basis(steps, deltas, k, profile)
    return fit.update(deltas[-1].to(torch.float64), target).to(deltas[-1].dtype)


def fixed_basis_weight(
    steps: Sequence[float],
    base: torch.Tensor,
    weights: Iterable[torch.Tensor],
    target: float,
    k: int = 1,
    profile: str = "linear",
) -> torch.Tensor:
    """`W_0 + dW_hat` of one tensor of any shape (rows x the rest flattened), from its weights at `steps`
    (`weights` may be a generator: one read at a time); `k` capped at the update's rank bound; float64."""
    w0 = base.to(torch.float64)
    deltas = [(w.to(torch.float64) - w0).reshape(w0.shape[0], -1) for w in weights]
    update = fixed_basis_forecast(steps, deltas, target, k=min(k, *deltas[-1].shape), profile=profile)
    return w0 + update.reshape(w0.shape)
