"""Every tiny recipe parses and really trains a few steps through `alpharl train` (swap included); the run
says what happened; a finished run is not resumed; the README's `alpharl train` examples plan cleanly; bad
recipes fail before any weight is loaded."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from alpharl_trainer.cli import main as cli
from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.recipe import parse
from alpharl_trainer.trainer.candidates import describe
from scripts import replay_gate
from tests.trainer.harness import REPO, test_model_dir

RECIPES = sorted((REPO / "recipes" / "tiny").glob("*.yaml"))
SHORT = [
    "--max_steps", "6", "--alpharl_interval", "2", "--alpharl_window_end", "6",
    "--alpharl_finetune_steps", "0",
    "--per_device_train_batch_size", "16", "--train_size", "64", "--eval_size", "8",
    "--alpharl_acceptance_prompts", "4", "--alpharl_acceptance_samples", "1", "--report_test_size", "16",
    "--save_strategy", "no", "--logging_steps", "1",
]  # fmt: skip


@pytest.mark.parametrize("recipe", RECIPES, ids=[r.stem for r in RECIPES])
def test_tiny_recipe_trains_and_decides_a_swap(recipe: Path, tmp_path):
    out = tmp_path / "run"
    code = cli(
        [
            "train",
            str(recipe),
            "--model_name_or_path",
            str(test_model_dir()),
            "--output_dir",
            str(out),
            *SHORT,
        ]
    )
    assert code == 0
    summary = json.loads((out / "alpharl" / "summary.json").read_text())
    assert summary["snapshots"] == [2, 4, 6] and summary["finished"]
    assert summary["swap"]["step"] == 6 and "current" in summary["swap"]["scores"]
    stages = {row["stage"]: row for row in summary["test"]["stages"]}
    chosen = summary["swap"]["chosen"]
    applied = chosen is not None
    # the recipe's portfolio: rank-1 forecasts to 8, 9, 12, 15, ExPO and the average of the 3 snapshots (the
    # saturating fixed basis needs 4 snapshots: left out of this short window)
    labels = summary["swap"]["candidates"]
    assert labels[:4] == ["8", "9", "12", "15"] and "average of 3" in labels and "expo a=0.5" in labels
    assert not any(label.startswith("fixed-basis") for label in labels)
    names = {label: describe(label).removeprefix("the ") for label in labels}
    candidates = {name + (" (applied)" if label == chosen else "") for label, name in names.items()}
    assert stages.keys() == {"base policy", "window end (truncated run)", "final"} | candidates
    for name in candidates:  # every scored candidate, on the test split, against W_K at the same step
        assert stages[name]["vs"] == "window end (truncated run)" and stages[name]["step"] == 6
    # No fine-tune: the final model is the window end's decision, compared with the truncated run there.
    assert stages["final"]["vs"] == "window end (truncated run)" and stages["final"]["step"] == 6
    assert stages["final"]["paired"]["n"] == 16
    # outcomes kept: any two stages pair after the fact, and the kept outcomes give the reported accuracy
    assert all(len(row["outcomes"]) == 16 and set(row["outcomes"]) <= {0, 1} for row in stages.values())
    assert all(sum(row["outcomes"]) / 16 == row["accuracy"] for row in stages.values())
    # the gate's per-prompt scores are kept with its decision, which they re-derive
    per_prompt = summary["swap"]["per_prompt"]
    assert set(per_prompt) == {"current", *summary["swap"]["scores"]} - set(summary["swap"]["collapsed"])
    means = {k: sum(v) / len(v) for k, v in per_prompt.items()}
    assert means == pytest.approx({k: summary["swap"]["scores"][k] for k in per_prompt})
    if not applied:  # a rollback keeps W_K: the final model is the truncated run itself
        assert stages["final"]["paired"]["diff"] == 0
    assert (out / "model.safetensors").is_file()


def test_exact_greedy_gate_decides_as_the_greedy_gate_without_generating(tmp_path):
    """The main job's recipe (shipped tiny policy, sort) to a 6-step window: the gate scored teacher-forced
    gives every candidate the score greedy generation gives it: the same decision, and nothing generated."""
    swaps = {}
    for scoring in ("greedy", "exact_greedy"):
        out = tmp_path / scoring
        args = ["train", str(REPO / "recipes" / "tiny" / "grpo.yaml"), "--output_dir", str(out), *SHORT]
        args += ["--eval_size", "48", "--alpharl_acceptance_prompts", "48", "--report_test_size", "0"]
        args += ["--learning_rate", "3e-4"]  # weights that move in 6 steps: candidates that differ
        assert cli([*args, "--alpharl_acceptance_scoring", scoring]) == 0
        swaps[scoring] = json.loads((out / "alpharl" / "summary.json").read_text())["swap"]
    greedy, exact = swaps["greedy"], swaps["exact_greedy"]
    assert exact["scores"] == greedy["scores"] and exact["chosen"] == greedy["chosen"]
    assert len(set(exact["scores"].values())) > 1  # the candidates differ: the equality could fail
    assert exact["gate_engine"] == "teacher_forced" and exact["cost"]["completions"] == 0
    assert greedy["cost"]["completions"] == 48 * len(greedy["scores"])
    assert (
        not greedy["per_prompt_probability"]
        and exact["per_prompt_probability"].keys() == exact["scores"].keys()
    )

    # The same window judged by a race with a shortlist of 1 at 16 prompts (ranked by the gold completion's
    # probability): what it decides is what scripts/replay_gate.py replays from the full gate's record.
    out = tmp_path / "race"
    args = ["train", str(REPO / "recipes" / "tiny" / "grpo.yaml"), "--output_dir", str(out), *SHORT]
    args += ["--eval_size", "48", "--alpharl_acceptance_prompts", "48", "--report_test_size", "0"]
    args += ["--learning_rate", "3e-4", "--alpharl_acceptance_scoring", "exact_greedy"]
    args += ["--alpharl_acceptance_rule", "race", "--alpharl_acceptance_finalists", "1"]
    args += ["--alpharl_acceptance_finalists_at", "16", "--alpharl_acceptance_first", "16"]
    assert cli(args) == 0
    race = json.loads((out / "alpharl" / "summary.json").read_text())["swap"]
    survivors = set(race["scores"]) - {"current"} - set(race["eliminated"])
    assert len(survivors) <= 1 and any("finalists" in why for why in race["eliminated"].values())
    assert race["cost"]["prompts"] < exact["cost"]["prompts"]
    knobs = dict(first=16, finalists=1, finalists_at=16)
    replayed = replay_gate.replay(exact["per_prompt"], 0.01, 0.0, exact["per_prompt_probability"], **knobs)
    assert replayed[:2] == (race["chosen"], race["cost"]["prompts"])


def test_recipe_errors_are_clear(tmp_path):
    with pytest.raises(AlphaRLError, match="does not exist"):
        parse(["--config", str(tmp_path / "missing.yaml")])
    bad = tmp_path / "bad.yaml"
    bad.write_text("trainer: ppo2\noutput_dir: x\n")
    with pytest.raises(AlphaRLError, match="unknown trainer"):
        parse(["--config", str(bad)])
    assert (
        cli(["train", str(RECIPES[0]), "--model_name_or_path", str(tmp_path / "nope"), "--use_cpu", "true"])
        == 2
    )


def test_main_job_report_pairs_the_final_model_with_a_truncated_run(tmp_path, capsys):
    """With a fine-tune after the swap, the truncated run is trained to the same step and paired with it."""
    out = tmp_path / "run"
    args = [
        "train",
        str(REPO / "recipes" / "tiny" / "grpo.yaml"),
        "--model_name_or_path",
        str(test_model_dir()),
    ]
    args += [
        "--output_dir",
        str(out),
        *SHORT,
        "--alpharl_finetune_steps",
        "2",
        "--alpharl_acceptance_margin",
        "-1",
        "--max_steps",
        "10",
    ]
    assert cli(args) == 0  # margin -1: the first candidate is applied, so the final model differs from W_K
    printed = capsys.readouterr().out
    summary = json.loads((out / "alpharl" / "summary.json").read_text())
    stages = {row["stage"]: row for row in summary["test"]["stages"]}
    assert summary["steps"] == 8 and stages["truncated run"]["step"] == 8
    assert stages["final"]["vs"] == "truncated run" and stages["forecast to step 8 (applied)"]["step"] == 6
    assert "== run finished at step 8 ==" in printed and "AlphaRL at step 6: applied the forecast" in printed
    assert f"summary in {out}/alpharl/summary.json" in printed
    assert not (out / "truncated").exists()  # the truncated run saves nothing

    assert cli(args) == 2  # running it again does not resume a finished run
    assert "holds a finished run" in capsys.readouterr().err


def test_repeated_jumps_are_each_reported(tmp_path, capsys):
    """Two jumps (steps 3 and 6): each decision is printed and saved, the stages of the second jump carry its
    number, and the final model is paired with the truncated run trained to the same step."""
    out = tmp_path / "run"
    jumps = ["--alpharl_window_end", "3", "--alpharl_interval", "1", "--alpharl_jumps", "2"]
    args = [
        "train",
        str(REPO / "recipes" / "tiny" / "grpo.yaml"),
        "--model_name_or_path",
        str(test_model_dir()),
    ]
    assert cli([*args, "--output_dir", str(out), *SHORT, *jumps]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "alpharl" / "summary.json").read_text())
    assert [s["step"] for s in summary["swaps"]] == [3, 6] and summary["swap"] == summary["swaps"][-1]
    assert "AlphaRL at step 3: " in printed and "AlphaRL at step 6: " in printed
    stages = {row["stage"]: row for row in summary["test"]["stages"]}
    assert stages["window end (truncated run)"]["step"] == 3
    assert stages["window end before jump 2"]["step"] == 6
    assert stages["forecast to step 8 (jump 2)"]["vs"] == "window end before jump 2"
    assert stages["final"]["vs"] == "truncated run" and stages["truncated run"]["step"] == 6


README_TRAIN = [
    line.strip().split(" ", 2)[2]
    for line in (REPO / "README.md").read_text().splitlines()
    if line.strip().startswith("alpharl train ")
]


@pytest.mark.parametrize("example", README_TRAIN)
def test_readme_train_examples_plan_cleanly(example: str, capsys, monkeypatch):
    """`alpharl train --dry-run` runs the same checks as a real run before it loads anything."""
    monkeypatch.chdir(REPO)
    assert cli(["train", "--dry-run", *example.split()]) == 0, capsys.readouterr()


def test_bad_settings_fail_before_loading_weights(tmp_path, monkeypatch):
    def never(*_args, **_kwargs):
        raise AssertionError("weights were loaded")

    monkeypatch.setattr("alpharl_trainer.recipe.load_policy", never)
    recipe = str(RECIPES[0])
    out = ["--output_dir", str(tmp_path / "out")]
    assert cli(["train", recipe, *out, "--max_steps", "30", "--alpharl_window_end", "60"]) == 2
    assert cli(["train", recipe, *out, "--no_such_field", "1"]) == 2
    assert cli(["train", recipe, *out, "--num_generations", "3"]) == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("trainer: grpo\nmax_steps: [\n")
    assert cli(["train", str(bad)]) == 2
    assert not (tmp_path / "out").exists()


@pytest.mark.slow  # ~1.5 min: the README's examples as a user runs them (main job included)
@pytest.mark.parametrize("example", README_TRAIN)
def test_readme_train_examples_run(example: str, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    assert cli(["train", *example.split(), "--output_dir", str(tmp_path / "run")]) == 0
    assert "== run finished at step" in capsys.readouterr().out
    assert json.loads((tmp_path / "run" / "alpharl" / "summary.json").read_text())["swap"] is not None


def test_resume_skips_a_checkpoint_whose_save_was_interrupted(tmp_path, capsys):
    """A kill during a save leaves checkpoint-N without trainer_state.json; auto-resume used to pick it and
    fail the same way on every requeue. Now it says so, resumes from the newest complete one and finishes."""
    out = tmp_path / "run"
    args = ["train", str(REPO / "recipes" / "tiny" / "grpo.yaml"), "--output_dir", str(out), *SHORT]
    args += ["--model_name_or_path", str(test_model_dir()), "--save_strategy", "steps", "--save_steps", "2"]
    args += ["--report_test_size", "0"]
    assert cli(args) == 0
    (out / "alpharl" / "summary.json").unlink()  # as if the run had been killed...
    (out / "checkpoint-6" / "trainer_state.json").unlink()  # ...while saving its last checkpoint
    capsys.readouterr()
    assert cli(args) == 0
    printed = capsys.readouterr().out
    assert f"skipping {out}/checkpoint-6: an interrupted save (no trainer_state.json)" in printed
    assert f"resuming from {out}/checkpoint-4" in printed
    summary = json.loads((out / "alpharl" / "summary.json").read_text())
    assert summary["steps"] == 6 and summary["swap"]["step"] == 6


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("where", ["the model", "inside the model", "holding the model", "the task file"])
@pytest.mark.parametrize("dry_run", [False, True], ids=["run", "dry-run"])
def test_output_dir_that_is_an_input_is_refused_before_anything_is_written(
    where, dry_run, tmp_path, monkeypatch, capsys
):
    """`--output_dir` equal to the policy folder used to train into it and overwrite the user's policy."""

    def never(*_args, **_kwargs):
        raise AssertionError("weights were loaded")

    monkeypatch.setattr("alpharl_trainer.recipe.load_policy", never)
    model = tmp_path / "inputs" / "policy"
    model.mkdir(parents=True)
    (model / "config.json").write_bytes((test_model_dir() / "config.json").read_bytes())
    (model / "model.safetensors").write_bytes(b"the user's weights")
    task = tmp_path / "inputs" / "bench.jsonl"
    task.write_text('{"problem": "1+1?", "answer": "2"}\n' * 20)
    out = {
        "the model": model,
        "inside the model": model / "run",
        "holding the model": tmp_path / "inputs",
        "the task file": task,
    }[where]
    before = _tree(tmp_path)
    args = ["train", *(["--dry-run"] if dry_run else []), str(RECIPES[0]), "--model_name_or_path", str(model)]
    if where == "the task file":
        args += ["--task", str(task), "--rewards", "math_accuracy"]
    assert cli([*args, "--output_dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert "output_dir" in err and (str(task) if where == "the task file" else str(model)) in err
    assert _tree(tmp_path) == before and not (model / "run").exists()


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory) -> tuple[Path, list[str]]:
    """A finished tiny run with checkpoints 2, 4 and 6, and the arguments that ran it (without output_dir)."""
    out = tmp_path_factory.mktemp("saved") / "run"
    args = ["train", str(REPO / "recipes" / "tiny" / "grpo.yaml"), *SHORT, "--report_test_size", "0"]
    args += ["--model_name_or_path", str(test_model_dir()), "--save_strategy", "steps", "--save_steps", "2"]
    assert cli([*args, "--output_dir", str(out)]) == 0
    return out, args


def _cut(text: str) -> str:
    return text[: len(text) // 2]


DAMAGES = {  # damage: (file, how it is damaged, what the skip says of checkpoint-6)
    "state truncated": ("alpharl/state.json", _cut, "alpharl/state.json is truncated or not JSON"),
    "state empty": ("alpharl/state.json", lambda text: "", "alpharl/state.json is truncated or not JSON"),
    "state incomplete": (
        "alpharl/state.json",
        lambda text: json.dumps({k: v for k, v in json.loads(text).items() if k != "step_rewards"}),
        "alpharl/state.json is incomplete (no 'step_rewards')",
    ),
    "trajectory truncated": ("alpharl/trajectory/trajectory.json", _cut, "alpharl/trajectory: unreadable"),
    "trainer state truncated": ("trainer_state.json", _cut, "trainer_state.json is truncated or not JSON"),
}


@pytest.mark.parametrize("damage", DAMAGES)
def test_resume_skips_a_checkpoint_whose_state_is_damaged(damage, saved_run, tmp_path, capsys):
    """A machine lost right after the save of checkpoint-6 can leave its state cut short, empty or without a
    key; auto-resume used to pick that checkpoint and fail the same way on every requeue. Now it names the
    file, resumes from checkpoint-4 and finishes; resuming from it explicitly is one clear line."""
    src, args = saved_run
    out, (name, damaged, said) = tmp_path / "run", DAMAGES[damage]
    shutil.copytree(src, out)
    (out / "alpharl" / "summary.json").unlink()  # as if the run had been killed after saving checkpoint-6
    state = out / "checkpoint-6" / name
    state.write_text(damaged(state.read_text()))
    capsys.readouterr()
    assert cli([*args, "--output_dir", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"skipping {out}/checkpoint-6: an interrupted save ({out}/checkpoint-6/{said}" in printed
    assert f"resuming from {out}/checkpoint-4" in printed
    summary = json.loads((out / "alpharl" / "summary.json").read_text())
    assert summary["steps"] == 6 and summary["swap"]["step"] == 6
    if not name.startswith("alpharl/"):  # transformers reads its own state on an explicit resume
        return
    state.write_text(damaged(state.read_text()))  # the resumed run saved checkpoint-6 again
    (out / "alpharl" / "summary.json").unlink()
    explicit = ["--resume_from_checkpoint", str(out / "checkpoint-6")]
    assert cli([*args, "--output_dir", str(out), *explicit]) == 2
    err = capsys.readouterr().err
    last = err.splitlines()[-1]
    assert last.startswith("alpharl train: error: ") and f"{out}/checkpoint-6/{said}" in last
    assert "Traceback" not in err


def test_a_second_train_on_the_same_output_dir_is_refused(tmp_path, capsys):
    """A requeue that starts while the job it replaces still runs, or a double submit: the second `alpharl
    train` on one output_dir used to train into it too, interleaving checkpoints and AlphaRL state. It is
    refused with the running one's host and pid; once that one is gone (killed outright, its lock file left
    behind), a new one runs."""
    out = tmp_path / "run"
    args = ["train", str(REPO / "recipes" / "tiny" / "grpo.yaml"), *SHORT, "--report_test_size", "0"]
    args += ["--model_name_or_path", str(test_model_dir()), "--output_dir", str(out)]
    long = ["--max_steps", "100000", "--alpharl_window_end", "50000", "--alpharl_interval", "10000"]
    first = subprocess.Popen([sys.executable, "-m", "alpharl_trainer.cli", *args, *long], cwd=REPO)
    try:
        deadline = time.monotonic() + 300
        while not (out / "alpharl" / "base").is_dir():  # the first run is training
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.5)
        assert cli(args) == 2
        err = capsys.readouterr().err
        holder = f"(host {socket.gethostname()}, pid {first.pid})"
        assert f"{out} is in use by another `alpharl train` {holder}" in err
        assert first.poll() is None  # the running one goes on
    finally:
        first.kill()
        first.wait()
    assert cli(args) == 0
    assert json.loads((out / "alpharl" / "summary.json").read_text())["steps"] == 6


LATE_FAILURES = {
    "eval_size 0": (["--eval_size", "0"], "eval_size 0 holds out no prompt for the acceptance gate"),
    "benchmark too small": (
        ["--task", "{bench}", "--rewards", "math_accuracy"],
        "bench.jsonl: 4 problems hold out 0 prompts (a fifth) for the acceptance gate",
    ),
    "negative torch_threads": (["--torch_threads", "-2"], "torch_threads must be >= 0 (0: torch's default)"),
    "missing resume": (["--resume_from_checkpoint", "{tmp}/gone/checkpoint-4"], "gone/checkpoint-4 does not"),
    "output_dir a file": (["--output_dir", "{tmp}/a-file"], "a-file is a file: output_dir must be a folder"),
}


@pytest.mark.parametrize("dry_run", [False, True], ids=["run", "dry-run"])
@pytest.mark.parametrize("case", list(LATE_FAILURES))
def test_settings_that_failed_late_are_one_line_at_the_start(case, dry_run, tmp_path, monkeypatch, capsys):
    """Each used to pass the checks and fail later with a traceback (set_num_threads, FileExistsError,
    transformers' "Can't find a valid checkpoint") or, worse, after the window was trained (the gate with no
    held-out prompt). A dry run on another machine only notes a resume checkpoint it cannot see."""

    def never(*_args, **_kwargs):
        raise AssertionError("weights were loaded")

    monkeypatch.setattr("alpharl_trainer.recipe.load_policy", never)
    bench = tmp_path / "bench.jsonl"
    bench.write_text("".join(f'{{"problem": "{i}+1?", "answer": "{i + 1}"}}\n' for i in range(4)))
    (tmp_path / "a-file").write_text("not a folder")
    extra, expected = LATE_FAILURES[case]
    extra = [arg.format(bench=bench, tmp=tmp_path) for arg in extra]
    args = ["train", *(["--dry-run"] if dry_run else []), str(RECIPES[0]), *SHORT]
    args += ["--model_name_or_path", str(test_model_dir()), "--output_dir", str(tmp_path / "out"), *extra]
    code = cli(args)
    captured = capsys.readouterr()
    if dry_run and case == "missing resume":
        assert code == 0 and expected in captured.out, captured
        return
    assert code == 2 and expected in captured.err and captured.err.count("\n") == 1, captured.err
    assert not (tmp_path / "out").exists()


def test_a_lora_recipe_trains_its_adapters_and_swaps_their_merged_update(tmp_path, capsys):
    """TRL's PEFT keys in a recipe (`use_peft`, `lora_r`, ...): the trainer wraps the policy, AlphaRL
    forecasts the adapted matrices (rank-1 only: the other families need full weights) and the run saves
    the adapter, as TRL does; ppo refuses it before any weight is loaded."""
    out = tmp_path / "run"
    lora = ["--use_peft", "true", "--lora_r", "4", "--lora_alpha", "8", "--lora_dropout", "0"]
    lora += ["--lora_target_modules", "q_proj", "v_proj", "--learning_rate", "1e-3"]
    args = ["train", "recipes/tiny/grpo.yaml", "--model_name_or_path", str(test_model_dir())]
    assert cli([*args, "--output_dir", str(out), *SHORT, "--report_test_size", "0", *lora]) == 0
    summary = json.loads((out / "alpharl" / "summary.json").read_text())
    assert summary["swap"]["step"] == 6 and summary["swap"]["candidates"] == ["8", "9", "12", "15"]
    assert (out / "adapter_model.safetensors").is_file() and (out / "adapter_config.json").is_file()
    ppo = ["train", "recipes/tiny/ppo.yaml", "--model_name_or_path", str(test_model_dir())]
    assert cli([*ppo, "--output_dir", str(tmp_path / "ppo"), *SHORT, *lora]) == 2
    assert "use_peft: LoRA trains with the grpo and rloo trainers" in capsys.readouterr().err
