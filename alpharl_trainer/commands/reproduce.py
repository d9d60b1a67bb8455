"""`alpharl reproduce`: run a reproduction suite (full RL runs, every method at every window, report)."""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.tiny import REPO_ROOT

DEFAULT = REPO_ROOT / "recipes" / "reproduce" / "default.yaml"
QUICK = REPO_ROOT / "recipes" / "reproduce" / "quick.yaml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", nargs="?", type=Path, help=f"suite recipe (default: {DEFAULT.name})")
    parser.add_argument("--quick", action="store_true", help=f"run the quick suite ({QUICK.name}, < 10 min)")
    parser.add_argument("--out", type=Path, help="results folder (default: the recipe's `out`)")
    parser.add_argument("--work-dir", type=Path, help="checkpoints and per-run results (default: recipe's)")
    parser.add_argument("--model", type=Path, help="base policy folder (default: the cached tiny SFT model)")


def run(args: argparse.Namespace) -> int:
    from alpharl_trainer.reproduce import load_suite
    from alpharl_trainer.reproduce.report import write_report
    from alpharl_trainer.reproduce.suite import log, run_suite

    if args.quick and args.recipe is not None:
        raise AlphaRLError("give a recipe or --quick, not both")
    suite = load_suite(QUICK if args.quick else args.recipe or DEFAULT)
    overrides = {k: v for k, v in (("out", args.out), ("work_dir", args.work_dir)) if v is not None}
    suite = dataclasses.replace(suite, **overrides)
    if args.model is None:
        from alpharl_trainer.tiny import ensure_tiny_model

        base = ensure_tiny_model()
    elif not (args.model / "config.json").is_file():
        raise AlphaRLError(f"--model {args.model}: not a model checkpoint folder (no config.json)")
    else:
        base = args.model
    start = time.perf_counter()
    results = run_suite(suite, base)
    seconds = time.perf_counter() - start
    out = write_report(suite, results, seconds, suite.out)
    log(
        f"suite {suite.name}: {len(results)} runs in {seconds / 60:.1f} min (budget {suite.budget_minutes:g} "
        f"min); report in {out}/results.md"
    )
    return 0
