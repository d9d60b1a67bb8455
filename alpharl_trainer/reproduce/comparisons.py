"""The reproduction report's paired comparisons, computed from the per-problem test outcomes of the result
dicts, and how each is printed.

Two kinds of interval, both 95%:
- problem-level: a bootstrap over the test problems with the seeds held fixed (one seed: the run's own
  problems; several: one common resample of problem indices for every seed, as the seeds score the same
  problems). It is conditional on the trained models: seed-to-seed variation is not in it.
- seed-level (several seeds only): the t-interval over the per-seed mean differences, with its two-sided
  one-sample t-test, and the two-level bootstrap (seeds, then one common resample of problems).

A cell pooled over seeds is called better or worse only where its seed-level t-interval excludes 0. The
headline comparisons are named in advance (`HEADLINE`): default vs the truncated run at the same step and at
the same compute (`reproduce.compute`), and default vs the baseline with the best held-out score, at every
window end; their seed-level t-test p-values are adjusted
together by Holm's step-down method, and only they make claims. `Evidence` computes each comparison once and
keeps a ledger of every interval results.md prints, which `evidence.write_outcomes` saves beside the
outcomes so that `scripts/recompute_intervals.py` can recompute each from the outcomes alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from alpharl_trainer import stats
from alpharl_trainer.reproduce.registry import BASELINES, PAIRED_RESAMPLES

HEADLINE = (
    "default - truncated",
    "default - truncated at equal compute",
    "default - best baseline on held-out",
)
"""The comparisons named in advance, at every window end of every headline cell: the only ones with claims."""
ALPHA = 0.05


@dataclass(frozen=True)
class Comparison:
    """`method - reference` (outcome keys `name@window_step`) on the test problems of `runs` (a cell's
    seeds)."""

    runs: tuple[str, ...]
    reference: str
    method: str
    problem: stats.Paired
    """Problem-level: seeds held fixed."""
    seeds: stats.SeedLevel | None
    """Seed-level (None with one run)."""

    @property
    def diff(self) -> float:
        return self.problem.diff

    @property
    def low(self) -> float:
        return self.problem.low

    @property
    def high(self) -> float:
        return self.problem.high

    @property
    def verdict(self) -> str:
        """The problem-level verdict (conditional on the seeds): for tests, never printed as a claim."""
        return self.problem.verdict


def compare_outcomes(runs, a: list, b: list, reference: str, method: str) -> Comparison:
    """The comparison of per-run outcome lists `a` (reference) and `b` (method), one of each per run."""
    problem = stats.problem_level(a, b, resamples=PAIRED_RESAMPLES)
    seeds = stats.seed_level(a, b, resamples=PAIRED_RESAMPLES) if len(a) > 1 else None
    return Comparison(tuple(runs), reference, method, problem, seeds)


def compare(group: list[dict], reference: str, method: str) -> Comparison | None:
    """`method - reference` on the test split over the runs of `group`; None unless every run has both."""
    outcomes = [res.get("per_problem", {}) for res in group]
    if not group or not all(reference in o and method in o for o in outcomes):
        return None
    a, b = [o[reference] for o in outcomes], [o[method] for o in outcomes]
    return compare_outcomes([res["run"] for res in group], a, b, reference, method)


def interval(low: float, high: float) -> str:
    if math.isnan(low) or math.isnan(high):
        return "-"
    return f"[{low:+.3f}, {high:+.3f}]"


def problem_text(diff: float, low: float, high: float) -> str:
    """A problem-level difference, descriptive: `+0.040 [+0.010, +0.070]`."""
    return f"{diff:+.3f} {interval(low, high)}"


def cell_text(c: Comparison) -> str:
    """A cell over seeds: `mean [seed-level t-interval] ([problem-level interval])`, better/worse only where
    the seed-level interval excludes 0; with one seed `mean - ([problem-level])`, no verdict."""
    problem = f"({interval(c.problem.low, c.problem.high)})"
    if c.seeds is None:
        return f"{c.diff:+.3f} - {problem}"
    verdict = "" if c.seeds.verdict == "tie" else f" {c.seeds.verdict}"
    return f"{c.seeds.diff:+.3f} {interval(c.seeds.low, c.seeds.high)} {problem}{verdict}"


def p_text(p: float) -> str:
    return "-" if math.isnan(p) else f"{p:.3g}"


def headline_row(label: str, c: Comparison, p_holm: float) -> str:
    """One row of the headline comparisons table (see `HEADLINE_COLUMNS`)."""
    if c.seeds is None:
        return (
            f"| {label} | {c.diff:+.3f} | - | - | {interval(c.low, c.high)} | - | - | "
            "no seed-level test (one seed) |"
        )
    s = c.seeds
    verdict = "no significant difference"
    if p_holm < ALPHA:
        verdict = "better" if s.diff > 0 else "worse"
    return (
        f"| {label} | {s.diff:+.3f} | {interval(s.low, s.high)} | {interval(s.boot_low, s.boot_high)} | "
        f"{interval(c.low, c.high)} | {p_text(s.p)} | {p_text(p_holm)} | {verdict} |"
    )


HEADLINE_COLUMNS = [
    "| comparison (named in advance) | mean over seeds | seed-level 95% t-interval | two-level bootstrap 95% "
    "| problem-level 95% (seeds fixed) | p (t-test over seeds) | p, Holm-adjusted "
    "| verdict (Holm p < 0.05) |",
    "|---|---|---|---|---|---|---|---|",
]


def holm_family(comparisons: list[Comparison]) -> list[float]:
    """Holm-adjusted seed-level p-values of the headline family (a comparison without a seed-level test
    counts as p = 1: it stays in the family and can never be called)."""
    ps = [1.0 if c.seeds is None or math.isnan(c.seeds.p) else c.seeds.p for c in comparisons]
    return stats.holm(ps)


def best_on_heldout(group: list[dict], end: int) -> str | None:
    """The baseline at window end `end` with the best mean held-out accuracy over the runs of `group` (ties:
    the registry's order), among those with a held-out score in every run; never chosen on the test split."""
    scores = {}
    for method in BASELINES:
        rows = [next((r for r in res["rows"] if r["window_step"] == end and r["method"] == method), None)
                for res in group]  # fmt: skip
        if all(r is not None and r.get("heldout") is not None and "greedy" in r for r in rows):
            scores[method] = sum(r["heldout"] for r in rows) / len(rows)
    return max(scores, key=scores.get, default=None)


class Evidence:
    """Each comparison of one report computed once, and the ledger of every interval results.md prints: kind
    (`problem`, `cell` or `headline`), runs, outcome keys, label, the printed text, and the category of the
    test problems it is computed on (absent: all of them)."""

    def __init__(self):
        self._cache: dict[tuple, Comparison | None] = {}
        self.printed: list[dict] = []

    def compare(self, group: list[dict], reference: str, method: str) -> Comparison | None:
        key = (tuple(res["run"] for res in group), reference, method)
        if key not in self._cache:
            self._cache[key] = compare(group, reference, method)
        return self._cache[key]

    def record(
        self, kind: str, runs, reference: str, method: str, text: str, label: str = "", category: str = ""
    ) -> str:
        """Record a printed interval; `category`: computed on that category's test problems only."""
        entry = {
            "kind": kind,
            "runs": list(runs),
            "reference": reference,
            "method": method,
            "label": label,
            "text": text,
        }
        self.printed.append({**entry, "category": category} if category else entry)
        return text

    def problem(self, c: Comparison | None) -> str:
        """A per-run (problem-level) difference, recorded; "-" when there is none."""
        if c is None:
            return "-"
        return self.record("problem", c.runs, c.reference, c.method, problem_text(c.diff, c.low, c.high))

    def cell(self, c: Comparison | None) -> str:
        if c is None:
            return "-"
        return self.record("cell", c.runs, c.reference, c.method, cell_text(c))

    def headline(self, labelled: list[tuple[str, Comparison]]) -> list[str]:
        """The headline rows of the whole family, Holm-adjusted together, recorded."""
        adjusted = holm_family([c for _, c in labelled])
        return [
            self.record("headline", c.runs, c.reference, c.method, headline_row(label, c, p), label)
            for (label, c), p in zip(labelled, adjusted, strict=True)
        ]
