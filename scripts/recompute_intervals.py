"""Recompute every interval of a reproduction report from the outcomes it keeps, and nothing else.

`alpharl reproduce` writes, beside results.md and results.csv, outcomes.npz (every per-problem 0/1 outcome
the intervals use, packed bits) and outcomes.json (its index, with the list of intervals results.md prints).
This reads those two files alone (no cache, no model), recomputes every interval and p-value of results.csv
and results.md (the per-category ones on their category's problems, from the category masks it keeps) and
every accuracy of results_by_category.csv with the report's own code, prints each disagreement and exits 1
on any (0 when all agree).

    python scripts/recompute_intervals.py default                     # results/reproduce/default
    python scripts/recompute_intervals.py path/to/results/folder
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suite", help="a suite name (results/reproduce/<suite>) or a results folder")
    args = parser.parse_args(argv)
    from alpharl_trainer.errors import AlphaRLError
    from alpharl_trainer.reproduce.recompute import check

    folder = Path(args.suite)
    if not folder.is_dir():
        folder = REPO / "results" / "reproduce" / args.suite
    if not (folder / "outcomes.npz").is_file():
        print(f"{folder}: no outcomes.npz (written by the suite since issue 26; rerun the suite)")
        return 2
    try:
        problems, checked = check(folder)
    except AlphaRLError as err:
        print(f"{folder}: {err}")
        return 2
    for problem in problems:
        print(problem)
    print(f"{folder}: {checked} rows and intervals checked, {len(problems)} mismatch(es)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
