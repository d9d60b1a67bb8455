"""`alpharl reproduce-real`: the product on a real pretrained model (SmolLM2-135M-Instruct), paired.

Runs the real-model suite (default recipes/reproduce/real.yaml): per seed, the full GRPO run of
recipes/real/grpo.yaml with AlphaRL off, and at each window end `alpharl train` with AlphaRL on (snapshots,
forecast, gate, swap, stop); scores every model greedily on the same test problems, runs the paper's
diagnostics (`alpharl analyze`, the rank-1-only model against a random control, `alpharl predict`) and writes
results.md, results.csv, outcomes.json and plots to the suite's `out`. A stopped suite resumes from its
caches. `--seeds S --runs-only` trains some seeds only, so seeds can train in separate processes at once.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

from alpharl_trainer.commands.arg_types import positive_int

DEFAULT = Path(__file__).resolve().parents[2] / "recipes" / "reproduce" / "real.yaml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "suite", nargs="?", type=Path, default=DEFAULT, help="suite recipe (default: real.yaml)"
    )
    parser.add_argument("--seeds", type=int, nargs="+", help="only these seeds (default: the suite's)")
    parser.add_argument(
        "--threads", type=positive_int, help="torch threads per process (default: the suite's)"
    )
    parser.add_argument("--runs-only", action="store_true", help="train the runs; score and report nothing")


def run(args: argparse.Namespace) -> int:
    from alpharl_trainer.reproduce.real import load_real_suite, run_real_suite
    from alpharl_trainer.reproduce.real_report import write_report

    suite = load_real_suite(args.suite)
    if args.seeds:
        suite = dataclasses.replace(suite, seeds=tuple(args.seeds))
    if args.threads:
        suite = dataclasses.replace(suite, threads=args.threads)
    start = time.perf_counter()
    result = run_real_suite(suite, runs_only=args.runs_only)
    if result is not None:
        write_report(suite, **result, seconds=time.perf_counter() - start)
        print(f"wrote {suite.out}/results.md, results.csv, outcomes.json and accuracy_vs_step.png")
    return 0
