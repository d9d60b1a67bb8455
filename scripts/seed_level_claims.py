"""Seed-level check of the reproduction claims, from a committed results.csv alone.

For the headline run's seeds (the run name that appears with more than one seed, e.g. sort-grpo-climbing
-s3/-s4/-s5) it prints, per window and method, each seed's difference to the truncated run at the same cost
(the difference of the two greedy accuracies on the same test problems, which is that seed's mean paired
difference, also in problems net of 5,000) and the 95% t-interval over the seeds (seeds are the unit; the
problem-level brackets of results.md hold the seeds fixed). Then named comparisons (`--pair`), the off-task
differences, the truncated run's step at which it reaches each default cell's accuracy, and the single-seed
runs (no seed-level interval exists for them).

    python scripts/seed_level_claims.py default              # results/reproduce/default/results.csv
    python scripts/seed_level_claims.py development
    python scripts/seed_level_claims.py path/to/results.csv --pair default+jumps@0.1:truncated@0.4

the t-interval is `stats.seed_interval`'s (numpy and the standard library).
"""

from __future__ import annotations

import argparse
import csv
import math
import re
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from alpharl_trainer.stats import T_975, Z_975, seed_interval  # noqa: E402  (numpy only, no torch)

REFERENCE = {"default+ft": "truncated@ft", "default+jumps": "truncated@jumps"}
"""Rows whose cost differs from the window end, and the truncated row at their cost."""
DEFAULT_PAIRS = [
    *(
        f"default@{w}:{m}@{w}"
        for w in ("0.1", "0.25", "0.4")
        for m in ("expo", "relex", "fixed_basis_saturating")
    ),
    "default+jumps@0.1:truncated@0.4",
    "default+jumps@0.1:default@0.4",
    "default+jumps@0.1:default+ft@0.4",
]


def load(path: Path) -> dict[tuple[str, str, str], dict]:
    with path.open() as handle:
        return {(r["run"], r["window"], r["method"]): r for r in csv.DictReader(handle)}


def regimes(rows) -> dict[str, list[str]]:
    """Run names grouped by their name without the seed suffix."""
    groups: dict[str, set[str]] = defaultdict(set)
    for run, _, _ in rows:
        groups[re.sub(r"-s\d+$", "", run)].add(run)
    return {name: sorted(runs, key=lambda r: int(r.rsplit("-s", 1)[1])) for name, runs in groups.items()}


def acc(rows, run, window, method) -> float:
    return float(rows[(run, window, method)]["greedy"])


def fmt(x: float) -> str:
    return "nan" if math.isnan(x) else f"{x:+.3f}"


