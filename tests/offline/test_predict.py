import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from alpharl_trainer.checkpoints import CheckpointReader
from alpharl_trainer.extrapolation.trajectory import Trajectory
from alpharl_trainer.offline.predict import REPORT_FILE, TRAJECTORY_DIR, predict
from tests.helpers_checkpoints import PROJECTION, load_model, make_series

pytestmark = pytest.mark.usefixtures("single_thread")

TARGET = 80


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    return make_series(tmp_path_factory.mktemp("series"))


def _relative_error(weight: torch.Tensor, truth: torch.Tensor, base: torch.Tensor) -> float:
    return ((weight.float() - truth).norm() / (truth - base).norm()).item()


def _assert_untracked_bytes_equal_last(out, last):
    """Every tensor the forecast did not touch is a byte copy of the last checkpoint's."""
    predicted, last = CheckpointReader(out), CheckpointReader(last)
    assert predicted.names() == last.names()
    untracked = [n for n in last.names() if not PROJECTION.search(n)]
    assert "model.embed_tokens.weight" in untracked and "model.norm.weight" in untracked
    for name in untracked:
        a, b = predicted.get(name), last.get(name)
        assert a.dtype == b.dtype and torch.equal(a.view(torch.uint8), b.view(torch.uint8)), name


def test_predict_linear_lands_on_the_planted_future(series, tmp_path):
    out = tmp_path / "pred"
    report = predict(series.base, series.checkpoints, out, target_step=TARGET, progress=False)

    model = load_model(out)  # loads with from_pretrained
    state = dict(model.named_parameters())
    for name in series.slopes:
        error = _relative_error(state[name].detach(), series.planted(name, TARGET), series.base_state[name])
        assert error < 1e-2, (name, error)
    _assert_untracked_bytes_equal_last(out, series.checkpoints[-1])

    saved = json.loads((out / REPORT_FILE).read_text())
    assert saved == json.loads(json.dumps(report))
    assert saved["steps"] == [10, 20, 30, 40] and saved["target"]["value"] == TARGET
    assert (saved["fit"], saved["mode"], saved["frozen"]) == ("linear", "rank1_replace", [])
    assert set(saved["matrices"]) == set(series.slopes)
    assert all(m["fit_r2"] > 0.99 and m["rank1_share"] > 0.99 for m in saved["matrices"].values())
    assert set(saved["timings_s"]) >= {"trajectory", "forecast", "write", "total"}
    traj = Trajectory.load(out / TRAJECTORY_DIR)
    assert traj.steps == [10, 20, 30, 40] and set(traj.names) == set(series.slopes)
    card = (out / "README.md").read_text()  # says what the weights are, in the hub's card format
    assert card.startswith("---\nlibrary_name: transformers\ntags:\n- alpharl\n") and "A forecast" in card
    assert f"(step 40) was fitted (linear against the step) and extrapolated to step {TARGET}" in card


@pytest.mark.parametrize(
    ("mode", "scale", "truth_step", "plus_last"),
    [
        ("rank1_replace", 0.5, 60, False),  # W_40 + 0.5 (a_80 - a_40) v^T
        ("rank1_only", 1.0, 80, False),  # W_0 + a_80 v^T (rank-1 is exact here)
        ("reference", 1.0, 80, True),  # W_40 + a_80 v^T: the scripts' double count
    ],
)
def test_modes_and_scale(series, tmp_path, mode, scale, truth_step, plus_last):
    out = tmp_path / "pred"
    predict(series.base, series.checkpoints, out, target_step=TARGET, mode=mode, scale=scale, progress=False)
    reader = CheckpointReader(out)
    for name in series.slopes:
        base = series.base_state[name]
        truth = series.planted(name, truth_step)
        if plus_last:
            truth = truth + series.planted(name, 40) - base
        assert _relative_error(reader.get(name), truth, base) < 1e-2, name


def test_pls_on_rewards(series, tmp_path):
    rewards = [0.2 + 0.005 * s for s in series.steps]
    out = tmp_path / "pred"
    report = predict(
        series.base,
        series.checkpoints,
        out,
        covariate="reward",
        rewards=rewards,
        target_reward=0.2 + 0.005 * TARGET,
        fit="pls",
        progress=False,
    )
    assert report["covariates"]["reward"] == pytest.approx(rewards)
    reader = CheckpointReader(out)
    for name in series.slopes:
        error = _relative_error(reader.get(name), series.planted(name, TARGET), series.base_state[name])
        assert error < 1e-2, (name, error)


def test_sharded_bfloat16_untied(tmp_path):
    series = make_series(
        tmp_path / "src", dtype=torch.bfloat16, tie_word_embeddings=False, max_shard_size="20KB", noise=0
    )
    out = tmp_path / "pred"
    predict(series.base, series.checkpoints, out, target_step=TARGET, max_shard_bytes=30_000, progress=False)
    assert (out / "model.safetensors.index.json").is_file()
    reader = CheckpointReader(out)
    assert "lm_head.weight" in reader.names()
    for name in series.slopes:
        assert reader.dtype(name) == torch.bfloat16
        # bf16 storage of the inputs alone costs ~1% relative error
        assert _relative_error(reader.get(name), series.planted(name, TARGET), series.base_state[name]) < 0.05
    _assert_untracked_bytes_equal_last(out, series.checkpoints[-1])
    load_model(out)


def test_frozen_tensor_is_kept_and_reported(tmp_path):
    series = make_series(tmp_path / "src", steps=(1, 2, 3))
    frozen = "model.layers.1.mlp.down_proj.weight"
    base_weight = load_file(series.base / "model.safetensors")[frozen]
    for folder in series.checkpoints:
        state = load_file(folder / "model.safetensors")
        state[frozen] = base_weight
        save_file(state, folder / "model.safetensors", metadata={"format": "pt"})
    out = tmp_path / "pred"
    report = predict(series.base, series.checkpoints, out, target_step=6, progress=False)
    assert report["frozen"] == [frozen] and frozen not in report["matrices"]
    assert torch.equal(CheckpointReader(out).get(frozen), base_weight)
