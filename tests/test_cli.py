"""The `alpharl` command line: help texts, fast parsing, and clean errors for unknown flags."""

import importlib
import subprocess
import sys

import pytest

from alpharl_trainer.cli import COMMANDS, main

HEAVY = ("torch", "transformers", "trl", "matplotlib", "sklearn")

# Runs `alpharl ARGS --help` in a fresh interpreter and prints argparse's exit code and the heavy modules
# that parsing imported: help must answer at once, so building the parser may import none of them.
HELP_PROBE = """
import sys
from alpharl_trainer.cli import main
try:
    main(sys.argv[1:] + ["--help"])
except SystemExit as exit:
    print(exit.code)
print(",".join(m for m in {heavy!r} if m in sys.modules))
"""


@pytest.mark.parametrize("args", [[], *([name] for name in COMMANDS)], ids=["alpharl", *COMMANDS])
def test_help_imports_nothing_heavy(args):
    probe = subprocess.run(
        [sys.executable, "-c", HELP_PROBE.format(heavy=HEAVY), *args],
        capture_output=True,
        text=True,
        check=True,
    )
    *_, code, heavy = probe.stdout.splitlines()
    assert code == "0", probe.stderr
    assert heavy == "", f"`alpharl {' '.join(args)} --help` imported {heavy}"


def test_top_level_help_says_what_the_tool_is_and_lists_commands(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["--help"])
    assert exit.value.code == 0
    out = " ".join(capsys.readouterr().out.split())  # undo argparse's wrapping
    assert "RL trainer" in out and "TRL" in out and "rank-1 trajectory" in out and "offline" in out
    for name, (_, help_text) in COMMANDS.items():
        assert f"{name} {help_text}" in out, name
    assert "examples: alpharl train recipes/tiny/grpo.yaml" in out
    assert "--target-step 100 --out predicted/" in out


@pytest.mark.parametrize("name", COMMANDS)
def test_command_help_describes_the_command(name, capsys):
    """Each command's --help shows its module docstring, which says what the command is for."""
    with pytest.raises(SystemExit) as exit:
        main([name, "--help"])
    assert exit.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    module = importlib.import_module(f"alpharl_trainer.commands.{COMMANDS[name][0]}")
    first_paragraph = " ".join(module.__doc__.split("\n\n")[0].split())
    assert first_paragraph in out


# the fewest arguments each command parses with, so that the only error left is the unknown flag
MINIMAL_ARGS = {
    "predict": ["--base", "b", "--checkpoints", "c", "--out", "o"],
    "analyze": ["--base", "b", "--checkpoints", "c", "--out", "o"],
    "eval": ["ckpt", "--task", "arithmetic"],
    "make-tiny": [],
    "check-benchmark": ["file.jsonl"],
    "reproduce": [],
    "reproduce-real": [],
}


def test_every_command_is_checked_for_unknown_flags():
    # train passes unknown flags on as recipe-field overrides (REMAINDER), so it has no such error
    assert set(MINIMAL_ARGS) == set(COMMANDS) - {"train"}


@pytest.mark.parametrize("name", MINIMAL_ARGS)
def test_unknown_flag_is_one_argparse_error_of_the_command(name, capsys):
    with pytest.raises(SystemExit) as exit:
        main([name, *MINIMAL_ARGS[name], "--bogus"])
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"usage: alpharl {name} ")  # the command's usage, not the top level's
    assert err.rstrip().splitlines()[-1] == f"alpharl {name}: error: unrecognized arguments: --bogus"
    assert "Traceback" not in err


def test_unknown_top_level_flag(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["--bogus"])
    assert exit.value.code == 2
    assert capsys.readouterr().err.rstrip().endswith("alpharl: error: unrecognized arguments: --bogus")


def test_predict_choices_match_the_library():
    """predict copies a few library constants so that its parsing needs no torch; they must agree."""
    from alpharl_trainer import checkpoints
    from alpharl_trainer.commands import predict
    from alpharl_trainer.extrapolation import FITS, apply

    assert predict.FITS == FITS
    assert predict.MODES == apply.MODES
    assert predict.DEFAULT_MAX_SHARD_GB * 1024**3 == checkpoints.DEFAULT_MAX_SHARD_BYTES