def line(label: str, per_seed: list[float], n: int) -> str:
    mean, low, high = seed_interval(per_seed)
    seeds = " ".join(fmt(d) for d in per_seed)
    net = " ".join(f"{round(d * n):+d}" for d in per_seed)
    verdict = "excludes 0" if low > 0 or high < 0 else "includes 0"
    return (
        f"  {label:<44} per seed {seeds} (net {net} of {n}) | {fmt(mean)} [{fmt(low)}, {fmt(high)}] {verdict}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "results", help="a results.csv, a results folder, or a suite name under results/reproduce"
    )
    parser.add_argument("--pair", action="append", help="A@window:B@window, A minus B per seed (repeatable)")
    args = parser.parse_args(argv)
    path = Path(args.results)
    if path.is_dir():
        path = path / "results.csv"
    elif not path.is_file():
        path = REPO / "results" / "reproduce" / args.results / "results.csv"
    rows = load(path)
    groups = regimes(rows)
    headline = [name for name, runs in groups.items() if len(runs) > 1]
    if len(headline) != 1:
        print(f"{path}: expected one regime with several seeds, found {headline}")
        return 2
    runs = groups[headline[0]]
    n = int(rows[next(k for k in rows if k[0] == runs[0])]["test_n"])
    windows = sorted({w for r, w, _ in rows if r == runs[0]}, key=float)
    print(f"{path}: {headline[0]}, seeds {[r.rsplit('-s', 1)[1] for r in runs]}, {n} test problems each")
    df = len(runs) - 1
    print(f"95% t-interval over {len(runs)} seeds, t({df}) = {T_975.get(df, Z_975):.3f}\n")

    print("Difference to the truncated run at the same cost (greedy accuracy, same problems):")
    for w in windows:
        methods = [m for r, ww, m in rows if r == runs[0] and ww == w and not m.startswith("truncated")]
        print(f"window {w} (step {rows[(runs[0], w, 'truncated')]['window_step']})")
        for m in methods:
            ref = REFERENCE.get(m, "truncated")
            per_seed = [acc(rows, r, w, m) - acc(rows, r, w, ref) for r in runs]
            csv_diff = [float(rows[(r, w, m)]["diff_vs_truncated"]) for r in runs]
            assert np.allclose(per_seed, csv_diff, atol=1e-9) or ref == "truncated", (
                m,
                w,
                per_seed,
                csv_diff,
            )
            cost = rows[(runs[0], w, m)]["cost_steps"]
            print(line(f"{m} (cost {cost}) - {ref}", csv_diff, n))

    print("\nNamed comparisons (A - B per seed, both greedy on the same problems):")
    for pair in args.pair or DEFAULT_PAIRS:
        (a, wa), (b, wb) = (side.rsplit("@", 1) for side in pair.split(":"))
        wa, wb = (next(w for w in windows if float(w) == float(x)) for x in (wa, wb))
        per_seed = [acc(rows, r, wa, a) - acc(rows, r, wb, b) for r in runs]
        ca, cb = rows[(runs[0], wa, a)]["cost_steps"], rows[(runs[0], wb, b)]["cost_steps"]
        print(line(f"{a}@{wa} ({ca} steps) - {b}@{wb} ({cb} steps)", per_seed, n))

    print("\nOff-task accuracy, method - truncated at the same cost (500 problems of the other task):")
    for w in windows:
        for m in ("default", "default+ft", "default+jumps"):
            if (runs[0], w, m) not in rows:
                continue
            ref = REFERENCE.get(m, "truncated")
            per_seed = [
                float(rows[(r, w, m)]["off_task"]) - float(rows[(r, w, ref)]["off_task"]) for r in runs
            ]
            print(line(f"{m}@{w} - {ref}", per_seed, 500))

    print("\nTraining step at which the truncated run (mean over seeds, linear between its scored steps)")
    print(
        "reaches each default cell's mean accuracy; cost_steps counts training steps, not the gate's scoring:"
    )
    curve = defaultdict(list)
    for r in runs:
        for (run, _, m), row in rows.items():
            if run == r and m.startswith("truncated"):
                curve[int(row["cost_steps"])].append(float(row["greedy"]))
    steps = sorted(curve)
    means = [float(np.mean(curve[s])) for s in steps]
    for w in windows:
        for m in ("default", "default+ft", "default+jumps"):
            if (runs[0], w, m) not in rows:
                continue
            a = float(np.mean([acc(rows, r, w, m) for r in runs]))
            cost = rows[(runs[0], w, m)]["cost_steps"]
            where = (
                f"step {np.interp(a, means, steps):.0f}"
                if means[0] <= a <= means[-1]
                else "outside the curve"
            )
            print(f"  {m}@{w}: {a:.3f} at {cost} training steps; the truncated run reaches it at {where}")
    print("  truncated run: " + ", ".join(f"step {s} {v:.3f}" for s, v in zip(steps, means, strict=True)))

    print("\nSingle-seed runs (problem-level interval from results.csv, conditional on its seed):")
    for name, single in groups.items():
        if name == headline[0]:
            continue
        for r in single:
            for w in windows:
                for m in ("default", "default+ft", "default+jumps"):
                    row = rows.get((r, w, m))
                    if row:
                        d, lo, hi = (
                            float(row[k]) for k in ("diff_vs_truncated", "diff_ci_low", "diff_ci_high")
                        )
                        ref = REFERENCE.get(m, "truncated")
                        off = float(row["off_task"]) - float(rows[(r, w, ref)]["off_task"])
                        print(
                            f"  {r} {m}@{w} ({row['cost_steps']} steps): {fmt(d)} [{fmt(lo)}, {fmt(hi)}], "
                            f"off-task {fmt(off)}, p_mcnemar {row['p_mcnemar']}"
                        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
