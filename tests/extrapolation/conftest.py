"""Planted weight trajectories with a known future: `W_t = W_0 + t a v^T + a slower second term + noise`."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from alpharl_trainer.extrapolation import Trajectory, top_singular


@dataclass
class Planted:
    w0: torch.Tensor
    a: torch.Tensor
    """(m,) rank-1 state per step: the planted rank-1 term at step t is `t a v^T`."""
    v: torch.Tensor
    second: torch.Tensor
    """A fixed rank-1 matrix that grows like sqrt(t): the update is not exactly rank-1."""
    noise: float
    seed: int

    def weight(self, step: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(self.seed * 100_003 + step)
        jitter = self.noise * torch.randn(self.w0.shape, generator=gen)
        return self.w0 + step * torch.outer(self.a, self.v) + step**0.5 * self.second + jitter

    def rank1_term(self, step: float) -> torch.Tensor:
        return step * torch.outer(self.a, self.v)


def make_planted(m: int = 48, n: int = 40, noise: float = 3e-3, seed: int = 0) -> Planted:
    gen = torch.Generator().manual_seed(seed)
    w0 = torch.randn(m, n, generator=gen) / n**0.5
    a = 0.01 * torch.randn(m, generator=gen)
    v = torch.nn.functional.normalize(torch.randn(n, generator=gen), dim=0)
    b = torch.nn.functional.normalize(torch.randn(m, generator=gen), dim=0)
    w = torch.nn.functional.normalize(torch.randn(n, generator=gen), dim=0)
    return Planted(w0, a, v, 0.1 * torch.outer(b, w), noise, seed)


def record(series: dict[str, Planted], steps: list[int], covariates: dict[str, list[float]] | None = None):
    """A Trajectory of the planted matrices at `steps`, each snapshot warm-started as a trainer would."""
    traj = Trajectory()
    for k, step in enumerate(steps):
        factors = {
            name: top_singular(p.weight(step) - p.w0, traj.last_v(name) if len(traj) else None, name=name)
            for name, p in series.items()
        }
        traj.append(step, factors, {c: xs[k] for c, xs in (covariates or {}).items()})
    return traj


@pytest.fixture
def planted():
    return make_planted


@pytest.fixture
def record_trajectory():
    return record
