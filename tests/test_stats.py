"""Paired statistics on answers known in advance: the gate's SE, the normal and bootstrap intervals, McNemar,
the problem-level interval over seeds (one common resample), the seed-level t-interval and t-test, the
two-level bootstrap and its coverage, Holm's adjustment."""

from __future__ import annotations

import math

import numpy as np
import pytest

from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.stats import (
    hierarchical_bootstrap,
    holm,
    mcnemar_p,
    paired,
    paired_normal,
    paired_se,
    problem_level,
    seed_interval,
    seed_level,
    t_test_p,
    t_two_sided_p,
)


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


def test_problem_level_over_seeds_is_the_mean_with_one_common_resample_of_problems():
    a1, b1 = [0.0] * 100, [1.0] * 10 + [0.0] * 90  # +0.10
    a2, b2 = [0.0] * 100, [1.0] * 30 + [0.0] * 70  # +0.30
    result = problem_level([a1, a2], [b1, b2])
    assert result.diff == pytest.approx(0.2) and result.n == 100  # 100 shared problems, not 200 pairs
    assert result.low < 0.2 < result.high and result.p_mcnemar is None  # no McNemar over copies of a problem
    assert problem_level([a1], [b1]) == paired(a1, b1)  # one seed: the run's own interval, McNemar included
    # two identical seeds: one common resample gives the one seed's interval (independent resamples per seed
    # would narrow it by sqrt(2) as if there were 200 problems)
    twice = problem_level([a1, a1], [b1, b1])
    assert (twice.low, twice.high) == pytest.approx((paired(a1, b1).low, paired(a1, b1).high))
    with pytest.raises(AlphaRLError, match="same problems"):
        problem_level([a1, a1[:50]], [b1, b1[:50]])
    fractional = paired([0.5, 0.25], [1.0, 0.5])  # checkpoint means, not 0/1: no McNemar
    assert fractional.p_mcnemar is None and fractional.diff == pytest.approx(0.375)


def _nested(n: int, solved: int) -> np.ndarray:
    return np.array([1.0] * solved + [0.0] * (n - solved))


def test_seeds_that_disagree_give_a_wide_seed_level_interval_around_0():
    """Three seeds on the same 5,000 problems, differences +0.06, -0.04 and +0.01, each one-signed (nested
    outcomes): every seed's own interval is tight, and so is the problem-level interval with the seeds fixed,
    which excludes 0; with seeds as the unit the interval is wide and includes 0, the t-test finds nothing,
    and the two-level bootstrap is wider than the problem-level interval."""
    n, truncated = 5000, 2000
    a = [_nested(n, truncated)] * 3
    b = [_nested(n, truncated + k) for k in (300, -200, 50)]
    problem = problem_level(a, b, resamples=2000)
    assert problem.diff == pytest.approx(0.01) and problem.low > 0  # the seeds-fixed interval: "better"
    seeds = seed_level(a, b, resamples=2000)
    assert seeds.diff == pytest.approx(0.01) and seeds.per_seed == pytest.approx((0.06, -0.04, 0.01))
    assert seeds.low < 0 < seeds.high and seeds.high - seeds.low > 0.2 and seeds.verdict == "tie"
    assert seeds.p > 0.5 and seeds.seeds == 3
    assert seeds.boot_high - seeds.boot_low > 5 * (problem.high - problem.low)
    agree = seed_level(a, [_nested(n, truncated + k) for k in (190, 200, 210)])
    assert agree.low > 0 and agree.verdict == "better" and agree.p < 0.01


def test_t_test_over_seeds_matches_its_interval_and_known_values():
    assert t_two_sided_p(4.303, 2) == pytest.approx(0.05, abs=1e-4)  # the table's t(2)
    assert t_two_sided_p(12.706, 1) == pytest.approx(0.05, abs=1e-4)
    assert t_two_sided_p(2.571, 5) == pytest.approx(0.05, abs=1e-4)
    assert t_two_sided_p(0.0, 3) == pytest.approx(1.0)
    assert t_test_p([0.1, 0.2, 0.3]) == pytest.approx(t_two_sided_p(0.2 / (0.1 / math.sqrt(3)), 2))
    assert math.isnan(t_test_p([0.1])) and t_test_p([0.0, 0.0]) == 1.0 and t_test_p([0.1, 0.1]) == 0.0
    for values in ([0.01, 0.02, 0.03], [0.01, -0.02, 0.03], [0.05, 0.06, 0.02, 0.04]):
        _, low, high = seed_interval(values)
        assert (t_test_p(values) < 0.05) == (low > 0 or high < 0)


def _coverage(seeds: int, tau: float, problem_sd: float, noise: float) -> tuple[float, float]:
    """Share of 200 simulated datasets whose two-level bootstrap / seed-level t-interval holds the true mean
    0.02: per-seed effects ~ N(0.02, tau), shared per-problem effects ~ N(0, problem_sd), noise ~ N(0, noise),
    50 problems; seeds and problems are both samples."""
    rng, mu = np.random.default_rng(7), 0.02
    boot = t = 0
    for _ in range(200):
        d = (
            rng.normal(mu, tau, (seeds, 1))
            + rng.normal(0, problem_sd, 50)
            + rng.normal(0, noise, (seeds, 50))
        )
        low, high = hierarchical_bootstrap(d, resamples=400, seed=int(rng.integers(1 << 30)))
        boot += low <= mu <= high
        _, low, high = seed_interval(d.mean(axis=1).tolist())
        t += low <= mu <= high
    return boot / 200, t / 200


def test_the_two_level_bootstrap_covers_the_true_mean():
    """10 seeds, seed and problem variation both present: the two-level bootstrap holds the true mean in
    >= 90% of the datasets (nominal 95%); the seed-level t-interval, whose seeds share one problem sample,
    misses the problems' part."""
    boot, t = _coverage(10, tau=0.05, problem_sd=0.3, noise=0.3)
    assert boot >= 0.90 and t < 0.8


def test_with_three_seeds_the_bootstrap_is_too_narrow_and_the_t_interval_is_not():
    """Why the report decides with the t-interval: with 3 seeds (10 distinct seed resamples) and the seeds
    dominating, the two-level bootstrap covers well under 95%, the t-interval about 95%."""
    boot, t = _coverage(3, tau=0.1, problem_sd=0.05, noise=0.2)
    assert boot < 0.90 <= t


def test_holm_step_down_known_answer():
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1: 0.02, 0.03, 0.06, 0.04, made monotone: ..., 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5]) == [0.5] and holm([]) == [] and holm([0.9, 0.8]) == [1.0, 1.0]
    with pytest.raises(AlphaRLError):
        holm([math.nan])


def test_bad_pairs_are_refused():
    for a, b in (([], []), ([1, 0], [1]), ([1, math.nan], [1, 0])):
        for compare in (paired, paired_normal):
            with pytest.raises(AlphaRLError):
                compare(a, b)
    with pytest.raises(AlphaRLError, match="same seeds"):
        problem_level([], [])


def test_seed_interval_is_a_t_interval_over_seeds():
    mean, low, high = seed_interval([0.1, 0.2, 0.3])
    assert mean == pytest.approx(0.2)
    assert high - mean == pytest.approx(4.303 * 0.1 / math.sqrt(3))  # sd 0.1, t(2) = 4.303
    assert math.isnan(seed_interval([0.1])[1])
    with pytest.raises(AlphaRLError):
        seed_interval([])
