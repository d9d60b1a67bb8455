"""The `alpharl` command.

Each subcommand lives in `alpharl_trainer/commands/<name>.py` and exposes `add_arguments(parser)`
and `run(args) -> int`; its module docstring is its `--help` description. Modules are imported only
when their subcommand runs, and parsing imports no torch/TRL/matplotlib (tests/test_cli.py checks),
so `alpharl --help` and `alpharl COMMAND --help` stay fast.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import textwrap

from alpharl_trainer import __version__
from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.hub_offline import stay_offline

DESCRIPTION = """\
An RL trainer for language models on Hugging Face TRL (GRPO, DAPO, Dr. GRPO, GSPO, RLOO, PPO) with built-in
AlphaRL extrapolation: it records the rank-1 trajectory of the weight updates, forecasts where the weights
are heading and hot-swaps the forecast into the live model. It also works offline, on checkpoints other
frameworks wrote (`analyze`, `predict`).
"""

EPILOG = """\
examples:
  alpharl train recipes/tiny/grpo.yaml
  alpharl analyze --base base/ --checkpoints run/checkpoint-{10,20,30} --out analysis/
  alpharl predict --base base/ --checkpoints run/checkpoint-{10,20,30} --target-step 100 --out predicted/

Run `alpharl COMMAND --help` for what a command does and its options.
"""

# subcommand -> (module under alpharl_trainer.commands, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("train", "run an RL recipe (GRPO/DAPO/Dr.GRPO/GSPO/RLOO/PPO) with AlphaRL extrapolation"),
    "predict": ("predict", "forecast a checkpoint from a base and a window of checkpoints (offline)"),
    "analyze": ("analyze", "rank-1 dominance and linearity report of a series of checkpoints"),
    "eval": ("eval", "evaluate a checkpoint on a task or a benchmark file"),
    "make-tiny": ("make_tiny", "rebuild the tiny SFT policy from code and compare it with the shipped one"),
    "check-benchmark": ("check_benchmark", "load benchmark JSONL files and self-grade their gold answers"),
    "reproduce": ("reproduce", "the paper's Table 1 at CPU scale, against baselines"),
    "reproduce-real": ("reproduce_real", "the product on a real pretrained model (SmolLM2-135M), paired"),
}


class HelpFormatter(argparse.HelpFormatter):
    """Wraps descriptions paragraph by paragraph (argparse's default runs them into one) and keeps a
    paragraph with indented lines, such as example commands, as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        fill = super()._fill_text
        paragraphs = textwrap.dedent(text).strip().split("\n\n")
        return "\n\n".join(
            textwrap.indent(p, indent) if _has_indented_line(p) else fill(p, width, indent)
            for p in paragraphs
        )


def _has_indented_line(text: str) -> bool:
    return any(line.startswith(" ") for line in text.splitlines())


def _load(name: str):
    module_name, _ = COMMANDS[name]
    return importlib.import_module(f"alpharl_trainer.commands.{module_name}")


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="alpharl", description=DESCRIPTION, epilog=EPILOG, formatter_class=HelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"alpharl-trainer {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    wanted = next((a for a in argv if a in COMMANDS), None)
    for name, (_, help_text) in COMMANDS.items():
        module = _load(name) if name == wanted else None  # only the chosen subcommand's module is imported
        p = sub.add_parser(
            name,
            help=help_text,
            description=module.__doc__ if module else help_text,
            formatter_class=HelpFormatter,
        )
        if module:
            module.add_arguments(p)
            p.set_defaults(command_parser=p)
    return parser


def _exit_on_sigterm() -> None:
    """SIGTERM (what Slurm and `kill` send) ends the command like Ctrl-C does: as an exception, so every
    atomic write removes its temporary folder on the way out, instead of dying where it stands."""

    def terminate(signum, frame):
        raise SystemExit(128 + signum)

    try:
        signal.signal(signal.SIGTERM, terminate)
    except ValueError:  # not the main thread (main() called from a thread): leave signals alone
        pass


def main(argv: list[str] | None = None) -> int:
    stay_offline()
    _exit_on_sigterm()
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # argparse would report a subcommand's unknown flags under the top-level usage
        getattr(args, "command_parser", parser).error(f"unrecognized arguments: {' '.join(unknown)}")
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
