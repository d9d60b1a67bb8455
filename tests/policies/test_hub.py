"""A hub model id (`owner/name`) resolves to its folder in a local Hugging Face cache laid out as
huggingface_hub lays it out, offline; one that is not cached is one clear error; `alpharl train` runs on
it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from huggingface_hub import constants

from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.policies import resolve_policy, shipped_policy
from tests.trainer.harness import REPO

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def hub_cache(root, repo_id: str = "acme/tiny-sort"):
    """`root` as a hub cache holding the shipped tiny policy under `repo_id` at one revision (refs/main ->
    snapshots/<commit>/), the layout `huggingface-cli download` leaves."""
    folder = root / f"models--{repo_id.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(COMMIT)
    shutil.copytree(shipped_policy("tiny"), folder / "snapshots" / COMMIT)
    return root


def test_a_cached_hub_id_resolves_offline_and_a_missing_one_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub_cache(tmp_path)))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    folder = resolve_policy("acme/tiny-sort")
    assert folder == tmp_path / "models--acme--tiny-sort" / "snapshots" / COMMIT
    assert (folder / "config.json").is_file()
    with pytest.raises(AlphaRLError, match=r"hub model acme/absent: .*not in the local Hugging Face cache"):
        resolve_policy("acme/absent")
    with pytest.raises(AlphaRLError, match="model folder nowhere does not exist"):
        resolve_policy("./nowhere")


def test_train_runs_on_a_hub_id_from_the_local_cache(tmp_path):
    cache = hub_cache(tmp_path / "hub")
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    args = ["train", "recipes/tiny/grpo.yaml", "--model_name_or_path", "acme/tiny-sort"]
    args += ["--output_dir", str(tmp_path / "run"), "--max_steps", "2", "--alpharl", "false"]
    args += ["--report_test_size", "0", "--train_size", "32", "--per_device_train_batch_size", "16"]
    proc = subprocess.run(
        [sys.executable, "-m", "alpharl_trainer", *args], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "run" / "model.safetensors").is_file()
