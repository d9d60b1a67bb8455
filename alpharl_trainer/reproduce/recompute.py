"""Recompute every interval of a reproduction report from its kept outcomes alone (outcomes.npz and its index
outcomes.json; no cache, no model) and list where the report disagrees: `scripts/recompute_intervals.py`.

- results.csv: per row its accuracy, its paired difference to the truncated run (mean, 95% bootstrap,
  McNemar's p) and, where its cell has several seeds, the seed-level columns.
- results_by_category.csv (where written): per row its problem count and accuracy on the category's
  problems (the category masks kept in outcomes.npz).
- results.md: every interval the report recorded as printed (the index's `printed` ledger: per-run
  problem-level differences, the over-seeds cells, the per-category cells on their category's problems
  only, the headline comparisons with their Holm-adjusted p-values, recomputed as one family), each
  recomputed and found in the text; and every numeric interval `[+a, +b]` in the text must be one of them,
  so none escapes the check.
"""

from __future__ import annotations

import csv
import re
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from alpharl_trainer import stats
from alpharl_trainer.reproduce.comparisons import (
    cell_text,
    compare_outcomes,
    headline_row,
    holm_family,
    problem_text,
)
from alpharl_trainer.reproduce.outcomes import read_outcomes
from alpharl_trainer.reproduce.registry import PAIRED_RESAMPLES, reference_of
from alpharl_trainer.reproduce.table import SEED_COLUMNS, csv_value

INTERVAL = re.compile(r"\[[+-]\d+\.\d{3}, [+-]\d+\.\d{3}\]")


def _split(arrays: dict, wanted: str) -> dict[str, dict]:
    """`{run: {key: array}}` of the arrays of split `wanted` (`test`, or `category`: the masks)."""
    out = defaultdict(dict)
    for name, bits in arrays.items():
        run, split, key = name.split("/", 2)
        if split == wanted:
            out[run][key] = bits
    return out


def _cells(index: dict) -> dict[tuple, list[str]]:
    """The runs of each cell (task, loss, regime), in the report's order."""
    cells = defaultdict(list)
    for run, meta in index["runs"].items():
        cells[(meta["task"], meta["loss"], meta["regime"])].append(run)
    return cells


_CACHE: dict[tuple, object] = {}


def _comparison(test: dict, runs: list[str], reference: str, method: str, category: str = "", masks=None):
    """`method - reference` over `runs` from the kept outcomes (each computed once per check); with a
    `category`, on that category's problems only (`masks`: run -> category -> mask; as the report, only
    where every run has the same mask: the seeds score the same problems)."""
    key = (id(test), tuple(runs), reference, method, category)
    if key not in _CACHE:
        have = all(reference in test.get(r, {}) and method in test.get(r, {}) for r in runs)
        if category:
            kept = [(masks or {}).get(r, {}).get(category) for r in runs]
            have = have and all(m is not None and np.array_equal(m, kept[0]) for m in kept)
        pick = {r: masks[r][category].astype(bool) if category else slice(None) for r in runs} if have else {}
        a = [test[r][reference][pick[r]] for r in runs] if have else None
        b = [test[r][method][pick[r]] for r in runs] if have else None
        _CACHE[key] = compare_outcomes(runs, a, b, reference, method) if have else None
    return _CACHE[key]


def check_csv(path: Path, index: dict, test: dict) -> list[str]:
    problems = []
    cells = {run: runs for runs in _cells(index).values() for run in runs}
    for line, row in enumerate(csv.DictReader(path.open()), start=2):
        run, end, method = row["run"], int(row["window_step"]), row["method"]
        key, reference = f"{method}@{end}", f"{reference_of(method)}@{end}"
        where = f"{path.name}:{line} ({run}, {key})"
        outcomes = test.get(run, {})
        expected = dict.fromkeys(
            ("diff_vs_truncated", "diff_ci_low", "diff_ci_high", "p_mcnemar", "greedy"), ""
        )
        if key in outcomes:
            expected["greedy"] = csv_value(float(outcomes[key].mean()))
        elif row["greedy"]:
            problems.append(f"{where}: accuracy {row['greedy']} but no outcomes kept")
        if key in outcomes and reference in outcomes:
            d = stats.paired(outcomes[reference], outcomes[key], resamples=PAIRED_RESAMPLES)
            expected.update(
                diff_vs_truncated=csv_value(d.diff),
                diff_ci_low=csv_value(d.low),
                diff_ci_high=csv_value(d.high),
                p_mcnemar=csv_value(d.p_mcnemar),
            )
        runs = cells.get(run, [run])
        c = _comparison(test, runs, reference, key) if len(runs) > 1 else None
        if c is not None:
            s = c.seeds
            values = (len(runs), s.diff, s.low, s.high, s.p, s.boot_low, s.boot_high, c.low, c.high)
            expected.update({k: csv_value(v) for k, v in zip(SEED_COLUMNS, values, strict=True)})
        else:
            expected.update(dict.fromkeys(SEED_COLUMNS, ""))
        for column, value in expected.items():
            if row.get(column, "") != value:
                problems.append(f"{where}: {column} is {row.get(column)!r}, recomputed {value!r}")
    return problems


