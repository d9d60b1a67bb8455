"""Paired statistics: how much better one model is than another on the same problems, and how sure we are.

Every comparison in this project scores two models on the same prompts or test problems, so the yardstick
is the per-problem difference `d_i = b_i - a_i` (0/1 outcomes, a reward, or a checkpoint-mean in [0, 1]),
not two unpaired binomial errors: most problems are solved by both or by neither, which makes the paired
interval 2-3x tighter. The trainer's gate, the run report and the reproduction suite all read them here.

- `paired_se`: the standard error of the mean difference; the gate's bar is a number of them.
- `paired_normal`: the mean difference with a 95% normal interval (the run report's stage table).
- `paired`: the mean difference with a 95% percentile-bootstrap interval over problems (seeded, so a report
  reproduces) and the exact two-sided McNemar p-value of the discordant pairs (0/1 outcomes only).

Several seeds of one cell score the SAME problems, so their outcomes are matrices (seeds x problems):
- `problem_level`: the mean over seeds of the per-seed mean difference with a bootstrap over problems, one
  common resample of problem indices for every seed, the seeds held fixed. It answers "how sure are we about
  these trained models": seed-to-seed variation is NOT in it (a conditional interval).
- `seed_level`: seeds are the unit, as they should be for "does the method help": the 95% t-interval and
  the two-sided one-sample t-test over the per-seed mean differences (about new seeds on these same
  problems: the shared problem sample is common to every seed, so it is not in the spread), and the
  two-level (hierarchical) bootstrap (seeds resampled with replacement, then one common resample of problems
  applied to each), which has both sources but is too narrow with few seeds (3 seeds: 10 distinct draws).
- `seed_interval`: the t-interval over per-seed values; `t_test_p` its p-value.
- `holm`: Holm's step-down adjustment of a family of p-values named in advance.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from alpharl_trainer.errors import AlphaRLError

LEVEL = 0.95
RESAMPLES = 10_000
Z_975 = 1.96
"""Two-sided 95% quantile of the normal distribution."""


@dataclass(frozen=True)
class Paired:
    """Mean of `b - a` over paired problems, its 95% interval, and what the interval is."""

    diff: float
    low: float
    high: float
    n: int
    p_mcnemar: float | None = None
    """Exact two-sided McNemar p-value (None unless every outcome is 0/1)."""
    interval: str = "95% percentile bootstrap over problems"

    @property
    def verdict(self) -> str:
        return "better" if self.low > 0 else "worse" if self.high < 0 else "tie"


def paired_arrays(a: Sequence[float], b: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """`a` and `b` as float64 arrays, refused unless they are two equal, non-empty lists of finite values."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise AlphaRLError(f"paired outcomes need two equal, non-empty lists, got {a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise AlphaRLError("paired outcomes must be finite")
    return a, b


def _standard_error(diffs: Sequence[float], mean: float) -> float:
    """Standard error of the mean of `diffs` (at least two values; `mean` is theirs)."""
    return math.sqrt(sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1) / len(diffs))


def paired_se(current: Sequence[float], candidate: Sequence[float]) -> float:
    """Standard error of the mean per-prompt difference `candidate - current` over the prompts both scored
    (non-finite scores are left out); inf with fewer than two such prompts, as there is no spread to
    measure."""
    diffs = [b - a for a, b in zip(current, candidate, strict=True) if math.isfinite(a) and math.isfinite(b)]
    if len(diffs) < 2:
        return math.inf
    return _standard_error(diffs, sum(diffs) / len(diffs))


def paired_normal(a: Sequence[float], b: Sequence[float]) -> Paired:
    """`b - a` on the same problems (same order) with the 95% normal interval `mean +- 1.96 SE`: with
    hundreds of problems the normal approximation of a mean of {-1, 0, 1} values is fine, and it costs no
    resampling. One problem gives a zero-width interval."""
    a, b = paired_arrays(a, b)
    d = (b - a).tolist()
    n = len(d)
    mean = sum(d) / n
    half = Z_975 * _standard_error(d, mean) if n > 1 else 0.0
    return Paired(mean, mean - half, mean + half, n, interval="95% normal interval")


