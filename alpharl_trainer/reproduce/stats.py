"""Paired statistics for the reproduction suite, and the rule that admits a regime as the headline.

Every method is scored on the same test problems, so the yardstick of "method vs truncated run" is the
per-problem difference `d_i = b_i - a_i` (0/1 outcomes, or a checkpoint-mean in [0, 1]), not two unpaired
binomial errors: most problems are solved by both or by neither, which makes the paired interval 2-3x tighter.

- `paired`: mean difference with a 95% percentile-bootstrap interval over problems (seeded, so a report
  reproduces) and the exact two-sided McNemar p-value of the discordant pairs (0/1 outcomes only).
- `pooled`: the same over several runs (seeds) of one cell: the mean of the per-run mean differences, the
  bootstrap resampling problems within each run (a stratified bootstrap), so a noisy seed widens the interval
  instead of being averaged away.
- `admission`: whether a regime keeps climbing enough to tell methods apart: full-run gain >= 10 paired SE,
  the truncated run at 40% of T holding 0.6-0.9 of the gain, the last 20% of T adding >= 10% of it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from alpharl_trainer.errors import AlphaRLError

LEVEL = 0.95
RESAMPLES = 10_000


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


def _pairs(a: Sequence[float], b: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise AlphaRLError(f"paired outcomes need two equal, non-empty lists, got {a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise AlphaRLError("paired outcomes must be finite")
    return a, b


def mcnemar_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Exact two-sided McNemar test: with no difference, a discordant pair is b-only with probability 1/2."""
    a, b = _pairs(a, b)
    only_b, only_a = int(((b == 1) & (a == 0)).sum()), int(((a == 1) & (b == 0)).sum())
    n, k = only_a + only_b, min(only_a, only_b)
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def _bootstrap_means(diffs: list[np.ndarray], resamples: int, seed: int) -> np.ndarray:
    """Per resample, the mean over runs of the run's mean difference on problems drawn with replacement."""
    rng = np.random.default_rng(seed)
    means = np.zeros(resamples)
    for d in diffs:
        draws = rng.integers(0, len(d), size=(resamples, len(d)))
        means += d[draws].mean(axis=1)
    return means / len(diffs)


def pooled(
    runs: Sequence[tuple[Sequence[float], Sequence[float]]], *, resamples: int = RESAMPLES, seed: int = 0
) -> Paired:
    """`b - a` over several runs of one cell (each run: its (a, b) on the same problems): the mean of the
    per-run mean differences, with a stratified bootstrap interval."""
    if not runs:
        raise AlphaRLError("no runs to pool")
    pairs = [_pairs(a, b) for a, b in runs]
    diffs = [b - a for a, b in pairs]
    means = _bootstrap_means(diffs, resamples, seed)
    low, high = np.quantile(means, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    binary = all(np.isin(np.concatenate([a, b]), (0.0, 1.0)).all() for a, b in pairs)
    p = (
        mcnemar_p(np.concatenate([a for a, _ in pairs]), np.concatenate([b for _, b in pairs]))
        if binary
        else None
    )
    diff = float(np.mean([d.mean() for d in diffs]))
    return Paired(diff, float(low), float(high), sum(len(d) for d in diffs), p)


def paired(a: Sequence[float], b: Sequence[float], *, resamples: int = RESAMPLES, seed: int = 0) -> Paired:
    """`b - a` on one set of problems (e.g. a method vs the truncated run at the same step)."""
    return pooled([(a, b)], resamples=resamples, seed=seed)


@dataclass(frozen=True)
class Admission:
    """The three numbers that admit a regime as the headline, and the verdict."""

    gain: float
    """Full-run accuracy minus the base's (full run: the mean of its last 3 checkpoints, per problem)."""
    gain_in_se: float
    """The gain in paired standard errors of the test split."""
    held_at_40: float
    """Share of the gain the truncated run holds at 40% of T."""
    added_by_last_20: float
    """Share of the gain the last 20% of T adds (full run minus the run at 80% of T)."""

    @property
    def admitted(self) -> bool:
        return self.gain_in_se >= 10 and 0.6 <= self.held_at_40 <= 0.9 and self.added_by_last_20 >= 0.10


def admission(
    base: Sequence[float],
    at_40: Sequence[float],
    at_80: Sequence[float],
    last_three: Sequence[Sequence[float]],
) -> Admission:
    """From per-problem outcomes on the test split: of the base policy, of the run's checkpoints at 40% and
    80% of T, and of its last three checkpoints (averaged per problem: one noisy endpoint cannot decide)."""
    if len(last_three) != 3:
        raise AlphaRLError(f"the full run is the mean of its last 3 checkpoints, got {len(last_three)}")
    full = np.mean([_pairs(base, c)[1] for c in last_three], axis=0)
    base_, full = _pairs(base, full)
    d = full - base_
    gain = float(d.mean())
    se = float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else math.inf
    if gain <= 0:
        return Admission(gain, gain / se if se > 0 else 0.0, math.nan, math.nan)
    held = (float(np.mean(_pairs(base, at_40)[1])) - float(base_.mean())) / gain
    late = (float(full.mean()) - float(np.mean(_pairs(base, at_80)[1]))) / gain
    return Admission(gain, gain / se if se > 0 else math.inf, held, late)


T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}
"""Two-sided 95% quantiles of Student's t by degrees of freedom (1.96 beyond)."""


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
    half = T_975.get(n - 1, 1.96) * sd / math.sqrt(n)
    return mean, mean - half, mean + half
