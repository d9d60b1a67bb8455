"""The suite's verdicts: measured numbers next to the targets they answer.

- >= 96% of the full run's gain at <= 40% of the steps, >= 98% at <= 25% (best of default / default+ft /
  default+jumps within that budget);
  and the same within that budget of compute (`reproduce.compute`: training-step equivalents, the gate
  included);
- default never significantly below the truncated run on the test split (and no collapse off-task: every
  row of ours that changes weights, the fine-tune and the jumps included, against its truncated run);
- default >= every baseline at equal step budget.
Every comparison is one run's, paired on the same test problems with a 95% bootstrap interval over them:
conditional on the run's seed, so results.md prints it as a description, without a verdict (the claims are
the headline comparisons over seeds, `comparisons.HEADLINE`).
"""

from __future__ import annotations

import math

from alpharl_trainer.reproduce.comparisons import Comparison, compare
from alpharl_trainer.reproduce.registry import BASELINES, OURS, PAIRED_AT
from alpharl_trainer.reproduce.table import find_row


def paired_difference(res: dict, reference: str, method: str) -> Comparison | None:
    """`method - reference` on one run's test split, paired per problem (keys `method@window_step`)."""
    return compare([res], reference, method)


def targets(res: dict, rows: list[dict]) -> dict:
    """The suite's targets for one run, measured; every difference paired with its 95% interval."""
    steps = res["steps"]
    ours = [r for r in rows if r["method"] in OURS and r.get("greedy") is not None]

    def best_within(fraction: float, cost: str = "cost") -> dict | None:
        """Our best row costing at most `fraction` of T in `cost`: steps, or `compute` (gate included)."""
        eligible = [r for r in ours if r.get(cost, math.inf) <= fraction * steps + 1e-9]
        return max(eligible, key=lambda r: r["greedy"], default=None)

    vs_truncated, vs_off, vs_baselines = [], [], []
    for end in sorted({r["window_step"] for r in rows}):
        default, truncated = find_row(rows, end, "default"), find_row(rows, end, "truncated")
        if default is None or "greedy" not in default:
            continue
        vs_truncated.append(paired_difference(res, f"truncated@{end}", f"default@{end}"))
        vs_off.append(default["off_task"] - truncated["off_task"])
        for method, reference in PAIRED_AT.items():  # every other row of ours that changes weights
            ours_there, there = find_row(rows, end, method), find_row(rows, end, reference)
            if method in OURS and ours_there and there and "off_task" in ours_there:
                vs_off.append(ours_there["off_task"] - there["off_task"])
        others = [find_row(rows, end, m) for m in BASELINES]
        best = max((o for o in others if o and "greedy" in o), key=lambda o: o["greedy"])
        d = paired_difference(res, f"{best['method']}@{end}", f"default@{end}")
        vs_baselines.append((end, d, best["method"]))
        for method in ("default+ft", "default+jumps"):
            ours_there, reference = find_row(rows, end, method), find_row(rows, end, PAIRED_AT[method])
            if ours_there and reference:
                d = paired_difference(res, f"{PAIRED_AT[method]}@{end}", f"{method}@{end}")
                vs_baselines.append((ours_there["cost"], d, PAIRED_AT[method]))
    known = [d for d in vs_truncated if d is not None]
    return {
        "at40": best_within(0.4),
        "at25": best_within(0.25),
        "at40_compute": best_within(0.4, "compute"),
        "at25_compute": best_within(0.25, "compute"),
        "worst_vs_truncated": min(known, key=lambda d: d.diff, default=None),
        "min_off_task_vs_truncated": min(vs_off, default=math.nan),
        "vs_baselines": [x for x in vs_baselines if x[1] is not None],
    }
