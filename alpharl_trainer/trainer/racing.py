"""The acceptance gate as a race: score every candidate on a few held-out prompts, drop the ones that are
clearly out, score the rest on more, and stop as soon as the decision is clear.

The full gate (`decision.best_over_bar`) scores `current` (W_K) and every candidate on all N held-out prompts
and applies the best candidate that beats `current` by more than the margin. Most candidates of a window are
far from the best, so most of that scoring only confirms what the first prompts already showed. A `Race`
looks at the scores after `first` (16), 32, 64, ... prompts (each look doubles; the last look is N), always on
the same prompts and sampling seed for every model (common random numbers), and at every look but the last:

- drops a candidate that scored NaN (its weights could not be written);
- drops candidate i when the upper bound of its paired gain over `current` is below the margin plus the
  tolerance eps (`mean(r_i - r_current) + z se < margin + eps`: it cannot clear the bar by more than eps);
- drops i when it is significantly worse than the leader L, the survivor with the highest mean
  (`mean(r_i - r_L) + z se < 0`; no indifference zone, see below);
- with a shortlist (`finalists` k > 0), at the first look of `finalists_at` prompts or more, drops every
  survivor but the k with the highest means (of a smoother measure of the same skill where the scorer gives
  one, `rank_by`: the probability of the gold completion beside a greedy outcome);
- stops with L when the lower bound of its gain clears the bar (`mean(r_L - r_current) - z se > margin`; with
  `margin_se` larger than z, that many SEs) and no other survivor can beat L by eps or more
  (`mean(r_i - r_L) + z se < eps` for every other i; with eps = 0, L must be alone), and with None (keep W_K)
  when no survivor is left.

At the last look it applies exactly the full gate's rule (`best_over_bar`, with `margin_se`) to the survivors
on all N prompts. Each SE is that of a paired mean over n prompts with a floored variance,
`sqrt((var + V0 / n) / n)`, `V0 = 0.25` (see `paired_bound`).

What is controlled. Value a decision by its true mean score, and keeping W_K by `current`'s plus the margin
(the bar a swap must clear); b is the truly best candidate. One z serves every bound:
`z = Phi^-1(1 - alpha / (2 K m))` for m candidates and the K looks before the last (fixed in advance by N and
`first`; the last look only applies the full gate's rule, so it makes none of the tests below). Call the race
wrong when, at any look before the last, it (1) drops a candidate whose true gain over `current` is at least
the margin plus eps, by the bar rule, (2) stops with a candidate whose true gain is at most the margin,
or (3) drops b as significantly worse than some L, or stops with L while b survives and is truly eps or more
better than L. (1) and (2) are one-sided tests of the same candidate's gain in opposite directions against
bars eps apart, so for each look and candidate at most one of them can be wrong: K m tests at
alpha / (2 K m) each. (3) is, for each look and each of the m - 1 other candidates j, one-sided evidence that
b - j is below 0 or below eps: whichever of the two the truth violates is wrong, and since the bounds are
nested one tail covers both (L is one of the j, whichever the data made leader). Under the normal
approximation of every paired mean (with its floored SE), the union (Bonferroni) bound gives
P(wrong) <= alpha / 2 + alpha / 2 = alpha whatever the stopping time, as every possible look is counted.
Without such an error an early decision is worth at least the best one minus eps: an early stop's L beats
keeping W_K and is within eps of b (b either survived, or was dropped by (1) and so is worth less than
keeping W_K plus eps); an early None means no candidate is truly worth more than keeping W_K plus eps. A race
that reaches the last look still holds b when b clears the bar, where the full gate's own rule decides among
the survivors; the last look's rule has the full gate's error rates, and the race adds at most alpha to them.
The shortlist is not a test: where b is among the finalists the guarantee holds as stated (the tests are the
same ones); a b left off the shortlist is dropped without error, and what such cuts cost is measured
(`scripts/simulate_racing.py`'s regret, `scripts/replay_gate.py` on the reproduction suite's recorded
windows). Agreement with the full gate's decision on the same N prompts is not what is bounded (both are
noisy): the simulation measures it, with the error rates and the saving.

Why no indifference zone on the leader rule: dropping i when it is not better than L by more than the
margin (`upper(i - L) < margin`) saves a few points more, but it drops a truly best candidate whenever one
ties with the leader (12% of the simulated nulls with first = 32, above alpha), and such drops can chain,
each costing up to a margin. The tolerance does not chain: it drops against `current` (never dropped) and
stops against the leader it stops with. With binary outcomes, though, certifying that near-tied candidates
are within eps of each other costs about z^2 var / eps^2 prompts (over 1,000 for eps = 0.02 at the pairwise
variances of the suite's windows, 0.02-0.06), so in the suite the saving comes from the shortlist, which
stops scoring the near-tied crowd after 64 prompts and spends the rest on the two leaders and `current`.

`first = 16` is the simulation's choice (`scripts/simulate_racing.py`, N = 64, 20 candidates): cost 0.78 of
the full gate's on the main job's shape against 0.81 (first 8) and 0.79 (first 32), within 2.5% of the best in
the other scenarios, every error rate under alpha. The Bonferroni z is not slack there: with z = 2.5 instead
of 3.0-3.3, a truly tied best candidate was dropped in 26-30% of simulated nulls (`--interaction 0.5`).

Pure: numpy and the standard library only (no torch, no TRL). The last look's rule, `best_over_bar`, is
the full gate's own: it lives here, and the full gate imports it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np

from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.stats import paired_se

CURRENT = "current"
V0 = 0.25
"""Variance floor of one per-prompt difference, spread over the n prompts seen (see `paired_bound`)."""


def look_counts(total: int, first: int) -> list[int]:
    """Cumulative prompt counts at each look: `first`, doubling, and `total` last (e.g. 8, 16, 32, 50)."""
    if total < 1 or first < 1:
        raise AlphaRLError(f"a race needs at least one prompt and a first look of >= 1, got {total}, {first}")
    counts, n = [], first
    while n < total:
        counts.append(n)
        n *= 2
    return [*counts, total]


def paired_bound(diffs: np.ndarray) -> tuple[float, float]:
    """Mean of the per-prompt differences and the SE of that mean, `sqrt((var + V0 / n) / n)`.

    The floor: on a few prompts the sample variance can be 0 (every prompt solved or failed alike by both
    models), which would make any difference look certain. `V0 = 0.25` is the largest variance a score in
    [0, 1] can have (a fair coin's); adding `V0 / n` is as if one more prompt of that spread had been seen, so
    the interval is never narrower than one maximally uncertain prompt allows, and the floor fades (at n = 8
    it is comparable to real spreads, at n = 64 it is a tenth of a point of variance)."""
    n = len(diffs)
    mean = float(diffs.mean())
    var = float(diffs.var(ddof=1)) if n > 1 else 0.0
    return mean, math.sqrt((var + V0 / n) / n)


def best_over_bar(
    scores: dict[str, float],
    candidates: list[str],
    margin: float,
    *,
    per_prompt: dict[str, list[float]] | None = None,
    margin_se: float = 0.0,
) -> str | None:
    """The full gate's rule, for any candidates: the highest-scoring key of `candidates` (the first on a tie)
    among those that beat `scores["current"]` by more than `margin` plus, with `margin_se`, that many paired
    standard errors of the per-prompt difference (a bar that scales with the held-out set's noise); None
    (keep the current weights) when none does. NaN never wins. The reproduction suite chooses every
    baseline's knob with it too, so the product and the baselines are held to one bar."""
    current, chosen, best = scores[CURRENT], None, -math.inf
    if math.isnan(current):
        return None
    for key in candidates:
        bar = current + margin
        if margin_se > 0:
            bar += margin_se * paired_se(per_prompt[CURRENT], per_prompt[key])
        if scores[key] > bar and scores[key] > best:  # False for NaN
            best, chosen = scores[key], key
    return chosen


@dataclass
class Race:
    """A sequential acceptance gate over `labels` (never 'current'), on at most `total` held-out prompts.

    Protocol: for each look, score `current` and every survivor on the prompts `next_prompts()` (the same
    prompts and seed for all), `record` each, then `step()`; repeat until `step()` returns True, then read
    `decision()`. `scores()`, `per_prompt()` and `dropped()` are what was measured, for the log."""

    labels: list[str]
    total: int
    margin: float
    margin_se: float = 0.0
    alpha: float = 0.05
    """Probability of any wrong early decision (module docstring), under the normal approximation."""
    first: int = 16
    """Prompts at the first look; each later look doubles, the last is `total`."""
    finalists: int = 0
    """With k > 0: at the first look of `finalists_at` prompts or more, only the k survivors with the highest
    means (of `rank_by` where every survivor has it) go on (0: every survivor goes on)."""
    finalists_at: int = 0
    """Prompts every survivor is scored on before the shortlist is cut (the first look at or past it)."""
    tolerance: float = 0.0
    """A held-out score difference the race need not resolve before the last look: it drops a candidate that
    cannot beat `current` by more than the margin plus this, and stops with the leader once no survivor can
    beat it by more than this (0: the leader must be the only survivor)."""
    _scored: dict[str, list[float]] = field(init=False, repr=False)
    _alive: list[str] = field(init=False, repr=False)
    _dropped: dict[str, str] = field(init=False, repr=False)
    _look: int = field(default=0, init=False, repr=False)
    _done: bool = field(default=False, init=False, repr=False)
    _choice: str | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if CURRENT in self.labels or len(set(self.labels)) != len(self.labels):
            raise AlphaRLError(f"race labels must be distinct and not '{CURRENT}', got {self.labels}")
        if not 0 < self.alpha < 1:
            raise AlphaRLError(f"alpha must be in (0, 1), got {self.alpha}")
        if self.finalists < 0 or self.finalists_at < 0:
            raise AlphaRLError(
                f"finalists and finalists_at must be >= 0, got {self.finalists}, {self.finalists_at}"
            )
        if not self.tolerance >= 0:
            raise AlphaRLError(f"the race's tolerance must be >= 0, got {self.tolerance}")
        self._looks = look_counts(self.total, self.first)
        tests = 2 * max(1, len(self._looks) - 1) * max(1, len(self.labels))
        self.z = NormalDist().inv_cdf(1 - self.alpha / tests)
        """The one-sided quantile of every bound (Bonferroni over the early looks and the candidates)."""
        self._scored = {CURRENT: [], **{label: [] for label in self.labels}}
        self._ranked: dict[str, list[float]] = {}
        self._alive = list(self.labels)
        self._dropped = {}

    def looks(self) -> list[int]:
        """Cumulative prompt counts at each look, e.g. [8, 16, 32, 64]."""
        return list(self._looks)

    def survivors(self) -> list[str]:
        """The candidates still in the race, in scoring order."""
        return list(self._alive)

    def next_prompts(self) -> range:
        """Indices of the held-out prompts to score `current` and every survivor on before the next step."""
        if self._done:
            return range(0)
        return range(self._looks[self._look - 1] if self._look else 0, self._looks[self._look])

    def record(self, label: str, per_prompt: list[float], rank_by: list[float] | None = None) -> None:
        """Per-prompt scores of 'current' or a survivor on the next prompts, appended in prompt order; with
        `rank_by`, a smoother per-prompt measure of the same skill that the shortlist ranks by (every
        survivor's, or none's, at the shortlist's look)."""
        if self._done:
            raise AlphaRLError("the race is decided: nothing more to score")
        if label != CURRENT and label not in self._alive:
            raise AlphaRLError(f"'{label}' is not in the race (survivors: {self._alive})")
        scored = self._scored[label]
        if len(scored) + len(per_prompt) > self._looks[self._look]:
            raise AlphaRLError(f"'{label}' scored past this look's {self._looks[self._look]} prompts")
        scored.extend(float(v) for v in per_prompt)
        if rank_by is not None:
            self._ranked.setdefault(label, []).extend(float(v) for v in rank_by)

    def step(self) -> bool:
        """Apply the look's rule once `current` and every survivor hold its prompts; True when decided."""
        if self._done:
            return True
        n = self._looks[self._look]
        short = [k for k in [CURRENT, *self._alive] if len(self._scored[k]) != n]
        if short:
            raise AlphaRLError(f"look {self._look + 1} needs {n} prompts scored for {short}")
        current = np.asarray(self._scored[CURRENT])
        if not np.isfinite(current).all():
            return self._decide(None)  # the full gate keeps W_K when `current` scores NaN
        for label in [k for k in self._alive if not np.isfinite(self._scored[k]).all()]:
            self._drop(label, "NaN score")
        if n == self.total:
            return self._decide(self._final())
        self._eliminate(current, n)
        if not self._alive:
            return self._decide(None)
        leader = self._leader()
        mean, se = paired_bound(np.asarray(self._scored[leader]) - current)
        if mean - max(self.z, self.margin_se) * se > self.margin and self._within_tolerance(leader):
            return self._decide(leader)
        if self.finalists and n >= self.finalists_at and len(self._alive) > self.finalists:
            self._shortlist(n)
        self._look += 1
        return False

    def decision(self) -> str | None:
        """The chosen candidate's label, or None to keep the current weights; once `step()` returned True."""
        if not self._done:
            raise AlphaRLError("the race is not decided yet: step() has not returned True")
        return self._choice

    def scores(self) -> dict[str, float]:
        """Mean over the prompts each was scored on: `current` and every candidate ever scored."""
        return {k: float(np.mean(v)) for k, v in self._scored.items() if v}

    def per_prompt(self) -> dict[str, list[float]]:
        """Every per-prompt score recorded, by label (`current` too)."""
        return {k: list(v) for k, v in self._scored.items() if v}

    def per_prompt_ranking(self) -> dict[str, list[float]]:
        """Every per-prompt `rank_by` value recorded, by label."""
        return {k: list(v) for k, v in self._ranked.items() if v}

    def dropped(self) -> dict[str, str]:
        """Each eliminated candidate and why, e.g. {'75': 'below the bar at 16 prompts'}."""
        return dict(self._dropped)

    def scored(self) -> int:
        """Model-prompt scorings so far, `current` included (the full gate's is `total * (1 + m)`)."""
        return sum(len(v) for v in self._scored.values())

    def _eliminate(self, current: np.ndarray, n: int) -> None:
        """The bar rule, then the leader rule against the best of what is left (first on a tie)."""
        scored = {k: np.asarray(self._scored[k]) for k in self._alive}
        for label in list(self._alive):
            mean, se = paired_bound(scored[label] - current)
            if mean + self.z * se < self.margin + self.tolerance:
                self._drop(label, f"below the bar at {n} prompts")
        if len(self._alive) < 2:
            return
        leader = self._leader()
        for label in [k for k in self._alive if k != leader]:
            mean, se = paired_bound(scored[label] - scored[leader])
            if mean + self.z * se < 0:
                self._drop(label, f"behind {leader} at {n} prompts")

    def _shortlist(self, n: int) -> None:
        """Keep the `finalists` survivors with the highest means (the first on a tie), drop the rest; by the
        `rank_by` measure where every survivor has it, else by the scores."""
        by = self._ranked if all(len(self._ranked.get(k, [])) == n for k in self._alive) else self._scored
        ranked = sorted(self._alive, key=lambda k: -np.mean(by[k]))  # stable: the first on a tie
        for label in ranked[self.finalists :]:
            self._drop(label, f"not among the {self.finalists} finalists at {n} prompts")

    def _leader(self) -> str:
        """The survivor with the highest mean so far (the first on a tie)."""
        return max(self._alive, key=lambda k: np.mean(self._scored[k]))

    def _within_tolerance(self, leader: str) -> bool:
        """Whether no other survivor can beat `leader` by more than the tolerance (with 0: none is left)."""
        for label in self._alive:
            if label != leader:
                mean, se = paired_bound(np.asarray(self._scored[label]) - np.asarray(self._scored[leader]))
                if mean + self.z * se >= self.tolerance:
                    return False
        return True

    def _final(self) -> str | None:
        """The full gate's rule on the survivors, on all N prompts."""
        means = {k: float(np.mean(v)) for k, v in self._scored.items() if k == CURRENT or k in self._alive}
        return best_over_bar(
            means, self._alive, self.margin, per_prompt=self._scored, margin_se=self.margin_se
        )

    def _drop(self, label: str, why: str) -> None:
        self._alive.remove(label)
        self._dropped[label] = why

    def _decide(self, choice: str | None) -> bool:
        self._done, self._choice = True, choice
        return True


def drive(
    race: Race,
    per_prompt: Mapping[str, Sequence[float]],
    rank_by: Mapping[str, Sequence[float]] | None = None,
) -> Race:
    """Run `race` to its decision on recorded scores (`current` and each candidate, per prompt, in prompt
    order; with `rank_by`, the values its shortlist ranks by), as `swap.WindowSwap._race` runs it with a
    scorer: for deterministic scoring (teacher-forced) the product's decisions at the product's scorings.
    Replays, simulations and tests drive a race with this."""
    while True:
        span = race.next_prompts()
        for label in [CURRENT, *race.survivors()]:
            ranked = None if rank_by is None else list(rank_by[label][span.start : span.stop])
            race.record(label, list(per_prompt[label][span.start : span.stop]), ranked)
        if race.step():
            return race
