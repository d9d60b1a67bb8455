"""The rule that admits a regime as the reproduction suite's headline: it must keep climbing enough to tell
methods apart. Full-run gain >= 10 paired SE, the truncated run at 40% of T holding 0.6-0.9 of the gain, the
last 20% of T adding >= 10% of it; a regime with several seeds is judged on their means too."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.stats import paired_arrays


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
    full = np.mean([paired_arrays(base, c)[1] for c in last_three], axis=0)
    base_, full = paired_arrays(base, full)
    d = full - base_
    gain = float(d.mean())
    se = float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else math.inf
    if gain <= 0:
        return Admission(gain, gain / se if se > 0 else 0.0, math.nan, math.nan)
    held = (float(np.mean(paired_arrays(base, at_40)[1])) - float(base_.mean())) / gain
    late = (float(full.mean()) - float(np.mean(paired_arrays(base, at_80)[1]))) / gain
    return Admission(gain, gain / se if se > 0 else math.inf, held, late)


def pooled_admission(group: list[dict]) -> Admission:
    """A regime's admission numbers over its seeds: the mean gain in units of the SE of that mean (each seed's
    paired SE combined), and the mean of each seed's held and added shares."""
    gains = [a["gain"] for a in group]
    ses = [a["gain"] / a["gain_in_se"] if a["gain_in_se"] else math.inf for a in group]
    se = math.sqrt(sum(x * x for x in ses)) / len(group)
    mean = statistics.fmean(gains)
    return Admission(
        mean,
        mean / se if se > 0 else math.inf,
        statistics.fmean(a["held_at_40"] for a in group),
        statistics.fmean(a["added_by_last_20"] for a in group),
    )
