import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from alpharl_trainer.checkpoint_names import checkpoint_step
from alpharl_trainer.checkpoints import CheckpointReader, write_checkpoint
from alpharl_trainer.errors import AlphaRLError
from tests.helpers_checkpoints import load_model, make_series

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    return make_series(tmp_path_factory.mktemp("single"), steps=(10, 20))


@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
    return make_series(tmp_path_factory.mktemp("sharded"), steps=(10, 20), max_shard_size="20KB")


def _file_tensors(path: Path) -> dict[str, torch.Tensor]:
    with safe_open(str(path), framework="pt") as f:
        return {name: f.get_tensor(name) for name in f.keys()}


def test_reader_matches_the_file(series):
    folder = series.checkpoints[0]
    reader = CheckpointReader(folder)
    expected = _file_tensors(folder / "model.safetensors")
    assert reader.names() == list(expected)
    assert "lm_head.weight" not in reader.names()  # tied: the checkpoint stores the embedding once
    for name, tensor in expected.items():
        assert reader.shape(name) == tuple(tensor.shape)
        assert reader.dtype(name) == tensor.dtype
        assert torch.equal(reader.get(name), tensor)


def test_sharded_reader_reads_the_same_tensors_as_the_model(sharded):
    folder = sharded.checkpoints[1]
    assert (folder / "model.safetensors.index.json").is_file()
    reader = CheckpointReader(folder)
    state = load_model(folder).state_dict()
    assert set(reader.names()) == set(state) - {"lm_head.weight"}
    for name in reader.names():
        assert torch.equal(reader.get(name), state[name])


def test_missing_folder(tmp_path):
    with pytest.raises(AlphaRLError, match="nowhere"):
        CheckpointReader(tmp_path / "nowhere")


def test_missing_shard(sharded, tmp_path):
    folder = Path(shutil.copytree(sharded.checkpoints[0], tmp_path / "ckpt"))
    weight_map = json.loads((folder / "model.safetensors.index.json").read_text())["weight_map"]
    victim = sorted(set(weight_map.values()))[1]
    (folder / victim).unlink()
    with pytest.raises(AlphaRLError, match=victim):
        CheckpointReader(folder)


def test_truncated_safetensors(series, tmp_path):
    folder = tmp_path / "ckpt"
    folder.mkdir()
    data = (series.checkpoints[0] / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[:-100])
    with pytest.raises(AlphaRLError, match="model.safetensors"):
        CheckpointReader(folder)


def test_pickle_refused_unless_allowed(series, tmp_path):
    state = _file_tensors(series.checkpoints[0] / "model.safetensors")
    folder = tmp_path / "ckpt"
    folder.mkdir()
    torch.save(state, folder / "pytorch_model.bin")
    with pytest.raises(AlphaRLError, match="allow-pickle"):
        CheckpointReader(folder)
    reader = CheckpointReader(folder, allow_pickle=True)
    assert reader.names() == list(state)
    name = "model.layers.0.self_attn.q_proj.weight"
    assert reader.shape(name) == tuple(state[name].shape)
    assert torch.equal(reader.get(name), state[name])


def test_no_weights(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(AlphaRLError, match="no model weights"):
        CheckpointReader(tmp_path)


def test_unknown_tensor_is_named(series):
    with pytest.raises(AlphaRLError, match="lm_head.weight.*checkpoint-10"):
        CheckpointReader(series.checkpoints[0]).get("lm_head.weight")


@pytest.mark.parametrize(
    ("name", "step"),
    [
        ("checkpoint-120", 120),
        ("global_step_7", 7),
        ("DAPO-step-27", 27),
        ("step_5", 5),
        ("step-42", 42),
        ("global_step_9/actor/huggingface", 9),
        ("global_step_11/actor", 11),  # verl's raw FSDP shards
        ("global_step10_hf", 10),  # OpenRLHF
        ("global_step_30_hf", 30),
    ],
)
def test_checkpoint_step(tmp_path, name, step):
    assert checkpoint_step(tmp_path / name) == step


def test_checkpoint_step_unknown(tmp_path):
    with pytest.raises(AlphaRLError, match="--steps"):
        checkpoint_step(tmp_path / "final")


def _stream(reader: CheckpointReader):
    return ((name, reader.get(name)) for name in reader.names())


def test_write_sharded_loads_with_from_pretrained(series, tmp_path):
    source = series.checkpoints[1]
    (source / "tokenizer.json").write_text("{}")
    (source / "chat_template.jinja").write_text("{{ messages }}")
    reader = CheckpointReader(source)
    out = write_checkpoint(tmp_path / "out", _stream(reader), source_dir=source, max_shard_bytes=20_000)

    shards = sorted(p.name for p in out.glob("*.safetensors"))
    assert len(shards) > 1 and shards[0] == f"model-00001-of-{len(shards):05d}.safetensors"
    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"]) == set(reader.names())  # exactly the source's names: no lm_head
    for name in ["config.json", "generation_config.json", "tokenizer.json", "chat_template.jinja"]:
        assert (out / name).read_bytes() == (source / name).read_bytes()
    with safe_open(str(out / shards[0]), framework="pt") as f:
        assert f.metadata() == {"format": "pt"}

    loaded, original = load_model(out).state_dict(), load_model(source).state_dict()
    assert all(torch.equal(loaded[n], original[n]) for n in original)
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary folder left


def test_write_single_file_and_shared_storage(series, tmp_path):
    weight = torch.ones(3, 4)
    out = write_checkpoint(tmp_path / "out", [("a", weight), ("b", weight)], source_dir=series.base)
    assert sorted(_file_tensors(out / "model.safetensors")) == ["a", "b"]
    assert not (out / "model.safetensors.index.json").exists()


def test_failed_write_leaves_nothing(series, tmp_path):
    def broken():
        yield "a", torch.ones(2, 2)
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        write_checkpoint(tmp_path / "out", broken(), source_dir=series.base, max_shard_bytes=1)
    assert list(tmp_path.iterdir()) == []


def test_overwrite(series, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    with pytest.raises(AlphaRLError, match="--overwrite"):
        write_checkpoint(out, [("a", torch.ones(2))], source_dir=series.base)
    assert (out / "stale.txt").exists()
    write_checkpoint(out, [("a", torch.ones(2))], source_dir=series.base, overwrite=True)
    assert not (out / "stale.txt").exists() and (out / "model.safetensors").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_duplicate_names_refused(series, tmp_path):
    with pytest.raises(AlphaRLError, match="twice"):
        write_checkpoint(
            tmp_path / "out", [("a", torch.ones(2)), ("a", torch.ones(2))], source_dir=series.base
        )
    assert list(tmp_path.iterdir()) == []


def test_a_hub_snapshot_takes_its_step_from_the_revision_pointing_at_it(tmp_path):
    """open-r1 pushes one branch per step: refs/<branch> holds the commit, snapshots/<commit> the files."""
    repo = tmp_path / "models--acme--grpo-run"
    for step, commit in [(100, "a" * 40), (200, "b" * 40)]:
        (repo / "refs" / "v00.08").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / "v00.08" / f"step-{step:09d}").write_text(commit)
        (repo / "snapshots" / commit).mkdir(parents=True)
    (repo / "refs" / "main").write_text("b" * 40)
    assert checkpoint_step(repo / "snapshots" / ("a" * 40)) == 100
    assert checkpoint_step(repo / "snapshots" / ("b" * 40)) == 200
    (repo / "snapshots" / ("c" * 40)).mkdir()
    with pytest.raises(AlphaRLError, match="pass --steps"):
        checkpoint_step(repo / "snapshots" / ("c" * 40))
