import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from alpharl_trainer.cli import main
from tests.helpers_checkpoints import load_model, make_series

pytestmark = pytest.mark.usefixtures("single_thread")

Q = "model.layers.0.self_attn.q_proj.weight"


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    return make_series(tmp_path_factory.mktemp("series"))


@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
    return make_series(tmp_path_factory.mktemp("sharded"), max_shard_size="20KB")


def _args(series, out, *extra, checkpoints=None):
    checkpoints = series.checkpoints if checkpoints is None else checkpoints
    return [
        "predict",
        "--base",
        str(series.base),
        "--checkpoints",
        *map(str, checkpoints),
        "--out",
        str(out),
        "--quiet",
        *extra,
    ]


def _edited_copy(folder: Path, dest: Path, edit) -> Path:
    """A copy of a single-file checkpoint with its state dict passed through `edit`."""
    shutil.copytree(folder, dest)
    state = load_file(dest / "model.safetensors")
    edit(state)
    save_file(state, dest / "model.safetensors", metadata={"format": "pt"})
    return dest


def test_predict_cli_writes_a_loadable_checkpoint(series, tmp_path, capsys):
    out = tmp_path / "pred"
    assert main(_args(series, out, "--target-step", "60")) == 0
    assert "wrote" in capsys.readouterr().out
    load_model(out)
    assert json.loads((out / "alpharl_report.json").read_text())["target"]["step"] == 60


def test_predict_cli_pls_with_rewards(series, tmp_path, capsys):
    rewards = ["0.3", "0.4", "0.5", "0.6"]
    out = tmp_path / "pred"
    extra = ["--fit", "pls", "--covariate", "reward", "--rewards", *rewards, "--target-reward", "0.8"]
    assert main(_args(series, out, *extra)) == 0
    report = json.loads((out / "alpharl_report.json").read_text())
    assert report["fit"] == "pls" and report["target"] == {"covariate": "reward", "value": 0.8, "step": None}
    # both R^2 values, under names that say which is which; the paper's only with a reward covariate
    assert all(0 <= m["reward_r2"] <= 1 and m["fit_r2"] <= 1 for m in report["matrices"].values())
    assert report["summary"]["mean_reward_r2"] is not None
    assert "paper's R^2 (reward on the PLS score)" in capsys.readouterr().out
    assert main(_args(series, tmp_path / "by_step", "--target-step", "60")) == 0
    by_step = json.loads((tmp_path / "by_step" / "alpharl_report.json").read_text())
    assert by_step["summary"]["mean_reward_r2"] is None and by_step["summary"]["mean_fit_r2"] > 0.9


def test_track_vectors_and_exclude(series, tmp_path):
    out = tmp_path / "pred"
    extra = ["--target-step", "60", "--track-vectors", "--exclude", r"mlp\."]
    assert main(_args(series, out, *extra)) == 0
    tracked = set(json.loads((out / "alpharl_report.json").read_text())["matrices"])
    assert "model.norm.weight" in tracked and "model.layers.0.self_attn.q_proj.bias" in tracked
    assert not any("mlp." in n for n in tracked) and Q in tracked


def _shape_mismatch(series, tmp_path):
    def edit(state):
        state[Q] = state[Q][:, :16].contiguous()

    return [
        *series.checkpoints[:3],
        _edited_copy(series.checkpoints[3], tmp_path / "checkpoint-40", edit),
    ], []


def _missing_tensor(series, tmp_path):
    bad = _edited_copy(series.checkpoints[1], tmp_path / "checkpoint-20", lambda state: state.pop(Q))
    return [series.checkpoints[0], bad, *series.checkpoints[2:]], []


def _nan_in_delta(series, tmp_path):
    def edit(state):
        state[Q][3, 5] = torch.nan

    return [
        *series.checkpoints[:2],
        _edited_copy(series.checkpoints[2], tmp_path / "checkpoint-30", edit),
    ], []