def mcnemar_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Exact two-sided McNemar test: with no difference, a discordant pair is b-only with probability 1/2."""
    a, b = paired_arrays(a, b)
    only_b, only_a = int(((b == 1) & (a == 0)).sum()), int(((a == 1) & (b == 0)).sum())
    n, k = only_a + only_b, min(only_a, only_b)
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def _bootstrap_low_high(means: np.ndarray) -> tuple[float, float]:
    low, high = np.quantile(means, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    return float(low), float(high)


def paired(a: Sequence[float], b: Sequence[float], *, resamples: int = RESAMPLES, seed: int = 0) -> Paired:
    """`b - a` on one set of problems (e.g. a method vs the truncated run at the same step): the mean, its
    95% percentile bootstrap over problems and, for 0/1 outcomes, McNemar's exact p."""
    a, b = paired_arrays(a, b)
    d = b - a
    draws = np.random.default_rng(seed).integers(0, len(d), size=(resamples, len(d)))
    low, high = _bootstrap_low_high(d[draws].mean(axis=1))
    binary = np.isin(np.concatenate([a, b]), (0.0, 1.0)).all()
    return Paired(float(d.mean()), low, high, len(d), mcnemar_p(a, b) if binary else None)


def seed_arrays(a, b) -> np.ndarray:
    """The per-seed, per-problem differences `b - a` (seeds x problems) of two outcome matrices over the same
    problems in the same order (a list of per-seed lists, or a 2-d array); refused unless every seed scored
    the same number of problems."""
    rows_a, rows_b = list(a), list(b)
    if not rows_a or len(rows_a) != len(rows_b):
        raise AlphaRLError(f"need the same seeds on both sides, got {len(rows_a)} and {len(rows_b)}")
    pairs = [paired_arrays(x, y) for x, y in zip(rows_a, rows_b, strict=True)]
    if len({len(x) for x, _ in pairs}) != 1:
        raise AlphaRLError("every seed must score the same problems (equal counts per seed)")
    return np.stack([y - x for x, y in pairs])


def problem_level(a, b, *, resamples: int = RESAMPLES, seed: int = 0) -> Paired:
    """`b - a` over several seeds scored on the same problems (seeds x problems): the mean over seeds of the
    per-seed mean difference, with a 95% bootstrap over problems that draws ONE resample of problem indices
    for all seeds (the problems are shared), the seeds held fixed: an interval conditional on these trained
    models, blind to seed-to-seed variation. McNemar's p only with one seed (several seeds' outcomes of one
    problem are not independent pairs). With one seed it is `paired`, bit for bit."""
    d = seed_arrays(a, b)
    if len(d) == 1:
        return paired(np.asarray(a, dtype=np.float64)[0], np.asarray(b, dtype=np.float64)[0],
                      resamples=resamples, seed=seed)  # fmt: skip
    result = paired(np.zeros(d.shape[1]), d.mean(axis=0), resamples=resamples, seed=seed)
    return Paired(result.diff, result.low, result.high, d.shape[1],
                  interval="95% bootstrap over problems (one common resample), seeds fixed")  # fmt: skip


