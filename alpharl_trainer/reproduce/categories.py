"""What a gain is made of: the suite's scores split by the test problems' category (sort: the list length,
`len5`; arithmetic: the digit counts, `3+2`).

Every run records its test problems' categories once, in the split's order (`test_categories`, beside the
per-problem outcomes; outcomes.npz keeps them as one packed 0/1 mask per category). From them:
- results.md: per cell of several seeds a table of greedy accuracy per category (mean over seeds) for a short
  list of methods fixed here (`CATEGORY_METHODS`, not picked from the numbers) and `default - truncated` per
  category with its seed-level interval; per single-seed run a compact line per window, truncated vs default.
  All descriptive, outside the comparisons named in advance; every interval recorded in the `Evidence` ledger
  with its category, so `recompute` checks it.
- results_by_category.csv: one row per (run, window, method, category), a long table, so any number of
  categories fits one fixed set of columns.
"""

from __future__ import annotations

import csv
import io
import re
import statistics

from alpharl_trainer.reproduce.comparisons import Comparison, Evidence, cell_text, compare_outcomes
from alpharl_trainer.reproduce.config import RunSpec, Suite
from alpharl_trainer.reproduce.table import ROW_KEYS, RUN_KEYS, cells, csv_value
from alpharl_trainer.tasks import get_task

CATEGORY_METHODS = (
    "truncated",
    "default",
    "expo",
    "fixed_basis_saturating",
    "oracle_rank1",
    "default+ft",
    "truncated@ft",
)
"""The per-category table's methods, fixed in advance: the truncated run, the product, ExPO and the saturating
fixed basis (the strongest baselines of the development runs' candidate study, results/reproduce/READING.md),
the diagnostic oracle, and the fine-tune at its own budget."""
ALL = "all"


def split_categories(spec: RunSpec, suite: Suite) -> list[str]:
    """The categories of the run's test problems, in the split's order: the problems `Evaluator` scores (the
    regime's mix), drawn again without a model (for results saved before they were recorded)."""
    from alpharl_trainer.reproduce.evaluation import test_problems

    task = get_task(spec.task, mix=suite.regimes[spec.regime].mix)
    return [p.category for p in test_problems(task, suite.eval)]


def with_categories(res: dict, spec: RunSpec, suite: Suite) -> dict:
    """`res` with its `test_categories` (drawn again if the saved result predates them)."""
    if "test_categories" not in res:
        res["test_categories"] = split_categories(spec, suite)
    return res


def order(names) -> list[str]:
    """Categories in natural order (`len5` before `len10`, `3+2` before `3+10`)."""
    return sorted(set(names), key=lambda c: ([int(x) for x in re.findall(r"\d+", c)], c))


def categories_of(res: dict) -> list[str] | None:
    """The run's test categories, if recorded for every test problem."""
    cats = res.get("test_categories")
    return cats if cats and len(cats) == res.get("test_problems", len(cats)) else None


def indices(categories: list[str], category: str) -> list[int]:
    """The positions of `category`'s problems in the test split (ALL: every problem)."""
    if category == ALL:
        return list(range(len(categories)))
    return [i for i, c in enumerate(categories) if c == category]


def accuracy(res: dict, key: str, category: str) -> float | None:
    """Greedy accuracy of outcome key `key` (`method@window_step`, `base`, `full`) on the category's
    problems."""
    cats = categories_of(res)
    bits = _outcomes(res, key)
    if cats is None or bits is None or len(bits) != len(cats):
        return None
    idx = indices(cats, category)
    return sum(bits[i] for i in idx) / len(idx) if idx else None


def _outcomes(res: dict, key: str) -> list[int] | None:
    if key in ("base", "full"):
        return res.get(key, {}).get("per_problem")
    return res.get("per_problem", {}).get(key)


def compare_in(group: list[dict], reference: str, method: str, category: str) -> Comparison | None:
    """`method - reference` over the runs of `group` on the problems of `category` (ALL: every problem);
    None unless every run has both and the same categories."""
    cats = [categories_of(res) for res in group]
    if not group or cats[0] is None or any(c != cats[0] for c in cats):
        return None
    outcomes = [res.get("per_problem", {}) for res in group]
    if not all(reference in o and method in o for o in outcomes):
        return None
    idx = indices(cats[0], category)
    a = [[o[reference][i] for i in idx] for o in outcomes]
    b = [[o[method][i] for i in idx] for o in outcomes]
    return compare_outcomes([res["run"] for res in group], a, b, reference, method)


def _record(ev: Evidence, c: Comparison | None, category: str) -> str:
    if c is None:
        return "-"
    category = "" if category == ALL else category  # ALL: the over-seeds cell, recorded as such
    return ev.record("cell", c.runs, c.reference, c.method, cell_text(c), category=category)


def _ends(res: dict) -> list[int]:
    return sorted({r["window_step"] for r in res["rows"]})


def _mean(values: list[float | None]) -> str:
    values = [v for v in values if v is not None]
    return f"{statistics.fmean(values):.3f}" if values else "-"


def _counts(cats: list[str]) -> dict[str, int]:
    return {c: cats.count(c) for c in order(cats)}