def check_category_csv(path: Path, test: dict, masks: dict) -> list[str]:
    """results_by_category.csv: every row's problem count and accuracy on its category's problems."""
    problems = []
    for line, row in enumerate(csv.DictReader(path.open()), start=2):
        run, category = row["run"], row["category"]
        key = f"{row['method']}@{row['window_step']}" if row["window_step"] else row["method"]
        bits, mask = test.get(run, {}).get(key), masks.get(run, {}).get(category)
        where = f"{path.name}:{line} ({run}, {key}, {category})"
        if bits is None or mask is None:
            problems.append(f"{where}: outcomes or category not kept")
            continue
        chosen = bits[mask.astype(bool)]
        for column, value in (("n", str(len(chosen))), ("greedy", csv_value(float(chosen.mean())))):
            if row[column] != value:
                problems.append(f"{where}: {column} is {row[column]!r}, recomputed {value!r}")
    return problems


def check_markdown(path: Path, index: dict, test: dict, masks: dict | None = None) -> list[str]:
    problems, texts, headline = [], [], []
    for i, record in enumerate(index["printed"]):
        runs, reference, method = record["runs"], record["reference"], record["method"]
        category = record.get("category", "")
        c = _comparison(test, runs, reference, method, category, masks)
        if c is None:
            what = f"{method} - {reference}" + (f" on {category}" if category else "")
            lost = "outcomes not kept" + (", or the runs' categories differ" if category else "")
            problems.append(f"{path.name} interval {i} ({runs}, {what}): {lost}")
            continue
        if record["kind"] == "headline":
            headline.append((record, c))
            continue
        text = problem_text(c.diff, c.low, c.high) if record["kind"] == "problem" else cell_text(c)
        texts.append(_compare(path, record, text, problems))
    adjusted = holm_family([c for _, c in headline])
    for (record, c), p in zip(headline, adjusted, strict=True):
        texts.append(_compare(path, record, headline_row(record["label"], c, p), problems))
    markdown = path.read_text()
    for text, n in Counter(texts).items():
        if markdown.count(text) < n:
            problems.append(f"{path.name}: {text!r} printed {markdown.count(text)} times, recorded {n}")
    printed = Counter(INTERVAL.findall(markdown))
    recorded = Counter(x for t in texts for x in INTERVAL.findall(t))
    for interval in sorted((printed - recorded).keys()):
        problems.append(f"{path.name}: {interval} printed but not among the recorded intervals")
    return problems


def _compare(path: Path, record: dict, text: str, problems: list[str]) -> str:
    """The recorded text; a mismatch with the recomputed `text` is listed."""
    if text != record["text"]:
        what = f"{record['kind']} {record['method']} - {record['reference']} over {record['runs']}"
        problems.append(f"{path.name} {what}: printed {record['text']!r}, recomputed {text!r}")
    return record["text"]


def check(folder: Path) -> tuple[list[str], int]:
    """Every disagreement between the report in `folder` and its kept outcomes, and how many intervals and
    rows were checked."""
    index, arrays = read_outcomes(folder)
    if index["resamples"] != PAIRED_RESAMPLES or index.get("bootstrap_seed") != 0:
        return [f"outcomes.json: written with {index['resamples']} resamples, this code uses "
                f"{PAIRED_RESAMPLES}"], 0  # fmt: skip
    test, masks = _split(arrays, "test"), _split(arrays, "category")
    by_category = folder / "results_by_category.csv"
    try:
        problems = check_csv(folder / "results.csv", index, test)
        if by_category.is_file():
            problems += check_category_csv(by_category, test, masks)
        problems += check_markdown(folder / "results.md", index, test, masks)
    finally:
        _CACHE.clear()
    rows = sum(1 for _ in (folder / "results.csv").open()) - 1
    if by_category.is_file():
        rows += sum(1 for _ in by_category.open()) - 1
    return problems, rows + len(index["printed"])
