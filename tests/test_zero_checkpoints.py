"""DeepSpeed ZeRO checkpoints written by two gloo processes (ZeRO-2 and ZeRO-3), read by `alpharl predict` as
their fp32 master weights without the Hugging Face copy: the forecast equals the one from the same
checkpoints' `model.safetensors`; without --allow-pickle, or with a shard missing, one clear error and no
output."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from safetensors.torch import load_file, save_file

from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.offline.predict import predict
from alpharl_trainer.policies import shipped_policy
from tests.test_distributed import _free_port
from tests.trainer.harness import REPO

pytestmark = pytest.mark.deepspeed
STEPS = (1, 2, 3)


@pytest.fixture(scope="module", params=["zero2", "zero3"])
def zero_run(request, tmp_path_factory):
    """Three saved steps of the tiny GRPO recipe under `accelerate launch` with 2 CPU processes."""
    out = tmp_path_factory.mktemp(request.param)
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch", "--config_file", f"configs/{request.param}.yaml",
        "--main_process_port", str(_free_port()), "-m", "alpharl_trainer.train", "--config",
        "recipes/tiny/grpo.yaml", "--alpharl", "false", "--max_steps", "3", "--save_strategy", "steps",
        "--save_steps", "1", "--report_test_size", "0", "--train_size", "64",
        "--per_device_train_batch_size", "16", "--output_dir", str(out / "run"), "--report_to", "none",
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    raw = []
    for step in STEPS:  # the same checkpoints with their DeepSpeed files only
        folder = out / "raw" / f"checkpoint-{step}"
        shutil.copytree(out / "run" / f"checkpoint-{step}", folder)
        (folder / "model.safetensors").unlink()
        raw.append(folder)
    return out, raw


def base_like(checkpoint, folder):
    """The run's base saved as `checkpoint` is: ZeRO-2's Hugging Face copy writes the tied lm_head out as a
    tensor of its own; the base policy (like save_pretrained and the ZeRO reader) does not."""
    shutil.copytree(shipped_policy("tiny"), folder)
    if "lm_head.weight" in load_file(checkpoint / "model.safetensors"):
        weights = load_file(folder / "model.safetensors")
        weights["lm_head.weight"] = weights["model.embed_tokens.weight"].clone()
        save_file(weights, folder / "model.safetensors")
    return folder


def test_a_zero_checkpoint_forecasts_as_its_hf_weights_do(zero_run, tmp_path):
    out, raw = zero_run
    hf = [out / "run" / f"checkpoint-{s}" for s in STEPS]
    predict(base_like(hf[-1], tmp_path / "base-hf"), hf, tmp_path / "hf", target_step=6, progress=False)
    base = shipped_policy("tiny")
    predict(base, raw, tmp_path / "zero", target_step=6, progress=False, allow_pickle=True)
    ours, theirs = (
        load_file(tmp_path / "zero" / "model.safetensors"),
        load_file(tmp_path / "hf" / "model.safetensors"),
    )
    assert ours.keys() == theirs.keys() - {"lm_head.weight"}  # tied: one tensor
    for name, tensor in ours.items():
        assert tensor.equal(theirs[name]), name


def test_a_zero_checkpoint_needs_allow_pickle_and_all_its_shards(zero_run, tmp_path):
    _, raw = zero_run
    base = shipped_policy("tiny")
    with pytest.raises(
        AlphaRLError, match="DeepSpeed ZeRO checkpoint: its shards are pickles.*--allow-pickle"
    ):
        predict(base, raw, tmp_path / "out", target_step=6, progress=False)
    partial = tmp_path / "checkpoint-3"
    shutil.copytree(raw[-1], partial)
    next(partial.glob("global_step3/*rank_1*optim_states.pt")).unlink()
    with pytest.raises(AlphaRLError, match="unreadable DeepSpeed ZeRO checkpoint"):
        predict(base, [*raw[:2], partial], tmp_path / "out", target_step=6, progress=False, allow_pickle=True)
    assert not (tmp_path / "out").exists()
