"""Paired statistics on answers known in advance: the gate's SE, the normal and bootstrap intervals, McNemar,
pooling over seeds, the seed-level t-interval."""

from __future__ import annotations

import math

import numpy as np
import pytest

from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.stats import mcnemar_p, paired, paired_normal, paired_se, pooled, seed_interval


def test_paired_se_is_the_standard_error_of_the_per_prompt_difference():
    current = [0.0, 0.0, 1.0, 1.0, 0.5, math.nan]
    candidate = [1.0, 0.0, 1.0, 0.0, 1.0, 1.0]  # the NaN prompt is left out: diffs 1, 0, 0, -1, 0.5
    diffs = [1.0, 0.0, 0.0, -1.0, 0.5]
    mean = sum(diffs) / 5
    expected = math.sqrt(sum((d - mean) ** 2 for d in diffs) / 4 / 5)
    assert paired_se(current, candidate) == pytest.approx(expected)
    assert paired_se([1.0], [0.0]) == math.inf  # one prompt: no spread to measure


def test_paired_normal_known_answer():
    # d = [0, -1, 1, 1]: mean 0.25, sample variance 11/12, half-width 1.96 * sqrt(11/12 / 4)
    diff = paired_normal([1, 1, 0, 0], [1, 0, 1, 1])
    half = 1.96 * math.sqrt(11 / 12 / 4)
    assert diff.diff == pytest.approx(0.25)
    assert (diff.low, diff.high) == pytest.approx((0.25 - half, 0.25 + half))
    assert diff.verdict == "tie" and diff.interval == "95% normal interval"


def test_pairing_is_what_narrows_the_normal_interval():
    """Two models that differ on 30 of 1,000 problems, all in b's favour: a clear win when paired, although
    the unpaired binomial errors (~0.016 each) would call +0.03 noise."""
    a = [True] * 500 + [False] * 500
    b = [True] * 530 + [False] * 470
    diff = paired_normal(a, b)
    assert diff.diff == pytest.approx(0.03) and diff.verdict == "better"
    assert paired_normal(b, a).verdict == "worse"
    same = paired_normal(a, a)
    assert (same.diff, same.low, same.high) == (0, 0, 0)
    assert paired_normal([1], [0]).low == -1.0  # one problem: a zero-width interval


def test_mcnemar_exact_known_values():
    a = [0] * 10 + [1] * 5
    assert mcnemar_p(a, [1] * 15) == pytest.approx(2 * 0.5**10)  # 10 discordant, all one way
    assert mcnemar_p([0, 1, 0, 1], [1, 0, 1, 0]) == 1.0  # balanced
    assert mcnemar_p([1, 0], [1, 0]) == 1.0  # no discordant pair
    # 3 vs 9 discordant: 2 * P(X <= 3), X ~ Bin(12, 1/2) = 2 * 299 / 4096
    a, b = [1] * 3 + [0] * 9, [0] * 3 + [1] * 9
    assert mcnemar_p(a, b) == pytest.approx(2 * 299 / 4096)


def test_paired_interval_is_the_bootstrap_of_the_mean_difference_and_reproduces():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 2, 2000).astype(float)
    b = a.copy()
    flip = rng.choice(2000, 160, replace=False)
    b[flip[:130]], b[flip[130:]] = 1.0, 0.0  # mostly gains
    d = b - a
    result = paired(a, b)
    assert result.diff == pytest.approx(d.mean()) and result.n == 2000
    half = 1.96 * d.std(ddof=1) / math.sqrt(len(d))  # the normal interval, for scale
    assert result.low < d.mean() < result.high
    assert (result.high - result.low) / 2 == pytest.approx(half, rel=0.1)
    assert paired(a, b) == result  # seeded: the same report twice
    assert result.verdict == ("better" if result.low > 0 else "tie")
    assert result.p_mcnemar == mcnemar_p(a, b) and "bootstrap" in result.interval


def test_unpaired_se_would_be_far_wider():
    """Why the suite pairs: on correlated outcomes the paired interval is far tighter than binomial SEs."""
    rng = np.random.default_rng(2)
    a = rng.integers(0, 2, 5000).astype(float)
    b = a.copy()
    b[rng.choice(5000, 300, replace=False)] = 1.0
    result = paired(a, b)
    unpaired = 1.96 * math.sqrt(a.mean() * (1 - a.mean()) / 5000 + b.mean() * (1 - b.mean()) / 5000)
    assert unpaired / ((result.high - result.low) / 2) > 2


def test_pooled_is_the_mean_of_per_run_differences_with_a_stratified_interval():
    a1, b1 = [0.0] * 100, [1.0] * 10 + [0.0] * 90  # +0.10
    a2, b2 = [0.0] * 50, [1.0] * 15 + [0.0] * 35  # +0.30
    result = pooled([(a1, b1), (a2, b2)])
    assert result.diff == pytest.approx(0.2) and result.n == 150
    assert result.low < 0.2 < result.high and result.p_mcnemar is not None
    one = pooled([(a1, b1)])
    assert one.diff == pytest.approx(0.1)
    fractional = pooled([([0.5, 0.25], [1.0, 0.5])])  # checkpoint means, not 0/1: no McNemar
    assert fractional.p_mcnemar is None and fractional.diff == pytest.approx(0.375)


def test_bad_pairs_are_refused():
    for a, b in (([], []), ([1, 0], [1]), ([1, math.nan], [1, 0])):
        for compare in (paired, paired_normal):
            with pytest.raises(AlphaRLError):
                compare(a, b)
    with pytest.raises(AlphaRLError, match="no runs"):
        pooled([])


def test_seed_interval_is_a_t_interval_over_seeds():
    mean, low, high = seed_interval([0.1, 0.2, 0.3])
    assert mean == pytest.approx(0.2)
    assert high - mean == pytest.approx(4.303 * 0.1 / math.sqrt(3))  # sd 0.1, t(2) = 4.303
    assert math.isnan(seed_interval([0.1])[1])
    with pytest.raises(AlphaRLError):
        seed_interval([])