def _cell_table(group: list[dict], ev: Evidence) -> list[str]:
    """A cell of several seeds: per window and category the methods' accuracy and default - truncated."""
    first = group[0]
    counts = {ALL: len(categories_of(first)), **_counts(categories_of(first))}
    ends = _ends(first)
    base, full = ([_mean([accuracy(r, key, c) for r in group]) for c in counts] for key in ("base", "full"))
    reference = ", ".join(f"{c} {b} / {f}" for c, b, f in zip(counts, base, full, strict=True))
    lines = [
        f"### {first['task']} / {first['loss']} / {first['regime']}, seeds {[r['seed'] for r in group]}",
        "",
        f"Base / full run (its last checkpoint, step {first['steps']}) per category, mean over seeds: "
        f"{reference}.",
        "",
        "| window | category (n) | " + " | ".join(CATEGORY_METHODS) + " | default - truncated over seeds |",
        "|---|---|" + "---|" * (len(CATEGORY_METHODS) + 1),
    ]
    for end in ends:
        for category, n in counts.items():
            accs = [_mean([accuracy(r, f"{m}@{end}", category) for r in group]) for m in CATEGORY_METHODS]
            diff = _record(ev, compare_in(group, f"truncated@{end}", f"default@{end}", category), category)
            window = f"w={end / first['steps']:.0%} (step {end})" if category == ALL else ""
            lines.append(f"| {window} | {category} ({n}) | " + " | ".join(accs) + f" | {diff} |")
    return [*lines, ""]


def _run_lines(res: dict) -> list[str]:
    """A single-seed run: per window, truncated -> default accuracy per category and their difference."""
    cats = categories_of(res)
    counts = {ALL: len(cats), **_counts(cats)}
    lines = [f"{res['run']} (truncated -> default: greedy accuracy, and the difference):", ""]
    for end in _ends(res):
        parts = []
        for category, n in counts.items():
            a, b = (accuracy(res, f"{m}@{end}", category) for m in ("truncated", "default"))
            if a is None or b is None:
                parts.append(f"{category} (n={n}) -")
            else:
                parts.append(f"{category} (n={n}) {a:.3f} -> {b:.3f} ({b - a:+.3f})")
        lines.append(f"- w={end / res['steps']:.0%} (step {end}): " + "; ".join(parts))
    return [*lines, ""]


def category_section(results: list[dict], ev: Evidence) -> list[str]:
    """results.md's per-category section (empty when no run recorded its categories)."""
    groups = [g for g in cells(results).values() if all(categories_of(r) for r in g)]
    if not groups:
        return []
    lines = [
        "## Per category: what the gains are made of (descriptive)",
        "",
        "The test problems split by category (sort: list length; arithmetic: digit counts); every method is "
        "scored on the same problems, so a category's accuracies and differences are paired as the totals "
        "are. Descriptive only, outside the comparisons named in advance: nothing here is a claim. Over "
        "several seeds: greedy accuracy per category, the mean over seeds (default+ft and truncated@ft at "
        "their own budget, w + fine-tune steps), and `default - truncated` per category as mean "
        "[seed-level 95% t-interval over the per-seed mean differences] ([problem-level 95% bootstrap over "
        "the category's problems, seeds fixed]); better/worse only where the seed-level interval excludes "
        "0, unadjusted. The methods are fixed in the harness (`categories.CATEGORY_METHODS`). Every row and "
        "method in results_by_category.csv.",
        "",
    ]
    for group in groups:
        if len(group) > 1:
            lines += _cell_table(group, ev)
    singles = [g[0] for g in groups if len(g) == 1]
    if singles:
        lines += ["Runs of one seed (no seed-level interval):", ""]
        for res in singles:
            lines += _run_lines(res)
    return lines


CATEGORY_COLUMNS = (*ROW_KEYS, "category", "n", "greedy")


def category_rows(res: dict) -> list[dict]:
    """Every scored (method, window end) of a run, and its base and full run, per category."""
    cats = categories_of(res)
    if cats is None:
        return []
    cost = {f"{r['method']}@{r['window_step']}": r["cost"] for r in res["rows"]}
    keys = [("base", None), ("full", None)]
    keys += [(k, int(k.rpartition("@")[2])) for k in res.get("per_problem", {})]
    out = []
    for key, end in keys:
        for category, n in _counts(cats).items():
            greedy = accuracy(res, key, category)
            if greedy is None:
                continue
            out.append(
                {
                    **{k: res[k] for k in RUN_KEYS},
                    "T": res["steps"],
                    "window": None if end is None else end / res["steps"],
                    "window_step": end,
                    "method": key.rpartition("@")[0] or key,
                    "cost_steps": cost.get(key, 0 if key == "base" else res["steps"]),
                    "category": category,
                    "n": n,
                    "greedy": greedy,
                }
            )
    return out


def render_category_csv(results: list[dict]) -> str:
    """results_by_category.csv's text (a header alone when no run recorded its categories)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, CATEGORY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for res in results:
        for row in category_rows(res):
            writer.writerow({k: csv_value(v) for k, v in row.items()})
    return buffer.getvalue()