def _corrupt(series, tmp_path):
    bad = shutil.copytree(series.checkpoints[1], tmp_path / "checkpoint-20")
    data = (bad / "model.safetensors").read_bytes()
    (bad / "model.safetensors").write_bytes(data[: len(data) // 2])
    return [series.checkpoints[0], bad, *series.checkpoints[2:]], []


def _config(text: str | None):
    """The last checkpoint with its config.json replaced by `text` (None: a link to /dev/zero)."""

    def make(series, tmp_path):
        last = shutil.copytree(series.checkpoints[-1], tmp_path / "checkpoint-40")
        (last / "config.json").unlink()
        if text is None:
            (last / "config.json").symlink_to("/dev/zero")
        else:
            (last / "config.json").write_text(text)
        return [*series.checkpoints[:-1], last], []

    return make


def _last_edited(edit):
    """The series with its last checkpoint edited by `edit(state)`."""

    def make(series, tmp_path):
        return [
            *series.checkpoints[:3],
            _edited_copy(series.checkpoints[3], tmp_path / "checkpoint-40", edit),
        ], []

    return make


def _nan_untracked(state):
    state["model.norm.weight"][0] = torch.nan


def _int_projection(state):
    state[Q] = (state[Q] * 100).to(torch.int32)


def _same_as_base(series, tmp_path):
    return [*series.checkpoints[:3], shutil.copytree(series.base, tmp_path / "checkpoint-50")], []


@pytest.mark.parametrize(
    ("make_inputs", "expected"),
    [
        (_shape_mismatch, f"{Q} has shape \\[32, 16\\] in .*checkpoint-40"),
        (_missing_tensor, f"{Q} is missing in checkpoint .*checkpoint-20"),
        (_nan_in_delta, f"{Q} in .*checkpoint-30.*NaN"),
        (_corrupt, "corrupt or truncated safetensors file .*checkpoint-20/model.safetensors"),
        (_same_as_base, "checkpoint-50 is identical to the base .*no update"),
        (lambda s, _: (s.checkpoints[:2], []), "at least 3 checkpoints, got 2"),
        (lambda s, _: (s.checkpoints[:3], ["--steps", "10", "10", "20"]), "the same step 10"),
        (
            lambda s, _: ([s.checkpoints[1], s.checkpoints[0], *s.checkpoints[2:]], []),
            "increasing step order",
        ),
        (lambda s, _: (s.checkpoints, ["--rewards", "0.1", "0.2"]), "--rewards has 2 values for 4"),
        (
            lambda s, _: (s.checkpoints, ["--covariate", "reward", "--rewards", "1", "2", "3", "4"]),
            "needs .*--target-reward",
        ),
        (lambda s, _: (s.checkpoints, ["--steps", "1", "2", "3"]), "--steps has 3 values for 4"),
        (
            lambda s, _: (s.checkpoints[::-1], ["--steps", "10", "20", "30", "40"]),
            "--steps 10 20 30 40 contradict the steps 40 30 20 10 in the folders' names",
        ),
        (
            lambda s, _: (s.checkpoints, ["--steps", "10", "20", "30", "50"]),
            "--steps 10 20 30 50 contradict the steps 10 20 30 40",
        ),
        (
            lambda s, _: ([*s.checkpoints[:3], s.checkpoints[2]], ["--steps", "10", "20", "30", "40"]),
            "checkpoint-30 is given twice",
        ),
        (
            lambda s, _: (
                [
                    s.checkpoints[0],
                    s.checkpoints[0].parent / ".." / s.checkpoints[0].parent.name / s.checkpoints[0].name,
                    *s.checkpoints[1:3],
                ],
                ["--steps", "1", "2", "3", "4"],
            ),
            "checkpoint-10 is given twice",
        ),
        (
            lambda s, _: ([s.base, *s.checkpoints[1:]], ["--steps", "1", "2", "3", "4"]),
            "base is given twice \\(as the base and as a checkpoint\\)",
        ),
        (_config(""), "checkpoint-40/config.json is unreadable or not JSON"),
        (_config("[" * 200_000 + "]" * 200_000), "checkpoint-40/config.json is unreadable .*recursion depth"),
        (_config('{"hidden_size": 8}'), "checkpoint-40/config.json is not a model config"),
        (_config(None), "checkpoint-40/config.json is a link to /dev/zero, outside"),  # never read
        (_last_edited(lambda st: st.pop("model.norm.weight")), "model.norm.weight is in .*base but not in"),
        (_last_edited(lambda st: st.update(extra=torch.ones(3))), "extra is in .*checkpoint-40 but not in"),
        (_last_edited(_nan_untracked), "model.norm.weight of .*checkpoint-40 has NaN.*copied, not forecast"),
        (_last_edited(_int_projection), f"{Q} is stored as torch.int32 in .*checkpoint-40"),
    ],
    ids=[
        "shape",
        "missing-tensor",
        "nan",
        "corrupt",
        "no-update",
        "too-few",
        "duplicate-steps",
        "out-of-order",
        "rewards-count",
        "no-target-reward",
        "steps-count",
        "steps-reversed-against-names",
        "steps-respaced-against-names",
        "same-checkpoint-twice",
        "same-checkpoint-another-spelling",
        "base-as-checkpoint",
        "empty-config",
        "config-nested-200000-deep",
        "config-without-model-type",
        "config-dev-zero",
        "untracked-missing-from-last",
        "missing-from-base",
        "nan-untracked",
        "int-projection",
    ],
)
def test_bad_inputs_exit_2_and_leave_nothing(series, tmp_path, capsys, make_inputs, expected):
    checkpoints, extra = make_inputs(series, tmp_path)
    out = tmp_path / "pred"
    assert main(_args(series, out, "--target-step", "90", *extra, checkpoints=checkpoints)) == 2
    err = capsys.readouterr().err
    assert err.startswith("alpharl predict: error: ") and err.count("\n") == 1, err
    assert re.search(expected, err), err
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".pred")]  # no temporary folder


