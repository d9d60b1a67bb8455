"""Saturating progress curves: planted curves are recovered, and the horizon has its closed form."""

from __future__ import annotations

import math

import pytest
import torch

from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.extrapolation.saturation import fit_saturation, horizon, saturation_target


def _noisy(values, sd, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.tensor(values, dtype=torch.float64)
        + sd * torch.randn(len(values), generator=g, dtype=torch.float64)
    ).tolist()


@pytest.mark.parametrize("tau", [15.0, 40.0, 120.0])
def test_a_planted_exponential_is_recovered_within_the_noise(tau):
    steps = list(range(5, 101, 5))
    clean = [0.8 - 0.7 * math.exp(-t / tau) for t in steps]
    fit = fit_saturation(steps, _noisy(clean, 0.003))
    assert fit.form == "exponential" and fit.r2 > 0.99
    assert fit.shape == pytest.approx(tau, rel=0.15)
    assert float(fit.predict(300.0)) == pytest.approx(0.8 - 0.7 * math.exp(-300 / tau), abs=0.03)


def test_a_planted_power_law_is_told_from_an_exponential():
    steps = list(range(5, 101, 5))
    clean = [0.1 + 0.05 * t**0.5 for t in steps]  # climbs for ever, ever more slowly
    fit = fit_saturation(steps, _noisy(clean, 0.002))
    assert fit.form == "power" and fit.shape == pytest.approx(0.5, abs=0.08)


def test_horizon_is_tau_log_one_over_threshold_for_an_exponential():
    """Gain over the next w steps at h: d e^(-h/tau) (1 - e^(-w/tau)); in the window: d (1 - e^(-w/tau)).
    It falls under `threshold` x the window's gain at h = tau ln(1 / threshold)."""
    tau, w = 40.0, 30.0
    steps = list(range(3, 31, 3))
    fit = fit_saturation(steps, [0.8 - 0.7 * math.exp(-t / tau) for t in steps], forms=("exponential",))
    for threshold in (0.1, 0.25, 0.5):
        expected = max(w, tau * math.log(1 / threshold))
        assert horizon(fit, w, threshold, max_multiple=20) == pytest.approx(expected, rel=0.02)
    assert horizon(fit, w, 0.01, max_multiple=4) == 4 * w  # tau ln(100) = 184 > the cap of 120


def test_a_straight_climb_gets_the_longest_jump_and_a_flat_one_none():
    steps = list(range(2, 21, 2))
    climbing = fit_saturation(steps, [0.01 * t for t in steps])
    assert horizon(climbing, 20, 0.5, max_multiple=5) == 100
    flat = fit_saturation(steps, [0.3] * len(steps))
    assert horizon(flat, 20, 0.5, max_multiple=5) == 20


@pytest.mark.parametrize(
    "steps, values, message",
    [
        ([1, 2, 3], [0.1, 0.2, 0.3], ">= 4 points"),
        ([1, 2, 3, 4], [0.1, 0.2, 0.3], "pair up"),
        ([0, 1, 2, 3], [0.1, 0.2, 0.3, 0.4], "positive"),
        ([1, 2, 3, 4], [0.1, float("nan"), 0.3, 0.4], "finite"),
    ],
)
def test_bad_input_is_refused(steps, values, message):
    with pytest.raises(AlphaRLError, match=message):
        fit_saturation(steps, values)


def test_the_saturation_target_is_a_whole_step_from_the_window_origin():
    """A window from step 20 to 40 whose reward climbs in a straight line: the longest jump, counted from the
    window's own origin; a reward target with the reward covariate; none with too few rewards."""
    steps, rewards = [25, 30, 35, 40], [0.1, 0.2, 0.3, 0.4]
    common = dict(origin=20, run_end=100, threshold=0.5, max_multiple=2.0)
    assert saturation_target(steps, rewards, covariate="step", **common)["target"] == 60.0  # 20 + 2 x 20
    by_reward = saturation_target(steps, rewards, covariate="reward", **common)
    assert by_reward["target"] > 0.4 and by_reward["why"] is None
    few = saturation_target(steps[:3], rewards[:3], covariate="step", **common)
    assert few == {"target": None, "why": "needs the reward at >= 4 snapshots"}
