"""results.csv: one row per (run, window end, method) with its cost (steps, and compute: training-step
equivalents with its choice's held-out scoring or the product's gate, `reproduce.compute`; `scored` the
weight sets its choice scored), speed-up by each, test scores, share of the full run's gain and paired
difference to the truncated run; the flat rows the markdown report reads too.

`diff_ci_low/high` (and `p_mcnemar`) are the run's own: a 95% bootstrap over its test problems, conditional
on its seed. Where the run's cell (task, loss, regime) has several seeds, `SEED_COLUMNS` add the cell's
comparison over them (the same on each seed's row): `seed_diff` the mean of the per-seed mean differences,
`seed_ci_low/high` its 95% t-interval over seeds, `seed_p` the two-sided one-sample t-test over seeds,
`hier_ci_low/high` the 95% two-level bootstrap (seeds, then one common resample of problems), and
`seeds_problem_ci_low/high` the problem-level 95% bootstrap with the seeds fixed (one common resample)."""

from __future__ import annotations

import csv
import io
from collections import defaultdict

from alpharl_trainer.reproduce.comparisons import Evidence
from alpharl_trainer.reproduce.registry import reference_of

SEED_COLUMNS = (
    "cell_seeds",
    "seed_diff",
    "seed_ci_low",
    "seed_ci_high",
    "seed_p",
    "hier_ci_low",
    "hier_ci_high",
    "seeds_problem_ci_low",
    "seeds_problem_ci_high",
)

RUN_KEYS = ("run", "task", "loss", "regime", "seed")
"""What names a run: the first columns of every table of rows."""
ROW_KEYS = (*RUN_KEYS, "T", "window", "window_step", "method", "cost_steps")
"""What names a row: its run, the window end and the method, and what the row cost in training steps."""

COLUMNS = (
    *ROW_KEYS,
    "speedup",
    "compute_steps",
    "speedup_by_compute",
    "scored",
    "test_n",
    "greedy",
    "gain_share",
    "diff_vs_truncated",
    "diff_ci_low",
    "diff_ci_high",
    "p_mcnemar",
    "sampled",
    "logprob",
    "off_task",
    "choice",
    "heldout",
    "error",
    *SEED_COLUMNS,
)


def gain_share(acc: float | None, res: dict) -> float | None:
    """(acc - acc_base) / (acc_full - acc_base) on greedy test accuracy, the full run's accuracy being the
    mean of its last 3 checkpoints (the admission rule's `gain`; the last checkpoint alone in older
    results); None without a gain to share."""
    gain = res["admission"]["gain"] if "admission" in res else res["full"]["greedy"] - res["base"]["greedy"]
    if acc is None or gain == 0:
        return None
    return (acc - res["base"]["greedy"]) / gain


def flat_rows(results: list[dict]) -> list[dict]:
    """Every run's rows, each with its run's keys and the derived columns (window share, cost, speed-up,
    gain share): the rows of results.csv, and what results.md groups by run."""
    out = []
    for res in results:
        for row in res["rows"]:
            out.append(
                {
                    **{k: res[k] for k in RUN_KEYS},
                    **row,
                    "T": res["steps"],
                    "test_n": res["test_problems"],
                    "cost_steps": row["cost"],
                    "window": row["window_step"] / res["steps"],
                    "speedup": res["steps"] / row["cost"],
                    "compute_steps": row.get("compute"),
                    "speedup_by_compute": res["steps"] / row["compute"] if row.get("compute") else None,
                    "gain_share": gain_share(row.get("greedy"), res),
                }
            )
    return out


def find_row(rows: list[dict], window_step: int, method: str) -> dict | None:
    """The row of `method` at window end `window_step`, if it was made."""
    return next((r for r in rows if r["window_step"] == window_step and r["method"] == method), None)


def cells(results: list[dict]) -> dict[tuple, list[dict]]:
    """Every run by its cell (task, loss, regime): a cell's runs are its seeds."""
    groups = defaultdict(list)
    for res in results:
        groups[(res["task"], res["loss"], res["regime"])].append(res)
    return dict(groups)


def seed_columns(results: list[dict], ev: Evidence) -> dict[tuple[str, int, str], dict]:
    """`SEED_COLUMNS` of every (run, window end, method) whose cell has several seeds that all have it."""
    out = {}
    for group in cells(results).values():
        if len(group) < 2:
            continue
        for row in group[0]["rows"]:
            end, method = row["window_step"], row["method"]
            c = ev.compare(group, f"{reference_of(method)}@{end}", f"{method}@{end}")
            if c is None:
                continue
            s = c.seeds
            values = dict(zip(SEED_COLUMNS, (len(group), s.diff, s.low, s.high, s.p, s.boot_low, s.boot_high,
                                             c.low, c.high), strict=True))  # fmt: skip
            out.update({(res["run"], end, method): values for res in group})
    return out


def csv_value(v) -> str:
    return f"{v:.5g}" if isinstance(v, float) else "" if v is None else str(v)


def render_csv(results: list[dict], ev: Evidence | None = None) -> str:
    """results.csv's text: the COLUMNS of every flat row, floats to 5 significant digits."""
    extra = seed_columns(results, ev or Evidence())
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in flat_rows(results):
        row = {**row, **extra.get((row["run"], row["window_step"], row["method"]), {})}
        writer.writerow({k: csv_value(v) for k, v in row.items()})
    return buffer.getvalue()
