"""The real pretrained policy end to end on CPU: `alpharl train recipes/real/grpo.yaml` (shortened) converts
SmolLM2-135M-Instruct if needed, generates chat completions, trains three GRPO steps with a snapshot each, and
at the window end forecasts, scores the candidates greedily on held-out prompts and decides the swap; the
saved model is the decision (the forecast written, or W_K kept) and the test split is scored by generation."""

from __future__ import annotations

import json

import torch
from safetensors.torch import load_file

from alpharl_trainer.cli import main as cli
from tests.trainer.harness import REPO

SHORT = [
    "--max_steps", "30", "--alpharl_window_end", "3", "--per_device_train_batch_size", "8",
    "--num_generations", "4", "--max_completion_length", "8", "--train_size", "16", "--eval_size", "8",
    "--alpharl_acceptance_prompts", "8", "--report_test_size", "8", "--report_truncated", "false",
    "--save_strategy", "no", "--logging_steps", "1",
]  # fmt: skip


def test_real_recipe_trains_snapshots_and_swaps(tmp_path):
    from alpharl_trainer.policies import resolve_policy

    out = tmp_path / "run"
    assert cli(["train", str(REPO / "recipes" / "real" / "grpo.yaml"), "--output_dir", str(out), *SHORT]) == 0
    summary = json.loads((out / "alpharl" / "summary.json").read_text())
    swap = summary["swap"]
    assert summary["snapshots"] == [1, 2, 3] and swap["step"] == 3 and summary["steps"] == 3
    # the recipe's portfolio: rank-1 forecasts to 1.5x and 2.5x the window end (4.5 and 7.5, rounded), ExPO,
    # and ExPO's straight line to T = 30 (a = 9)
    assert swap["candidates"] == ["5", "8", "expo a=0.5", "expo a=1", "expo a=9"]
    assert set(swap["scores"]) == {"current", *swap["candidates"]} and swap["scoring"] == "greedy"
    assert swap["seconds"] > 0
    final = load_file(str(out / "model.safetensors"))
    base = load_file(str(resolve_policy("smollm2-135m") / "model.safetensors"))
    name = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(final[name], base[name])  # three steps of training (and maybe a jump) moved it
    stages = {row["stage"]: row for row in summary["test"]["stages"]}
    assert {"base policy", "window end (truncated run)", "final"} <= stages.keys()
    assert stages["final"]["paired"]["n"] == 8
    if swap["chosen"] is None:
        assert stages["final"]["paired"]["diff"] == 0
