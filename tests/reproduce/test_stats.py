"""Paired statistics and the admission rule, on answers known in advance."""

from __future__ import annotations

import math

import numpy as np
import pytest

from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.reproduce.stats import admission, mcnemar_p, paired, pooled


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
        with pytest.raises(AlphaRLError):
            paired(a, b)
    with pytest.raises(AlphaRLError, match="no runs"):
        pooled([])


def _outcomes(n: int, solved: int) -> list[float]:
    return [1.0] * solved + [0.0] * (n - solved)


def test_admission_of_a_climbing_regime_and_refusal_of_a_saturating_one():
    n = 5000
    base = _outcomes(n, 1000)
    climbing = admission(
        base, _outcomes(n, 1600), _outcomes(n, 1850), [_outcomes(n, s) for s in (1990, 2000, 2010)]
    )
    assert climbing.gain == pytest.approx(0.2) and climbing.gain_in_se > 10
    assert climbing.held_at_40 == pytest.approx(0.6) and climbing.added_by_last_20 == pytest.approx(0.15)
    assert climbing.admitted
    saturating = admission(base, _outcomes(n, 1950), _outcomes(n, 2000), [_outcomes(n, 2000)] * 3)
    assert saturating.held_at_40 == pytest.approx(0.95) and saturating.added_by_last_20 == 0
    assert not saturating.admitted
    small = admission(_outcomes(200, 50), _outcomes(200, 53), _outcomes(200, 54), [_outcomes(200, 55)] * 3)
    assert small.gain_in_se < 10 and not small.admitted  # 5 problems of 200 is no headline
    flat = admission(base, base, base, [base] * 3)
    assert flat.gain == 0 and not flat.admitted
    with pytest.raises(AlphaRLError, match="last 3 checkpoints"):
        admission(base, base, base, [base])
