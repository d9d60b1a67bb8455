"""Every tiny recipe parses and really trains a few steps through `alpharl train` (swap included)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from alpharl_trainer.cli import main as cli
from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.train import parse
from tests.trainer.harness import REPO, test_model_dir

RECIPES = sorted((REPO / "recipes" / "tiny").glob("*.yaml"))
SHORT = [
    "--max_steps", "6", "--alpharl_interval", "2", "--alpharl_window_end", "6",
    "--alpharl_finetune_steps", "0",
    "--per_device_train_batch_size", "16", "--train_size", "64", "--eval_size", "8",
    "--alpharl_acceptance_prompts", "4", "--alpharl_acceptance_samples", "1", "--report_test_size", "16",
    "--save_strategy", "no", "--logging_steps", "1",
]  # fmt: skip


@pytest.mark.parametrize("recipe", RECIPES, ids=[r.stem for r in RECIPES])
def test_tiny_recipe_trains_and_decides_a_swap(recipe: Path, tmp_path):
    out = tmp_path / "run"
    code = cli(
        [
            "train",
            str(recipe),
            "--model_name_or_path",
            str(test_model_dir()),
            "--output_dir",
            str(out),
            *SHORT,
        ]
    )
    assert code == 0
    summary = json.loads((out / "alpharl" / "summary.json").read_text())
    assert summary["snapshots"] == [2, 4, 6]
    assert summary["swap"]["step"] == 6 and "current" in summary["swap"]["scores"]
    assert 0.0 <= summary["test"]["final"]["exact"] <= 1.0
    assert (out / "model.safetensors").is_file()


def test_recipe_errors_are_clear(tmp_path):
    with pytest.raises(AlphaRLError, match="does not exist"):
        parse(["--config", str(tmp_path / "missing.yaml")])
    bad = tmp_path / "bad.yaml"
    bad.write_text("trainer: ppo2\noutput_dir: x\n")
    with pytest.raises(AlphaRLError, match="unknown trainer"):
        parse(["--config", str(bad)])
    assert (
        cli(["train", str(RECIPES[0]), "--model_name_or_path", str(tmp_path / "nope"), "--use_cpu", "true"])
        == 2
    )
