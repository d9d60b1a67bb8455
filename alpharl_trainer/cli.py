"""The `alpharl` command.

Each subcommand lives in `alpharl_trainer/commands/<name>.py` and exposes `add_arguments(parser)`
and `run(args) -> int`. Modules are imported only when their subcommand runs, so `alpharl --help`
stays fast and a subcommand's heavy imports (TRL, matplotlib) cost nothing elsewhere.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from alpharl_trainer import __version__
from alpharl_trainer.errors import AlphaRLError

# subcommand -> (module under alpharl_trainer.commands, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("train", "run an RL recipe (GRPO/DAPO/Dr.GRPO/GSPO/RLOO/PPO) with AlphaRL extrapolation"),
    "predict": ("predict", "forecast a checkpoint from a base and a window of checkpoints (offline)"),
    "analyze": ("analyze", "rank-1 dominance and linearity report of a series of checkpoints"),
    "eval": ("eval", "evaluate a checkpoint on a task or a benchmark file"),
    "make-tiny": ("make_tiny", "build the tiny local tokenizer + SFT policy used by tests and recipes"),
    "check-benchmark": ("check_benchmark", "load benchmark JSONL files and self-grade their gold answers"),
    "reproduce": ("reproduce", "the paper's Table 1 at CPU scale, against baselines"),
}


def _load(name: str):
    module_name, _ = COMMANDS[name]
    return importlib.import_module(f"alpharl_trainer.commands.{module_name}")


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="alpharl", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"alpharl-trainer {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    wanted = next((a for a in argv if a in COMMANDS), None)
    for name, (_, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == wanted:  # only the chosen subcommand's module is imported
            _load(name).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(_load(args.command).run(args) or 0)
    except AlphaRLError as err:
        print(f"alpharl {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
