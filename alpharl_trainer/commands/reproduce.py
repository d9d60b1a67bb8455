"""`alpharl reproduce`: the paper's Table 1 at CPU scale, against baselines.

Runs a reproduction suite (a YAML recipe, default recipes/reproduce/default.yaml): full RL runs from the
shipped tiny SFT policy, then at each window end every method (AlphaRL as the paper's scripts, this project's
default, truncated run, ExPO, LAWA, ...) predicts from the window's checkpoints only, and every prediction
is scored the same way on the task's test split. Writes results.md, results.csv and plots to --out. A
stopped suite resumes from its finished runs; --quick runs a small suite in under 10 minutes.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

from alpharl_trainer.atomic import check_output
from alpharl_trainer.errors import AlphaRLError

# build_tiny has the same constant, but importing it imports torch: `--help` must answer at once
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT = REPO_ROOT / "recipes" / "reproduce" / "default.yaml"
QUICK = REPO_ROOT / "recipes" / "reproduce" / "quick.yaml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", nargs="?", type=Path, help=f"suite recipe (default: {DEFAULT.name})")
    parser.add_argument("--quick", action="store_true", help=f"run the quick suite ({QUICK.name}, < 10 min)")
    parser.add_argument("--out", type=Path, help="results folder (default: the recipe's `out`)")
    parser.add_argument("--work-dir", type=Path, help="checkpoints and per-run results (default: recipe's)")
    parser.add_argument("--model", type=Path, help="base policy folder (default: the shipped tiny policy)")
    parser.add_argument(
        "--shard",
        type=_shard,
        metavar="I/N",
        help="train and evaluate only the runs at positions I, I+N, I+2N, ... of the recipe and write no "
        "report: N processes share the runs (`make reproduce` runs 0/2 and 1/2 side by side), then a plain "
        "`alpharl reproduce` reuses them all and writes the report",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a non-empty --out that is not an earlier report of the suite (its files are deleted)",
    )


def _shard(text: str) -> tuple[int, int]:
    index, sep, count = text.partition("/")
    if not (sep and index.isdigit() and count.isdigit() and int(index) < int(count)):
        raise argparse.ArgumentTypeError(f"expected I/N with 0 <= I < N, got {text!r}")
    return int(index), int(count)


REPORT_FILES = ("results.csv", "results.md")  # what identifies a folder as an earlier report of the suite


def check_report_folder(out: Path, work_dir: Path, overwrite: bool) -> None:
    """The report replaces `out` whole at the end of the suite. Refuse, before hours of runs, a folder whose
    loss the user did not ask for: a non-empty one that is not an earlier report (unless `overwrite`), and
    never the current directory, a parent of it, or a folder holding the suite's cache (`work_dir`)."""
    target, cwd = out.resolve(), Path.cwd().resolve()
    if target == cwd or target in cwd.parents:
        raise AlphaRLError(f"--out {out} is the current directory or a parent of it; choose a new folder")
    check_output(out, [work_dir], flag="--out", cwd_ok=True)
    if not target.is_dir() or overwrite or not any(target.iterdir()):
        return
    if not all((target / name).is_file() for name in REPORT_FILES):
        raise AlphaRLError(
            f"--out {out} holds files and is not a report of the suite (no {' and '.join(REPORT_FILES)}); "
            "the report replaces the folder whole: choose a new folder, or pass --overwrite to delete them"
        )


def run(args: argparse.Namespace) -> int:
    from alpharl_trainer.reproduce import load_suite
    from alpharl_trainer.reproduce.report import write_report
    from alpharl_trainer.reproduce.suite import log, run_suite

    if args.quick and args.recipe is not None:
        raise AlphaRLError("give a recipe or --quick, not both")
    suite = load_suite(QUICK if args.quick else args.recipe or DEFAULT)
    overrides = {k: v for k, v in (("out", args.out), ("work_dir", args.work_dir)) if v is not None}
    suite = dataclasses.replace(suite, **overrides)
    check_report_folder(Path(suite.out), Path(suite.work_dir), args.overwrite)
    if args.model is None:
        from alpharl_trainer.policies import shipped_policy

        base = shipped_policy("tiny")
    elif not (args.model / "config.json").is_file():
        raise AlphaRLError(f"--model {args.model}: not a model checkpoint folder (no config.json)")
    else:
        base = args.model
    start = time.perf_counter()
    if args.shard is not None:
        done = run_suite(suite, base, shard=args.shard)
        log(f"suite {suite.name}, shard {args.shard[0]}/{args.shard[1]}: {len(done)} runs done; no report")
        return 0
    results = run_suite(suite, base)
    seconds = time.perf_counter() - start
    out = write_report(suite, results, seconds, suite.out)
    log(
        f"suite {suite.name}: {len(results)} runs in {seconds / 60:.1f} min (budget {suite.budget_minutes:g} "
        f"min); report in {out}/results.md"
    )
    return 0
