"""results.csv: one row per (run, window end, method) with its cost, speed-up, test scores, share of the
full run's gain and paired difference to the truncated run; the flat rows the markdown report reads too."""

from __future__ import annotations

import csv
import io

COLUMNS = (
    "run",
    "task",
    "loss",
    "regime",
    "seed",
    "T",
    "window",
    "window_step",
    "method",
    "cost_steps",
    "speedup",
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
                    **{k: res[k] for k in ("run", "task", "loss", "regime", "seed")},
                    **row,
                    "T": res["steps"],
                    "test_n": res["test_problems"],
                    "cost_steps": row["cost"],
                    "window": row["window_step"] / res["steps"],
                    "speedup": res["steps"] / row["cost"],
                    "gain_share": gain_share(row.get("greedy"), res),
                }
            )
    return out


def find_row(rows: list[dict], window_step: int, method: str) -> dict | None:
    """The row of `method` at window end `window_step`, if it was made."""
    return next((r for r in rows if r["window_step"] == window_step and r["method"] == method), None)


def render_csv(results: list[dict]) -> str:
    """results.csv's text: the COLUMNS of every flat row, floats to 5 significant digits."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in flat_rows(results):
        writer.writerow({k: (f"{v:.5g}" if isinstance(v, float) else v) for k, v in row.items()})
    return buffer.getvalue()