def test_missing_shard(sharded, tmp_path, capsys):
    bad = shutil.copytree(sharded.checkpoints[2], tmp_path / "checkpoint-30")
    weight_map = json.loads((bad / "model.safetensors.index.json").read_text())["weight_map"]
    shard = sorted(set(weight_map.values()))[2]
    (bad / shard).unlink()
    checkpoints = [*sharded.checkpoints[:2], bad, sharded.checkpoints[3]]
    out = tmp_path / "pred"
    assert main(_args(sharded, out, "--target-step", "90", checkpoints=checkpoints)) == 2
    assert f"shard {bad / shard} named in" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("shard", ["../elsewhere.safetensors", "/etc/passwd"])
def test_index_naming_a_shard_outside_the_folder_is_refused(sharded, tmp_path, capsys, shard):
    bad = shutil.copytree(sharded.checkpoints[2], tmp_path / "checkpoint-30")
    shutil.copy(next(bad.glob("*.safetensors")), tmp_path / "elsewhere.safetensors")
    index = json.loads((bad / "model.safetensors.index.json").read_text())
    name = next(iter(index["weight_map"]))
    index["weight_map"][name] = shard
    (bad / "model.safetensors.index.json").write_text(json.dumps(index))
    checkpoints = [*sharded.checkpoints[:2], bad, sharded.checkpoints[3]]
    out = tmp_path / "pred"
    assert main(_args(sharded, out, "--target-step", "90", checkpoints=checkpoints)) == 2
    assert f"maps {name} to '{shard}', outside" in capsys.readouterr().err
    assert not out.exists()


def test_existing_output_needs_overwrite(series, tmp_path, capsys):
    out = tmp_path / "pred"
    out.mkdir()
    assert main(_args(series, out, "--target-step", "60")) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(_args(series, out, "--target-step", "60", "--overwrite")) == 0
    assert (out / "model.safetensors").is_file()


def test_target_must_be_ahead(series, tmp_path, capsys):
    assert main(_args(series, tmp_path / "pred", "--target-step", "40")) == 2
    assert "not after the last checkpoint's step 40" in capsys.readouterr().err


def test_subprocess_exit_code(series, tmp_path):
    """The installed entry point turns AlphaRLError into exit code 2 (success is covered in-process)."""
    out = tmp_path / "pred"
    bad = subprocess.run(
        [sys.executable, "-m", "alpharl_trainer"]
        + _args(series, out, "--target-step", "60", checkpoints=series.checkpoints[:2]),
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"},
    )
    assert bad.returncode == 2 and "at least 3 checkpoints, got 2" in bad.stderr, bad.stderr
    assert not out.exists()


@pytest.mark.parametrize("command", ["predict", "analyze"])
@pytest.mark.parametrize("where", ["parent of the inputs", "inside an input", "the current directory"])
def test_out_that_contains_or_sits_in_an_input_is_refused(tmp_path, capsys, monkeypatch, command, where):
    """With --overwrite such an --out used to be replaced whole: the base and every checkpoint deleted."""
    series = make_series(tmp_path / "inputs")
    out = {
        "parent of the inputs": tmp_path / "inputs",
        "inside an input": series.checkpoints[-1] / "pred",
        "the current directory": Path("."),
    }[where]
    monkeypatch.chdir(tmp_path / "inputs")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    args = _args(series, out, "--overwrite")
    args[0] = command
    if command == "predict":
        args += ["--target-step", "60"]
    assert main(args) == 2
    assert "--out" in capsys.readouterr().err
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing deleted or added


