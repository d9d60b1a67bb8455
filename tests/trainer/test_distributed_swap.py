"""The swap under real multi-process launches: 2 CPU processes with gloo (DDP) and DeepSpeed ZeRO-2/3."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.trainer.harness import REPO, test_model_dir


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(config: str, tmp_path: Path, families: str = "rank1", jumps: int = 1) -> dict:
    test_model_dir()  # a corrupt policy is one clear error here, not one per process
    out = tmp_path / "verdict.json"
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch",
        "--config_file", str(REPO / "configs" / config),
        "--main_process_port", str(_free_port()),
        "-m", "tests.trainer.grpo_swap_distributed", str(out), str(tmp_path / "run"), families, str(jumps),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return json.loads(out.read_text())


def check(verdict: dict, deepspeed: bool, portfolio: bool = False) -> None:
    assert verdict["world"] == 2 and verdict["deepspeed"] is deepspeed
    assert verdict["chosen"] is not None
    assert verdict["swap_equals_forecast_all_ranks"]
    assert verdict["ranks_identical"]
    if portfolio:  # the winner may be a small move (an average): the next step starts from it, not from W_K
        assert verdict["update_after_swap"] < verdict["distance_next_to_pre_swap"]
        return
    # one more step: the swapped weights plus one small update, not the pre-swap weights plus one
    assert verdict["update_after_swap"] < 0.2 * verdict["swap_size"]
    assert verdict["distance_next_to_pre_swap"] > 0.8 * verdict["swap_size"]


def test_swap_ddp_two_processes(tmp_path):
    check(launch("ddp.yaml", tmp_path), deepspeed=False)


@pytest.mark.deepspeed
def test_swap_deepspeed_zero2(tmp_path):
    check(launch("zero2.yaml", tmp_path), deepspeed=True)


@pytest.mark.deepspeed
def test_swap_deepspeed_zero3(tmp_path):
    check(launch("zero3.yaml", tmp_path), deepspeed=True)


PORTFOLIO = "fixed_basis,expo,average,relex"


def test_portfolio_swap_ddp_two_processes(tmp_path):
    """Candidates only a matrix's owner can compute (W_0, the window's weights on its disk share)."""
    check(launch("ddp.yaml", tmp_path, PORTFOLIO), deepspeed=False, portfolio=True)


def test_repeated_jumps_ddp_two_processes(tmp_path):
    """Two jumps (steps 4 and 8): the second window's W_0 is kept by each owner after the first jump, and the
    second swap is the forecast of the second window on every rank, surviving into the next step."""
    verdict = launch("ddp.yaml", tmp_path, "rank1", jumps=2)
    check(verdict, deepspeed=False)
    assert verdict["swap_steps"] == [4, 8]


def test_relex_swap_ddp_two_processes(tmp_path):
    """RELEX's fit spans every rank's matrices: each adds its Gram part, the ranks sum them."""
    verdict = launch("ddp.yaml", tmp_path, "relex")
    check(verdict, deepspeed=False, portfolio=True)
    assert verdict["chosen"].startswith("relex step")


@pytest.mark.deepspeed
def test_portfolio_swap_deepspeed_zero3(tmp_path):
    check(launch("zero3.yaml", tmp_path, PORTFOLIO), deepspeed=True, portfolio=True)


@pytest.mark.deepspeed
def test_train_entry_point_reports_under_zero3(tmp_path):
    """The README's `accelerate launch ... -m alpharl_trainer.train` under ZeRO-3 with the end-of-run report
    and the recipe's exact-scored gate: scoring a policy that `from_pretrained` partitioned (before the
    engine) and after training (the gather is collective, so every rank scores) ends with the same summary a
    single process writes."""
    out = tmp_path / "run"
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch",
        "--config_file", str(REPO / "configs" / "zero3.yaml"), "--main_process_port", str(_free_port()),
        "-m", "alpharl_trainer.train", "--config", "recipes/tiny/grpo.yaml", "--output_dir", str(out),
        "--max_steps", "12", "--alpharl_interval", "2", "--alpharl_window_end", "6",
        "--alpharl_finetune_steps", "1", "--report_test_size", "50", "--train_size", "256",
        "--per_device_train_batch_size", "32", "--alpharl_acceptance_prompts", "8",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    assert proc.stdout.count("== run finished at step 7 ==") == 1  # the main process prints, once
    summary = json.loads((out / "alpharl" / "summary.json").read_text())
    # the recipe's exact gate: each rank reads its share of the gold completions, the ranks' forward passes
    # are collectives under ZeRO-3 (8 prompts, 4 a rank), every rank got the same scores
    assert summary["swap"]["gate_engine"] == "teacher_forced" and summary["swap"]["cost"]["prompts"] > 0
    stages = [row["stage"] for row in summary["test"]["stages"]]
    assert stages[:2] == ["base policy", "window end (truncated run)"] and stages[-1] == "final"
    assert "not paired with a truncated run: it is trained in single-process runs only" in proc.stdout
