"""RELEX (arXiv 2605.21468) for a model split over ranks: rank-1 *in time* of the whole-model deltas.

Stack `vec(W_t - W_0)` of every tracked matrix over the window's K snapshots (K x P); its top singular pair
`sigma u w^T` gives one time profile `c_t = sigma u_t` and one direction `w = D^T u / sigma`. The profile is
fitted by a line through the origin in the step (`W_0` is time 0) and every matrix moves to
`W_0 + c(target) w`. The K x K Gram matrix `D D^T` is a sum over matrices, so each rank adds its own matrices'
part and the ranks sum them (`gram`, then `RelexFit.from_gram`); each matrix's share of `w` needs only its
own deltas (`RelexFit.update`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch

from alpharl_trainer.errors import AlphaRLError


def gram(deltas: Sequence[torch.Tensor]) -> torch.Tensor:
    """One matrix's part of `D D^T`: the K x K inner products of its window deltas, float64."""
    flat = torch.stack([d.to(torch.float64).reshape(-1) for d in deltas])
    return flat @ flat.T


@dataclass(frozen=True)
class RelexFit:
    u: torch.Tensor
    """The top left singular vector of D (K)."""
    sigma: float
    slope: float
    """The profile `c_t = sigma u_t` fitted by a line through the origin in the step."""

    @classmethod
    def from_gram(cls, steps: Sequence[float], gram_matrix: torch.Tensor) -> RelexFit:
        """The fit from the whole model's Gram matrix of the window's deltas (steps since W_0, > 0)."""
        t = torch.tensor([float(s) for s in steps], dtype=torch.float64)
        if len(t) < 2 or gram_matrix.shape != (len(t), len(t)):
            raise AlphaRLError(f"RELEX: needs >= 2 snapshots and a {len(t)} x {len(t)} Gram matrix")
        if (t <= 0).any() or not torch.isfinite(gram_matrix).all():
            raise AlphaRLError("RELEX: steps must be positive and the deltas finite")
        values, vectors = torch.linalg.eigh(gram_matrix.to(torch.float64))
        if float(values[-1]) <= 0:
            raise AlphaRLError("RELEX: the window's updates are all zero")
        u, sigma = vectors[:, -1], float(values[-1]) ** 0.5
        profile = sigma * u
        return cls(u, sigma, float(profile @ t / (t @ t)))

    def update(self, deltas: Iterable[torch.Tensor], target: float) -> torch.Tensor:
        """One matrix's `W - W_0` at `target` (steps since W_0) from its window deltas (may be a generator),
        float64: `c(target) w` with `w = sum_t u_t dW_t / sigma`."""
        direction = None
        for u_t, d in zip(self.u.tolist(), deltas, strict=True):
            term = u_t * d.to(torch.float64)
            direction = term if direction is None else direction + term
        return (self.slope * target / self.sigma) * direction