SLOW_PREDICT = """
import sys, time
import alpharl_trainer.offline.predict as offline_predict
build = offline_predict.build_trajectory
def slow(*args, **kwargs):
    print("WRITING", flush=True)  # the temporary output folder exists now
    time.sleep(60)
    return build(*args, **kwargs)
offline_predict.build_trajectory = slow
from alpharl_trainer.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_sigterm_removes_the_partial_output(series, tmp_path):
    """SIGTERM (Slurm's, or `kill`) used to leave `.NAME.tmp-*` beside --out; now it cleans up like Ctrl-C."""
    import signal

    out = tmp_path / "pred"
    cmd = [sys.executable, "-c", SLOW_PREDICT, *_args(series, out, "--target-step", "60")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "WRITING"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".pred.tmp-")]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    assert not out.exists() and not list(tmp_path.iterdir())  # no output, no temporary folder


def test_a_stale_temporary_folder_is_removed_and_reported(series, tmp_path, capsys):
    """A write killed outright (SIGKILL, a lost node) leaves its temporary folder; the next write there
    removes it (its process is gone) and says so."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    stale = tmp_path / f".pred.tmp-{int(dead.stdout)}-0123abcd"
    (stale / "partial").mkdir(parents=True)
    out = tmp_path / "pred"
    assert main(_args(series, out, "--target-step", "60")) == 0
    assert not stale.exists() and (out / "model.safetensors").is_file()
    assert f"removed {stale}: a partial output left by an interrupted run" in capsys.readouterr().err


def test_output_names_and_paths_at_the_os_limits(series, tmp_path, capsys):
    """A 240-byte --out used to fail with a traceback: its temporary name `.NAME.tmp-PID-TAG` was over the
    255-byte limit. Names and paths over the limits, and a file where a folder must be, are exit 2."""
    long_ok = tmp_path / ("x" * 240)
    assert main(_args(series, long_ok, "--target-step", "60")) == 0
    assert (long_ok / "model.safetensors").is_file()
    cases = {
        tmp_path / ("x" * 256): "over the 255-byte file-name limit",
        tmp_path.joinpath(*["y" * 200] * 25): "over the 4096-byte path limit",
        tmp_path / "a-file" / "pred": "cannot write the output .*a-file",
    }
    (tmp_path / "a-file").write_text("not a folder")
    for out, message in cases.items():
        assert main(_args(series, out, "--target-step", "60")) == 2
        err = capsys.readouterr().err
        assert re.search(message, err) and "Traceback" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["a-file", "x" * 240])  # nothing left behind


def test_a_forecast_far_outside_the_window_is_reported_or_refused(series, tmp_path, capsys):
    """Targets 1e14 or --scale 1e30 used to write weights of 1e11-1e28 without a word."""
    far = tmp_path / "far"
    assert main(_args(series, far, "--target-step", "800")) == 0  # 19x the window's whole update
    captured = capsys.readouterr()
    assert "warning: the forecast moves 14 tensor(s) more than 10 times" in captured.err
    report = json.loads((far / "alpharl_report.json").read_text())
    assert 15 < report["summary"]["max_jump"] < 25 and len(report["summary"]["large_jumps"]) == 14
    for extra in (["--target-step", "100000000000000"], ["--target-step", "60", "--scale", "1e30"]):
        out = tmp_path / "absurd"
        assert main(_args(series, out, *extra)) == 2
        assert "times its whole window update" in capsys.readouterr().err
        assert not out.exists()
    near = tmp_path / "near"
    assert main(_args(series, near, "--target-step", "60")) == 0
    assert "warning" not in capsys.readouterr().err


def test_dtype_float32_keeps_the_forecast_exact_on_bf16_checkpoints(tmp_path):
    """On bf16 checkpoints the forecast used to be rounded into bf16 (about 1% of a small update lost);
    --dtype float32 writes the float32 result and a config.json that loads it as float32."""
    from alpharl_trainer.checkpoints import CheckpointReader

    series = make_series(tmp_path / "bf16", dtype=torch.bfloat16)
    kept, exact = tmp_path / "kept", tmp_path / "exact"
    assert main(_args(series, kept, "--target-step", "60")) == 0
    assert main(_args(series, exact, "--target-step", "60", "--dtype", "float32")) == 0
    assert load_file(kept / "model.safetensors")[Q].dtype == torch.bfloat16
    written = load_file(exact / "model.safetensors")
    assert all(t.dtype == torch.float32 for t in written.values())
    assert json.loads((exact / "config.json").read_text())["dtype"] == "float32"
    from transformers import AutoModelForCausalLM

    assert AutoModelForCausalLM.from_pretrained(exact, dtype="auto").dtype == torch.float32
    assert AutoModelForCausalLM.from_pretrained(kept, dtype="auto").dtype == torch.bfloat16
    # the float32 forecast is the bf16 one before rounding
    assert torch.allclose(written[Q].to(torch.bfloat16), load_file(kept / "model.safetensors")[Q], atol=1e-2)
    last = CheckpointReader(series.checkpoints[-1]).get(Q).float()
    assert not torch.equal(written[Q], last)  # the forecast moved it


def test_fixed_basis_forecast_writes_the_planted_future(series, tmp_path, capsys):
    """`--forecast fixed-basis`: the series plants `W_t = W_0 + t a v^T` (+ noise) on every projection, so the
    forecast at step 60 is that line (within the noise), untracked tensors are the last checkpoint's, and
    the report says which forecast wrote the weights. With --covariate reward it is refused."""
    out = tmp_path / "fixed"
    args = _args(series, out, "--target-step", "60", "--forecast", "fixed-basis", "--basis-rank", "2")
    assert main(args) == 0
    report = json.loads((out / "alpharl_report.json").read_text())
    assert report["forecast"] == {"method": "fixed-basis", "basis_rank": 2, "profile": "linear"}
    written = load_file(out / "model.safetensors")
    last = load_file(series.checkpoints[-1] / "model.safetensors")
    a, v = series.slopes[Q]
    planted = series.base_state[Q] + 60 * torch.outer(a, v)
    assert float((written[Q] - planted).norm() / (60 * torch.outer(a, v)).norm()) < 1e-2
    assert float((last[Q] - planted).norm() / (60 * torch.outer(a, v)).norm()) > 0.2  # the jump is real
    norm = "model.norm.weight"
    assert torch.equal(written[norm], last[norm])
    from alpharl_trainer.extrapolation.fixed_basis import fixed_basis_forecast

    base = series.base_state[Q].double()
    deltas = [load_file(c / "model.safetensors")[Q].double() - base for c in series.checkpoints]
    expected = base + fixed_basis_forecast([float(s) for s in series.steps], deltas, 60.0, k=2)
    torch.testing.assert_close(written[Q], expected.float())  # this forecast, not the rank-1 line's
    assert main(_args(series, tmp_path / "rank1", "--target-step", "60")) == 0
    assert not torch.equal(load_file(tmp_path / "rank1" / "model.safetensors")[Q], written[Q])
    capsys.readouterr()
    refused = _args(series, tmp_path / "r", "--forecast", "fixed-basis", "--covariate", "reward")
    assert main([*refused, "--rewards", "0.1", "0.2", "0.3", "0.4", "--target-reward", "0.5"]) == 2
    assert "--forecast fixed-basis forecasts in the step" in capsys.readouterr().err


def test_links_leaving_the_checkpoint_are_not_copied_into_the_forecast(series, tmp_path, capsys):
    """`tokenizer_extra.json -> /etc/shadow` in a checkpoint used to be followed: the target's bytes were
    copied into the forecast folder."""
    secret = tmp_path / "secret.txt"
    secret.write_text("root:$6$not-for-the-forecast")
    last = shutil.copytree(series.checkpoints[-1], tmp_path / "checkpoint-40")
    (last / "tokenizer_extra.json").symlink_to(secret)
    (last / "vocab.json").symlink_to(tmp_path)  # a folder is no file to copy either
    (last / "chat_template.jinja").write_text("{{ messages }}")
    (last / "tokenizer_alias.json").symlink_to("chat_template.jinja")  # a link that stays inside is fine
    out = tmp_path / "pred"
    assert main(_args(series, out, "--target-step", "80", checkpoints=[*series.checkpoints[:-1], last])) == 0
    assert "tokenizer_extra.json" in capsys.readouterr().err
    copied = {p.name: p for p in out.iterdir()}
    assert "tokenizer_extra.json" not in copied and "vocab.json" not in copied
    assert copied["tokenizer_alias.json"].read_text() == "{{ messages }}"
    assert not any(p.is_symlink() for p in copied.values())
    assert not any(b"not-for-the-forecast" in p.read_bytes() for p in out.rglob("*") if p.is_file())


def _as_hub_snapshot(folder: Path, hub: Path, repo: str) -> Path:
    """`folder` laid out as the Hugging Face hub cache stores it: every file of `snapshots/<rev>/` a relative
    link into the repository's `blobs/`."""
    snapshot = hub / f"models--{repo}" / "snapshots" / "0123abcd"
    blobs = hub / f"models--{repo}" / "blobs"
    snapshot.mkdir(parents=True)
    blobs.mkdir(exist_ok=True)
    for i, path in enumerate(sorted(folder.iterdir())):
        shutil.copy(path, blobs / f"blob{i}")
        (snapshot / path.name).symlink_to(Path("..", "..", "blobs", f"blob{i}"))
    return snapshot