def hierarchical_bootstrap(
    d: np.ndarray, *, resamples: int = RESAMPLES, seed: int = 0
) -> tuple[float, float]:
    """95% two-level bootstrap of the mean of `d` (seeds x problems): per replicate the seeds are drawn with
    replacement and one common resample of problem indices is applied to every drawn seed."""
    rng = np.random.default_rng(seed)
    n_seeds, n = d.shape
    means, chunk = [], max(1, 2_000_000 // (n_seeds * n))
    for start in range(0, resamples, chunk):
        k = min(chunk, resamples - start)
        per_seed = d[:, rng.integers(0, n, size=(k, n))].mean(axis=2)  # seeds x k, common problems
        chosen = rng.integers(0, n_seeds, size=(k, n_seeds))
        means.append(per_seed[chosen, np.arange(k)[:, None]].mean(axis=1))
    return _bootstrap_low_high(np.concatenate(means))


@dataclass(frozen=True)
class SeedLevel:
    """`b - a` with seeds as the unit: the mean of the per-seed mean differences, its 95% t-interval over
    seeds and two-sided one-sample t-test (NaN with one seed), and the 95% two-level bootstrap."""

    diff: float
    low: float
    high: float
    p: float
    boot_low: float
    boot_high: float
    per_seed: tuple[float, ...]

    @property
    def seeds(self) -> int:
        return len(self.per_seed)

    @property
    def verdict(self) -> str:
        """better/worse where the seed-level t-interval excludes 0 (never with one seed)."""
        return "better" if self.low > 0 else "worse" if self.high < 0 else "tie"


def seed_level(a, b, *, resamples: int = RESAMPLES, seed: int = 0) -> SeedLevel:
    """`b - a` over seeds scored on the same problems (seeds x problems), seeds the unit."""
    d = seed_arrays(a, b)
    per_seed = tuple(float(x) for x in d.mean(axis=1))
    mean, low, high = seed_interval(per_seed)
    boot_low, boot_high = hierarchical_bootstrap(d, resamples=resamples, seed=seed)
    return SeedLevel(mean, low, high, t_test_p(per_seed), boot_low, boot_high, per_seed)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (same order as given): the i-th smallest is multiplied by
    (m - i), made monotone, capped at 1. Controls the family-wise error rate of the whole family."""
    p = [float(x) for x in pvalues]
    if any(not 0 <= x <= 1 for x in p):
        raise AlphaRLError(f"p-values must lie in [0, 1], got {p}")
    adjusted, running = [0.0] * len(p), 0.0
    for rank, i in enumerate(sorted(range(len(p)), key=p.__getitem__)):
        running = max(running, min(1.0, (len(p) - rank) * p[i]))
        adjusted[i] = running
    return adjusted


T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}
"""Two-sided 95% quantiles of Student's t by degrees of freedom (the normal's beyond)."""


def seed_interval(per_seed: Sequence[float]) -> tuple[float, float, float]:
    """Mean of per-seed values (e.g. each seed's mean paired difference) and its 95% t-interval: seeds are
    the unit, so seed-to-seed variation is in the interval (NaN bounds with one seed)."""
    n = len(per_seed)
    if n == 0:
        raise AlphaRLError("no seeds")
    mean = sum(per_seed) / n
    if n < 2:
        return mean, math.nan, math.nan
    sd = math.sqrt(sum((x - mean) ** 2 for x in per_seed) / (n - 1))
    half = T_975.get(n - 1, Z_975) * sd / math.sqrt(n)
    return mean, mean - half, mean + half


def t_two_sided_p(t: float, df: int) -> float:
    """P(|T| >= |t|) for Student's t with `df` (a positive integer) degrees of freedom, exactly (Abramowitz
    and Stegun 26.7.3-4: a finite series in theta = atan(t / sqrt(df)))."""
    if df < 1:
        raise AlphaRLError(f"degrees of freedom must be >= 1, got {df}")
    if math.isinf(t):
        return 0.0
    theta = math.atan(abs(t) / math.sqrt(df))
    s, c2 = math.sin(theta), math.cos(theta) ** 2
    if df % 2:  # odd: (2/pi) (theta + sin cos (1 + 2/3 cos^2 + 2.4/(3.5) cos^4 + ...))
        term, total = 1.0, 1.0 if df > 1 else 0.0
        for k in range(1, (df - 1) // 2):
            term *= 2 * k / (2 * k + 1) * c2
            total += term
        inside = 2 / math.pi * (theta + s * math.cos(theta) * total)
    else:  # even: sin (1 + 1/2 cos^2 + 1.3/(2.4) cos^4 + ...)
        term, total = 1.0, 1.0
        for k in range(1, df // 2):
            term *= (2 * k - 1) / (2 * k) * c2
            total += term
        inside = s * total
    return min(1.0, max(0.0, 1.0 - inside))


def t_test_p(per_seed: Sequence[float]) -> float:
    """Two-sided one-sample t-test of mean 0 over per-seed values (NaN with one seed; with no spread, 1 for a
    zero mean and 0 otherwise)."""
    n = len(per_seed)
    if n < 2:
        return math.nan
    mean = sum(per_seed) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in per_seed) / (n - 1))
    if sd == 0:
        return 1.0 if mean == 0 else 0.0
    return t_two_sided_p(mean / (sd / math.sqrt(n)), n - 1)
