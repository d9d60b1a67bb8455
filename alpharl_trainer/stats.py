"""Paired statistics: how much better one model is than another on the same problems, and how sure we are.

Every comparison in this project scores two models on the same prompts or test problems, so the yardstick
is the per-problem difference `d_i = b_i - a_i` (0/1 outcomes, a reward, or a checkpoint-mean in [0, 1]),
not two unpaired binomial errors: most problems are solved by both or by neither, which makes the paired
interval 2-3x tighter. The trainer's gate, the run report and the reproduction suite all read them here.

- `paired_se`: the standard error of the mean difference; the gate's bar is a number of them.
- `paired_normal`: the mean difference with a 95% normal interval (the run report's stage table).
- `paired`: the mean difference with a 95% percentile-bootstrap interval over problems (seeded, so a report
  reproduces) and the exact two-sided McNemar p-value of the discordant pairs (0/1 outcomes only).
- `pooled`: the same over several runs (seeds) of one cell: the mean of the per-run mean differences, the
  bootstrap resampling problems within each run (a stratified bootstrap), so a noisy seed widens the interval
  instead of being averaged away.
- `seed_interval`: a t-interval over per-seed values, when seeds rather than problems are the unit.
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
    pairs = [paired_arrays(a, b) for a, b in runs]
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
