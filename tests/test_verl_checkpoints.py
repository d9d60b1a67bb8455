"""verl FSDP actor checkpoints (`global_step_N/actor/model_world_size_W_rank_R.pt`) written by two gloo
processes with FSDP2 DTensor shards, read by `alpharl predict` directly: the forecast equals the one from the
same weights as merged Hugging Face folders; without --allow-pickle, or with a rank's file missing, truncated
or of another world size, or a tensor missing or short on one rank, one clear error and no output."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.offline.analyze import analyze
from alpharl_trainer.offline.predict import predict
from alpharl_trainer.policies import shipped_policy
from alpharl_trainer.verl_checkpoints import VerlFsdpReader, is_verl_fsdp_folder
from tests.test_distributed import _free_port
from tests.trainer.harness import REPO

STEPS = (1, 2, 3)
RANK1 = "model_world_size_2_rank_1.pt"


@pytest.fixture(scope="module")
def verl_run(tmp_path_factory):
    """Raw actor folders and merged HF folders of the same weights at three steps (one 2-process launch)."""
    out = tmp_path_factory.mktemp("verl")
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
        str(_free_port()), "tests/distributed_scripts/save_verl_fsdp.py", "--out", str(out), "--steps",
        *map(str, STEPS),
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    raw = [out / "raw" / f"global_step_{s}" / "actor" for s in STEPS]
    merged = [out / "merged" / f"global_step_{s}" / "actor" / "huggingface" for s in STEPS]
    return raw, merged


def test_the_reader_joins_the_shards_into_the_merged_weights(verl_run):
    raw, merged = verl_run
    assert is_verl_fsdp_folder(raw[0]) and not is_verl_fsdp_folder(merged[0])
    reader = VerlFsdpReader(raw[-1], allow_pickle=True)
    weights = load_file(merged[-1] / "model.safetensors")
    assert sorted(reader.names()) == sorted(weights)  # the tied lm_head once, as save_pretrained writes it
    assert reader.model_folder == raw[-1] / "huggingface"
    for name in reader.names():  # Shard(0), Replicate() and a plain tensor among them
        assert reader.shape(name) == tuple(weights[name].shape) and reader.dtype(name) == weights[name].dtype
        assert reader.get(name).equal(weights[name]), name


def test_a_verl_checkpoint_forecasts_as_its_merged_weights_do(verl_run, tmp_path):
    raw, merged = verl_run
    base = shipped_policy("tiny")
    predict(base, merged, tmp_path / "merged", target_step=6, progress=False)
    predict(base, raw, tmp_path / "raw", target_step=6, progress=False, allow_pickle=True)
    ours = load_file(tmp_path / "raw" / "model.safetensors")
    theirs = load_file(tmp_path / "merged" / "model.safetensors")
    assert ours.keys() == theirs.keys()
    for name, tensor in ours.items():
        torch.testing.assert_close(tensor, theirs[name], msg=name)
    assert (tmp_path / "raw" / "tokenizer.json").is_file()  # copied from actor/huggingface


def test_a_verl_checkpoint_analyzes_as_its_merged_weights_do(verl_run, tmp_path):
    raw, merged = verl_run
    base = shipped_policy("tiny")
    ours = analyze(base, raw, tmp_path / "raw", progress=False, allow_pickle=True)
    theirs = analyze(base, merged, tmp_path / "merged", progress=False)
    assert ours["steps"] == theirs["steps"] == list(STEPS)
    assert ours["matrices"].keys() == theirs["matrices"].keys()
    for name, row in ours["matrices"].items():
        assert row["s1"] == pytest.approx(theirs["matrices"][name]["s1"], rel=1e-5), name


def test_a_verl_checkpoint_needs_allow_pickle(verl_run, tmp_path):
    raw, _ = verl_run
    with pytest.raises(AlphaRLError, match="verl FSDP checkpoint: its .* shards are pickles.*--allow-pickle"):
        predict(shipped_policy("tiny"), raw, tmp_path / "out", target_step=6, progress=False)
    assert not (tmp_path / "out").exists()


def test_a_verl_step_folder_points_to_its_actor(verl_run, tmp_path):
    raw, _ = verl_run
    steps = [actor.parent for actor in raw]
    with pytest.raises(AlphaRLError, match="is a verl checkpoint: give its .*global_step_1/actor folder"):
        predict(
            shipped_policy("tiny"), steps, tmp_path / "out", target_step=6, progress=False, allow_pickle=True
        )
    assert not (tmp_path / "out").exists()


def _drop_a_tensor(actor):
    state = torch.load(actor / RANK1, weights_only=False)
    del state["model.layers.1.mlp.up_proj.weight"]
    torch.save(state, actor / RANK1)


def _cut_a_shard(actor):
    state = torch.load(actor / RANK1, weights_only=False)
    shard = state["model.layers.1.mlp.up_proj.weight"]
    shard._local_tensor = shard._local_tensor[:-1]
    torch.save(state, actor / RANK1)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda actor: (actor / RANK1).unlink(), f"incomplete: world size 2, missing {RANK1}"),
        (
            lambda actor: (actor / RANK1).write_bytes((actor / RANK1).read_bytes()[:5000]),
            f"corrupt, truncated or unreadable verl FSDP shard .*{RANK1}",
        ),
        (
            lambda actor: (actor / RANK1).rename(actor / "model_world_size_3_rank_1.pt"),
            "mixes shards of world sizes 2, 3",
        ),
        (_drop_a_tensor, "tensor model.layers.1.mlp.up_proj.weight .* missing in rank 1's shard"),
        (
            _cut_a_shard,
            r"up_proj.weight .* shards \[\[128, 128\], \[127, 128\]\] do not make its shape \[256, 128\]",
        ),
        (
            lambda actor: (actor / "fsdp_config.json").write_text('{"world_size": 4}'),
            "says world size 4 but the shards .* are of world size 2",
        ),
    ],
    ids=[
        "missing-rank",
        "truncated",
        "two-world-sizes",
        "missing-tensor",
        "short-shard",
        "config-world-size",
    ],
)
def test_a_damaged_verl_checkpoint_is_one_clear_error(verl_run, tmp_path, damage, message):
    raw, _ = verl_run
    actor = tmp_path / "global_step_3" / "actor"
    shutil.copytree(raw[-1], actor)
    damage(actor)
    with pytest.raises(AlphaRLError, match=message):
        predict(
            shipped_policy("tiny"), [*raw[:2], actor], tmp_path / "out", target_step=6, progress=False,
            allow_pickle=True,
        )  # fmt: skip
    assert not (tmp_path / "out").exists()
