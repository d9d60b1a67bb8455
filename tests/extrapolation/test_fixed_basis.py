"""The fixed-basis forecast on planted trajectories: a fixed rank-k update with a known time profile."""

from __future__ import annotations

import math

import pytest
import torch

from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.extrapolation.fixed_basis import fixed_basis_forecast

STEPS = [5.0, 10.0, 15.0, 20.0, 25.0, 30.0]


def _planted(profile, k=2, noise=0.0, shape=(40, 24), seed=0):
    """Updates `profile(t) A B^T + noise`, with A B^T of rank k and unit Frobenius norm."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(shape[0], k, generator=g, dtype=torch.float64)
    b = torch.linalg.qr(torch.randn(shape[1], k, generator=g, dtype=torch.float64)).Q
    direction = a @ b.T
    direction /= direction.norm()
    deltas = [
        profile(t) * direction + noise * torch.randn(shape, generator=g, dtype=torch.float64) for t in STEPS
    ]
    return direction, deltas


def _rel(x, y):
    return float((x - y).norm() / y.norm())


def test_a_saturating_profile_is_recovered_and_a_line_overshoots():
    tau = 20.0

    def g(t):
        return 1 - math.exp(-t / tau)

    direction, deltas = _planted(g, noise=1e-4)
    truth = g(90.0) * direction
    saturating = fixed_basis_forecast(STEPS, deltas, 90.0, k=2, profile="saturating")
    linear = fixed_basis_forecast(STEPS, deltas, 90.0, k=2, profile="linear")
    assert _rel(saturating, truth) < 0.03
    assert _rel(linear, truth) > 0.5  # the straight line triples a curve that has nearly stopped


def test_a_linear_profile_is_recovered_and_snapshot_noise_averages_out():
    """On a straight climb with independent noise per snapshot, the shared trend beats scaling the last
    update up to the target (which carries its one snapshot's noise times target / t_K)."""
    errors = {"fixed": [], "scaled": []}
    for seed in range(5):
        direction, deltas = _planted(lambda t: 0.02 * t, noise=0.002, seed=seed)
        truth = 0.02 * 120 * direction
        errors["fixed"].append(_rel(fixed_basis_forecast(STEPS, deltas, 120.0, k=2), truth))
        errors["scaled"].append(_rel(deltas[-1] * 120.0 / STEPS[-1], truth))
    assert max(errors["fixed"]) < 0.5 * min(errors["scaled"])


def test_what_lies_outside_the_basis_is_kept_as_learned():
    direction, deltas = _planted(lambda t: 0.02 * t, k=1)
    other = torch.zeros_like(direction)
    other[0, :] = 0.05  # a component only the window end has, outside the top-1 subspace's trend
    deltas[-1] = deltas[-1] + other
    out = fixed_basis_forecast(STEPS, deltas, 60.0, k=1)
    basis = torch.linalg.svd(deltas[-1], full_matrices=False).Vh[:1].T
    outside = lambda x: x - (x @ basis) @ basis.T  # noqa: E731
    torch.testing.assert_close(outside(out), outside(deltas[-1]))
    assert out.dtype == deltas[-1].dtype


@pytest.mark.parametrize(
    "steps, k, profile, message",
    [
        ([30.0], 1, "linear", ">= 2"),
        ([5.0, 10.0, 15.0, 20.0, 25.0, 25.0], 1, "linear", "increasing"),
        (STEPS, 0, "linear", "k must be"),
        (STEPS, 1, "cubic", "profile must be"),
        (STEPS[:3], 1, "saturating", ">= 4"),
    ],
)
def test_bad_input_is_refused(steps, k, profile, message):
    _, deltas = _planted(lambda t: t)
    with pytest.raises(AlphaRLError, match=message):
        fixed_basis_forecast(steps, deltas[-len(steps) :], 60.0, k=k, profile=profile)