def test_hugging_face_hub_cache_snapshots_are_accepted(sharded, tmp_path):
    """In the hub cache every file is a link into `../../blobs/`: an index entry is judged by its name, and a
    link that stays inside the repository's cache folder is copied."""
    hub = tmp_path / "hub"
    snapshots = [_as_hub_snapshot(c, hub, f"org--ckpt{i}") for i, c in enumerate(sharded.checkpoints)]
    out = tmp_path / "pred"
    args = _args(
        sharded, out, "--target-step", "90", "--steps", "10", "20", "30", "40", checkpoints=snapshots
    )
    assert main(args) == 0
    assert (out / "config.json").is_file() and not (out / "config.json").is_symlink()
    assert (out / "config.json").read_bytes() == (sharded.checkpoints[-1] / "config.json").read_bytes()
    load_model(out)


@pytest.mark.parametrize("points_to", ["a folder", "nothing"])
def test_out_that_is_a_link_is_refused_before_any_work(series, tmp_path, capsys, points_to):
    """`--out LINK --overwrite` read and forecast the whole window, then failed at the final rename."""
    dest = tmp_path / "elsewhere"
    if points_to == "a folder":
        dest.mkdir()
        (dest / "keep.txt").write_text("the user's file")
    link = tmp_path / "pred"
    link.symlink_to(dest)
    assert main(_args(series, link, "--target-step", "90", "--overwrite")) == 2
    err = capsys.readouterr().err
    assert f"output {link} is a link to {dest}" in err and err.count("\n") == 1, err
    assert link.is_symlink() and (
        points_to == "nothing" or (dest / "keep.txt").read_text() == "the user's file"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["pred", *(["elsewhere"] if dest.exists() else [])]
    )


