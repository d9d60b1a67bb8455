"""A TRL user's GRPO recipe, with TRL's keys only, runs under `alpharl train`: a hub model id resolved from a
local Hugging Face cache, a conversational dataset folder, a reward named by dotted path, LoRA by
`use_peft`; with AlphaRL on it forecasts the adapters' merged update."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import yaml

from alpharl_trainer.tasks import get_task
from tests.policies.test_hub import hub_cache
from tests.trainer.harness import REPO

TEMPLATE = "{% for message in messages %}{{ message['content'] }}{% endfor %}"

TRL_RECIPE = {  # what `trl grpo --config` reads: ScriptArguments, ModelConfig and GRPOConfig keys only
    "model_name_or_path": "acme/tiny-sort",
    "dataset_name": None,  # set to the folder below
    "reward_funcs": ["tests.custom_rewards.short_answer_reward"],
    "use_peft": True,
    "lora_r": 4,
    "lora_alpha": 8,
    "lora_dropout": 0.0,
    "lora_target_modules": ["q_proj", "v_proj"],
    "learning_rate": 1e-3,
    "per_device_train_batch_size": 8,
    "num_generations": 4,
    "max_completion_length": 8,
    "max_steps": 6,
    "logging_steps": 1,
    "save_strategy": "no",
    "report_to": "none",
    "use_cpu": True,
}


def test_a_trl_grpo_recipe_runs_under_alpharl_train(tmp_path):
    import datasets

    cache = hub_cache(tmp_path / "hub")
    tokenizer_config = next(cache.glob("models--*/snapshots/*")) / "tokenizer_config.json"
    settings = json.loads(tokenizer_config.read_text())
    tokenizer_config.write_text(json.dumps({**settings, "chat_template": TEMPLATE}))  # a chat model's file
    problems = get_task("arithmetic").problems("train", 96, 0)
    rows = {
        "prompt": [[{"role": "user", "content": p.prompt}] for p in problems],
        "solution": [p.answer for p in problems],
    }
    datasets.Dataset.from_dict(rows).save_to_disk(str(tmp_path / "data"))
    recipe = tmp_path / "trl_grpo.yaml"
    recipe.write_text(yaml.safe_dump({**TRL_RECIPE, "dataset_name": str(tmp_path / "data")}))
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}

    def train(out, *flags):
        argv = ["train", str(recipe), "--output_dir", str(tmp_path / out), "--eval_size", "8", *flags]
        cmd = [sys.executable, "-m", "alpharl_trainer", *argv]
        return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)

    off = train("off", "--alpharl", "false")
    assert off.returncode == 0, off.stderr[-3000:]
    assert (tmp_path / "off" / "adapter_model.safetensors").is_file()
    on = train(
        "on", "--alpharl_interval", "2", "--alpharl_window_end", "6", "--alpharl_acceptance_prompts", "4"
    )
    assert on.returncode == 0, on.stderr[-3000:]
    summary = json.loads((tmp_path / "on" / "alpharl" / "summary.json").read_text())
    assert summary["swap"]["step"] == 6 and summary["snapshots"] == [2, 4, 6]
    assert summary["swap"]["candidates"] == ["8", "9", "12", "15"]  # LoRA: the rank-1 forecasts alone
