"""PPO + AlphaRL under real 2-process launches: DDP (gloo on CPU) and DeepSpeed ZeRO-2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.trainer import harness
from tests.trainer.test_distributed_swap import _free_port


def launch(config: str, value_model: str, tmp_path: Path) -> dict:
    harness.test_model_dir()  # a corrupt policy is one clear error here, not one per process
    out = tmp_path / "verdict.json"
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch",
        "--config_file", str(harness.REPO / "configs" / config),
        "--main_process_port", str(_free_port()),
        "-m", "tests.trainer.ppo_swap_distributed", str(out), str(tmp_path / "run"), value_model,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(harness.REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=harness.REPO, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return json.loads(out.read_text())


def check(verdict: dict, deepspeed: bool) -> None:
    assert verdict["world"] == 2 and verdict["deepspeed"] is deepspeed
    assert verdict["has_critic"] and verdict["chosen"] is not None
    assert verdict["swap_equals_forecast_all_ranks"]
    assert verdict["critic_untouched_by_swap"]
    assert verdict["ranks_identical_at_end"]
    assert verdict["steps"] == 8  # window end 6 + 2 fine-tune steps


@pytest.mark.slow  # ~30 s alone, a minute on a loaded machine
def test_ppo_ddp_two_processes_separate_critic(tmp_path):
    check(launch("ddp.yaml", "separate", tmp_path), deepspeed=False)


@pytest.mark.deepspeed
def test_ppo_deepspeed_zero2_value_head(tmp_path):
    check(launch("zero2.yaml", "head", tmp_path), deepspeed=True)