def disk_full_at(marker: str):
    """safetensors' save_file failing as it does on a full disk (measured on a full tmpfs) for paths holding
    `marker`: the lowest write this code reaches (the bytes are written in Rust)."""
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    def save(tensors, filename, metadata=None):
        if marker in str(filename):
            raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")
        return save_file(tensors, filename, metadata=metadata)

    return save


def test_a_full_disk_is_one_line_leaves_nothing_and_a_rerun_works(series, tmp_path, capsys, monkeypatch):
    """A full disk while the shards were written ended in a SafetensorError traceback."""
    out = tmp_path / "pred"
    monkeypatch.setattr("alpharl_trainer.checkpoints.save_file", disk_full_at(".shard-"))
    assert main(_args(series, out, "--target-step", "90")) == 2
    err = capsys.readouterr().err
    expected = f"cannot write the output {out}: No space left on device; nothing was written"
    assert err == f"alpharl predict: error: {expected}\n"
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    assert main(_args(series, out, "--target-step", "90")) == 0
    load_model(out)


def test_an_index_nested_too_deep_is_one_line(sharded, tmp_path, capsys):
    """JSON nested 200,000 deep ended in a RecursionError traceback."""
    bad = shutil.copytree(sharded.checkpoints[2], tmp_path / "checkpoint-30")
    (bad / "model.safetensors.index.json").write_text("[" * 200_000 + "]" * 200_000)
    checkpoints = [*sharded.checkpoints[:2], bad, sharded.checkpoints[3]]
    assert main(_args(sharded, tmp_path / "pred", "--target-step", "90", checkpoints=checkpoints)) == 2
    err = capsys.readouterr().err
    assert f"unreadable checkpoint index {bad}/model.safetensors.index.json: maximum recursion depth" in err
    assert err.count("\n") == 1 and not (tmp_path / "pred").exists()
