"""Every live path of AlphaRLCallback in a real tiny run, checked against what the callback saved.

Each swap is compared with the forecast recomputed here from the trajectory and base weights the callback
wrote to disk (reloaded with the extrapolation API, with the run's settings spelled out literally, not read
back from the callback): the reward covariate (against TRL's logged rewards), `rank1_only`, the optimizer
reset, stopping or continuing after the swap, resume (at the swap, without the AlphaRL state, without the
base weights, auto-resume) and RLOO. Runs are shared per module: about 5 s of training in all.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.extrapolation import Trajectory, forecast, predict_weight
from alpharl_trainer.recipe import ScriptArguments
from alpharl_trainer.resume import last_complete_checkpoint, resume_point
from alpharl_trainer.trainer import AlphaRLCallback, AlphaRLConfig, AlphaRLGRPOTrainer
from tests.trainer.harness import (
    TINY_RUN,
    Recorder,
    datasets,
    grpo_args,
    load,
    sevens_reward,
    snapshot,
    test_model_dir,
    tiny_trainer,
)

END = 6
"""The window end of the harness's ALPHARL_RUN (interval 2: snapshots at 2, 4, 6)."""
BASE_FILE = "alpharl/base/rank00000-of-00001.safetensors"

pytestmark = pytest.mark.usefixtures("single_thread")
SAVE_AT_SWAP = dict(save_strategy="steps", save_steps=100)
"""Saving on, but no periodic checkpoint in a tiny run: only the ones the callback asks for (swap, stop)."""
REWARD_RUN = dict(
    alpharl_covariate="reward",
    alpharl_fit="pls",  # the paper's variant
    alpharl_target_rewards=[0.5],
    save_strategy="steps",
    save_steps=3,  # checkpoint-3 sits mid-interval; 6 is the swap, 8 the stop (2 fine-tune steps)
)
RANK1_ONLY_RUN = dict(alpharl_mode="rank1_only", alpharl_finetune_steps=0, **SAVE_AT_SWAP)
RESET_RUN = dict(alpharl_optimizer_state="reset", alpharl_continue_after_swap=True, **SAVE_AT_SWAP)


def adam_state(trainer) -> dict[str, dict[str, torch.Tensor]]:
    """Copies of the optimizer's per-parameter state (exp_avg, exp_avg_sq, step), by parameter name."""
    opt = getattr(trainer.optimizer, "optimizer", trainer.optimizer)  # accelerate wraps the torch one
    out = {}
    for name, p in trainer.model.named_parameters():
        state = opt.state.get(p)
        if state:
            out[name] = {k: v.detach().clone() for k, v in state.items() if torch.is_tensor(v)}
    return out


class Probe(Recorder):
    """The harness's Recorder plus W_0, the final weights, the Adam state just before and just after the
    swap, and every window-end event the callback announces (one 'window' event per forecast made)."""

    def __init__(self, trainer, callback: AlphaRLCallback):
        super().__init__(trainer, callback.window_end)
        self.w0 = self.final = self.adam_before = self.adam_after = None
        self.events: list[tuple[str, float | None]] = []
        callback.listeners.append(lambda event, target: self.events.append((event, target)))

    def on_train_begin(self, args, state, control, **kwargs):
        self.w0 = snapshot(self.trainer.model)

    def on_optimizer_step(self, args, state, control, **kwargs):
        super().on_optimizer_step(args, state, control, **kwargs)
        if state.global_step + 1 == self.window_end:
            self.adam_before = adam_state(self.trainer)

    def on_step_end(self, args, state, control, **kwargs):
        super().on_step_end(args, state, control, **kwargs)
        if state.global_step == self.window_end:
            self.adam_after = adam_state(self.trainer)

    def on_train_end(self, args, state, control, **kwargs):
        self.final = snapshot(self.trainer.model)


def grpo_run(out: Path, resume: str | None = None, **overrides):
    """A tiny seeded GRPO run with AlphaRL (the harness's settings plus `overrides`); (trainer, probe)."""
    trainer = tiny_trainer(AlphaRLGRPOTrainer, grpo_args(out, **overrides))
    probe = Probe(trainer, trainer.alpharl)
    trainer.add_callback(probe)
    trainer.train(resume_from_checkpoint=resume)
    return trainer, probe


def forecast_from_disk(
    out: Path, w_k: dict[str, torch.Tensor], target: float, *, fit="linear", covariate="step", mode, scale=1.0
) -> dict[str, torch.Tensor]:
    """The swap recomputed from what the run saved: the trajectory of checkpoint-END and the base weights."""
    traj = Trajectory.load(out / f"checkpoint-{END}" / "alpharl" / "trajectory")
    assert traj.steps == [2, 4, END] and sorted(traj.names) == sorted(w_k)
    base = load_file(out / BASE_FILE)
    fcs = forecast(traj, target, fit=fit, covariate=covariate)
    return {n: predict_weight(w, base[n].float(), fcs[n], mode, scale) for n, w in w_k.items()}


def assert_swapped_to(probe: Probe, expected: dict[str, torch.Tensor]) -> None:
    assert probe.after_swap.keys() == expected.keys()
    jump = max(float((expected[n] - w).abs().max()) for n, w in probe.w_k.items())
    assert jump > 1e-3  # the forecast really moves the weights: the comparison below means something
    for name, w in probe.after_swap.items():
        torch.testing.assert_close(w, expected[name], rtol=1e-6, atol=1e-6, msg=lambda m, n=name: f"{n}: {m}")


def copy_run(src: Path, dst: Path, drop: tuple[str, ...] = ()) -> Path:
    """A copy of a finished run's folder to resume in (the module's run stays untouched), minus `drop`."""
    shutil.copytree(src, dst, ignore=lambda _dir, names: [n for n in names if n in drop])
    return dst


@pytest.fixture(scope="module")
def reward_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("reward") / "run"
    trainer, probe = grpo_run(out, **REWARD_RUN)
    return trainer, probe, out


@pytest.fixture(scope="module")
def rank1_only_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("rank1_only") / "run"
    trainer, probe = grpo_run(out, **RANK1_ONLY_RUN)
    return trainer, probe, out


@pytest.fixture(scope="module")
def reset_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("reset") / "run"
    trainer, probe = grpo_run(out, **RESET_RUN)
    return trainer, probe, out


# ---- 1. reward covariate ------------------------------------------------------------------------------
def test_reward_covariate_is_the_mean_logged_reward_since_the_previous_snapshot(reward_run):
    trainer, _, out = reward_run
    logged = {e["step"]: e["reward"] for e in trainer.state.log_history if "reward" in e}
    assert sorted(logged) == list(range(1, 9))  # TRL logged one mean reward per step (logging_steps 1)
    expected = [
        sum(logged[t] for t in range(prev + 1, step + 1)) / (step - prev)
        for prev, step in [(0, 2), (2, 4), (4, 6)]
    ]
    for traj in (trainer.alpharl.trajectory, Trajectory.load(out / f"checkpoint-{END}/alpharl/trajectory")):
        assert traj.covariates.keys() == {"reward"}
        assert traj.covariates["reward"] == pytest.approx(expected, rel=1e-6, abs=0)


def test_reward_covariate_swap_is_the_forecast_from_the_saved_trajectory(reward_run):
    trainer, probe, out = reward_run
    swap = trainer.alpharl.swap
    assert swap.step == END and swap.targets == [0.5] and swap.chosen == "0.5"
    expected = forecast_from_disk(out, probe.w_k, 0.5, fit="pls", covariate="reward", mode="rank1_replace")
    assert_swapped_to(probe, expected)
    assert probe.events == [("window", None), ("decided", "0.5")]  # one forecast, applied unscored


# ---- 2. rank1_only -------------------------------------------------------------------------------------
def test_rank1_only_swap_rebuilds_the_forecast_on_the_saved_base(rank1_only_run):
    trainer, probe, out = rank1_only_run
    base = load_file(out / BASE_FILE)
    assert base.keys() == probe.w0.keys()  # W_0 of exactly the tracked matrices, as they were at step 0
    for name, w in probe.w0.items():
        torch.testing.assert_close(base[name].float(), w, rtol=0, atol=0)
    assert trainer.alpharl.swap.chosen == "9"  # 1.5 x 6
    assert_swapped_to(probe, forecast_from_disk(out, probe.w_k, 9, mode="rank1_only"))


# ---- 3. optimizer state ----------------------------------------------------------------------------------
def test_optimizer_reset_zeroes_the_moments_of_the_swapped_matrices_only(reset_run):
    trainer, probe, out = reset_run
    assert_swapped_to(probe, forecast_from_disk(out, probe.w_k, 9, mode="rank1_replace"))
    swapped = set(trainer.alpharl.names)
    before, after = probe.adam_before, probe.adam_after
    assert after.keys() == before.keys() and swapped < before.keys()  # untracked matrices are trained too
    for name, state in after.items():
        if name in swapped:
            assert before[name]["exp_avg"].abs().max() > 0 and before[name]["exp_avg_sq"].abs().max() > 0
            assert not state["exp_avg"].any() and not state["exp_avg_sq"].any(), name
            assert torch.equal(state["step"], before[name]["step"])  # the step counter is kept
        else:
            for key, value in state.items():
                assert torch.equal(value, before[name][key]), (name, key)


def test_optimizer_moments_are_kept_by_default(reward_run):
    trainer, probe, _ = reward_run
    before, after = probe.adam_before, probe.adam_after
    assert after.keys() == before.keys() and set(trainer.alpharl.names) < before.keys()
    for name in trainer.alpharl.names:
        assert before[name]["exp_avg_sq"].abs().max() > 0
        for key, value in after[name].items():
            assert torch.equal(value, before[name][key]), (name, key)


# ---- 4. stop or continue after the swap ------------------------------------------------------------
def test_without_continue_the_run_stops_at_the_swap(rank1_only_run):
    trainer, probe, out = rank1_only_run  # alpharl_finetune_steps 0
    assert trainer.state.global_step == END and max(e["step"] for e in trainer.state.log_history) == END
    for name, w in probe.final.items():  # not one optimizer step after the swap
        torch.testing.assert_close(w, probe.after_swap[name], rtol=0, atol=0)
    assert sorted(p.name for p in out.glob("checkpoint-*")) == [f"checkpoint-{END}"]  # the stop saved it


def test_with_continue_the_run_trains_on_to_max_steps(reset_run):
    trainer, probe, _ = reset_run  # alpharl_finetune_steps 2 would stop at 8 without continuing
    assert trainer.state.global_step == TINY_RUN["max_steps"] == 10
    moved = sum(float((probe.final[n] - w).norm()) for n, w in probe.after_swap.items())
    assert moved > 1e-2


# ---- 5. resume -----------------------------------------------------------------------------------------
def test_resume_from_the_swap_checkpoint_does_not_swap_again(reward_run, tmp_path):
    first, first_probe, src = reward_run
    out = copy_run(src, tmp_path / "run", drop=("checkpoint-8",))
    saved = json.loads((out / f"checkpoint-{END}/alpharl/state.json").read_text())
    assert saved["swap"] == json.loads(json.dumps(first.alpharl.swap.to_dict()))
    weights = load_file(out / f"checkpoint-{END}/model.safetensors")  # saved after the swap, not before
    for name, w in first_probe.after_swap.items():
        torch.testing.assert_close(weights[name].float(), w, rtol=0, atol=0)

    trainer, probe = grpo_run(out, resume=str(out / f"checkpoint-{END}"), **REWARD_RUN)
    assert probe.events == []  # no forecast, no swap: the decision came from the checkpoint
    assert trainer.alpharl.swap.to_dict() == saved["swap"] and trainer.alpharl.trajectory.steps == [2, 4, END]
    assert trainer.state.global_step == END + 2  # the fine-tune steps, then the stop
    for name, w in first_probe.final.items():
        torch.testing.assert_close(probe.final[name], w, rtol=1e-5, atol=1e-6)


def test_resume_reads_the_checkpoint_it_was_given_not_output_dir(reward_run, tmp_path):
    """Resuming run A's checkpoint into a new output_dir B: AlphaRL's state and W_0 come from A (they used to
    be looked up in B, where they are missing, or, worse, belong to another run), and B gets W_0 for later."""
    first, first_probe, src = reward_run
    elsewhere = tmp_path / "B"
    (elsewhere / "checkpoint-3" / "alpharl").mkdir(parents=True)  # a stale folder of some other run in B
    (elsewhere / "checkpoint-3" / "alpharl" / "state.json").write_text('{"step_rewards": [], "swap": null}')
    trainer, probe = grpo_run(elsewhere, resume=str(src / "checkpoint-3"), **REWARD_RUN)
    assert trainer.alpharl.trajectory.steps == [2, 4, END]
    assert trainer.alpharl.trajectory.covariates == first.alpharl.trajectory.covariates
    assert trainer.alpharl.swap.chosen == first.alpharl.swap.chosen
    for name, w in first_probe.final.items():  # the same run as if it had never stopped
        torch.testing.assert_close(probe.final[name], w, rtol=1e-5, atol=1e-6)
    assert (elsewhere / BASE_FILE).is_file()  # B can be resumed from its own checkpoints later


def test_resume_without_the_alpharl_state_is_refused(reward_run, tmp_path):
    out = copy_run(reward_run[2], tmp_path / "run")
    (out / "checkpoint-3/alpharl/state.json").unlink()
    with pytest.raises(
        AlphaRLError, match=r"resuming at step 3, but .*checkpoint-3/alpharl/state\.json is missing"
    ):
        grpo_run(out, resume=str(out / "checkpoint-3"), **REWARD_RUN)


def test_resume_without_the_saved_trajectory_is_refused(reward_run, tmp_path):
    """It used to start the trajectory over and forecast from the later snapshots alone, silently."""
    out = copy_run(reward_run[2], tmp_path / "run")
    shutil.rmtree(out / "checkpoint-3/alpharl/trajectory")
    with pytest.raises(
        AlphaRLError, match=r"checkpoint-3/alpharl/trajectory is missing \(snapshots at \[2\]\)"
    ):
        grpo_run(out, resume=str(out / "checkpoint-3"), **REWARD_RUN)


@pytest.mark.parametrize("damage", ["deleted", "lacks a matrix"])
def test_resume_without_the_base_weights_is_refused(reward_run, tmp_path, damage):
    trainer, _, src = reward_run
    out = copy_run(src, tmp_path / "run")
    if damage == "deleted":
        (out / BASE_FILE).unlink()
        message = r"resuming at step 3, but the AlphaRL base weights are missing in .*alpharl/base"
    else:
        base = load_file(out / BASE_FILE)
        dropped = trainer.alpharl.names[0]
        save_file({k: v for k, v in base.items() if k != dropped}, str(out / BASE_FILE))
        message = rf"AlphaRL base weights in .*alpharl/base lack \['{dropped}'\]"
    with pytest.raises(AlphaRLError, match=message):
        grpo_run(out, resume=str(out / "checkpoint-3"), **REWARD_RUN)


def test_auto_resume_skips_checkpoints_without_alpharl_state_and_resumes_mid_interval(
    reward_run, tmp_path, capsys
):
    """Killed while saving checkpoints 6 and 8 (no alpharl/state.json): auto-resume picks checkpoint-3, which
    sits mid-interval, so the reward covariate at step 4 needs step 3's reward from the saved state."""
    first, first_probe, src = reward_run
    out = copy_run(src, tmp_path / "run")
    for step in (END, 8):
        (out / f"checkpoint-{step}/alpharl/state.json").unlink()
    config = grpo_args(out, **REWARD_RUN)
    script = ScriptArguments()
    assert script.auto_resume and config.resume_from_checkpoint is None
    capsys.readouterr()
    assert resume_point(script, config) == str(out / "checkpoint-3")
    printed = capsys.readouterr().out
    for step in (8, END):
        assert f"skipping {out}/checkpoint-{step}: an interrupted save (no alpharl/state.json)" in printed
    assert f"resuming from {out}/checkpoint-3" in printed
    assert last_complete_checkpoint(str(out), alpharl=False) == str(out / "checkpoint-8")  # AlphaRL off
    assert resume_point(dataclasses.replace(script, auto_resume=False), config) is None
    explicit = grpo_args(out, resume_from_checkpoint=str(out / "checkpoint-6"), **REWARD_RUN)
    assert resume_point(script, explicit) == str(out / "checkpoint-6")  # an explicit choice wins

    trainer, probe = grpo_run(out, resume=resume_point(script, config), **REWARD_RUN)
    assert probe.events == [("window", None), ("decided", "0.5")]
    traj = trainer.alpharl.trajectory
    assert traj.steps == [2, 4, END]
    assert traj.covariates["reward"] == pytest.approx(first.alpharl.trajectory.covariates["reward"], rel=1e-5)
    for name, w in first_probe.after_swap.items():
        torch.testing.assert_close(probe.after_swap[name], w, rtol=1e-5, atol=1e-6)


# ---- 6. RLOO ---------------------------------------------------------------------------------------------
def test_rloo_swap_is_the_forecast_from_the_saved_trajectory(tmp_path):
    """RLOO through the callback alone (no AlphaRL subclass), with a shrunk jump."""
    from trl import RLOOConfig, RLOOTrainer

    model, tok = load(test_model_dir())
    train, _ = datasets()
    out = tmp_path / "rloo"
    args = RLOOConfig(output_dir=str(out), **{**TINY_RUN, "max_steps": 8, **SAVE_AT_SWAP})
    trainer = RLOOTrainer(
        model=model, reward_funcs=[sevens_reward], args=args, train_dataset=train, processing_class=tok
    )
    config = AlphaRLConfig(
        alpharl_interval=2, alpharl_window_end=END, alpharl_acceptance_prompts=0, alpharl_scale=0.5
    )
    callback = AlphaRLCallback(config).attach(trainer)
    probe = Probe(trainer, callback)
    trainer.add_callback(probe)
    trainer.train()
    assert callback.swap.chosen == "8"  # 1.25 x 6 = 7.5: whole steps, half up
    assert_swapped_to(probe, forecast_from_disk(out, probe.w_k, 8, mode="rank1_replace", scale=0.5))
    assert trainer.state.global_step == END


def test_reward_covariate_when_rollouts_span_two_steps(tmp_path):
    """With steps_per_generation 2 a rollout (and its reward) comes every other step: each snapshot's
    covariate is the reward of the rollouts since the previous snapshot, not a repeat of an older one."""
    trainer, _ = grpo_run(
        tmp_path / "run",
        alpharl_covariate="reward",
        alpharl_target_rewards=[0.5],
        alpharl_finetune_steps=0,
        steps_per_generation=2,
    )
    logged = {e["step"]: e["reward"] for e in trainer.state.log_history if "reward" in e}
    assert sorted(logged) == [1, 3, 5]  # TRL generates (and logs a reward) every other step
    assert trainer.alpharl.trajectory.covariates["reward"] == pytest.approx([logged[1], logged[3], logged[5]])


# ---- saturation horizon -------------------------------------------------------------------------------
def test_saturation_horizon_is_scored_as_one_more_candidate(tmp_path):
    """With alpharl_saturation_threshold the gate also scores the step where a saturating fit of the window's
    reward per snapshot stops predicting gain: the swap records the fit, the candidate is among the scored
    targets, and both follow from the saved trajectory alone."""
    from alpharl_trainer.extrapolation.saturation import fit_saturation, horizon

    out = tmp_path / "run"
    trainer, _ = grpo_run(
        out,
        alpharl_interval=1,
        alpharl_saturation_threshold=0.5,
        alpharl_horizons=[1.5, 3.0],
        alpharl_acceptance_prompts=8,
        alpharl_acceptance_scoring="greedy",
        alpharl_finetune_steps=0,
        **SAVE_AT_SWAP,
    )
    swap = trainer.alpharl.swap
    traj = Trajectory.load(out / f"checkpoint-{END}" / "alpharl" / "trajectory")
    rewards = traj.covariates["reward"]
    assert traj.steps == [1, 2, 3, 4, 5, 6] and len(rewards) == 6
    fit = fit_saturation([float(s) for s in traj.steps], rewards)
    end = horizon(fit, END, 0.5, 3.0)
    saturation = swap.saturation
    assert saturation["form"] == fit.form and saturation["r2"] == pytest.approx(fit.r2)
    if end >= END + 1:
        assert saturation["target"] == float(round(end)) and saturation["why"] is None
        assert f"{saturation['target']:g}" in swap.scores and swap.targets[:2] == [9.0, 18.0]
    else:
        assert saturation["target"] is None and "does not rise" in saturation["why"]
        assert swap.targets == [9.0, 18.0]


def test_saturation_needs_four_rewarded_snapshots(tmp_path):
    trainer, _ = grpo_run(tmp_path / "run", alpharl_saturation_threshold=0.5, alpharl_finetune_steps=0)
    assert trainer.alpharl.swap.saturation == {"target": None, "why": "needs the reward at >= 4 snapshots"}


def test_with_the_reward_covariate_the_fit_gives_the_papers_target(tmp_path):
    """With the reward covariate the saturating fit of the window's reward gives y* = r_hat(max_steps), the
    paper's target read off the run's own curve: scored as one more reward level, when it rises."""
    from alpharl_trainer.extrapolation.saturation import fit_saturation

    out = tmp_path / "run"
    settings = {**REWARD_RUN, "alpharl_interval": 1, "alpharl_saturation_threshold": 0.5}
    trainer, _ = grpo_run(out, **settings, alpharl_acceptance_prompts=8, alpharl_acceptance_scoring="greedy")
    swap, traj = trainer.alpharl.swap, trainer.alpharl.trajectory
    rewards = traj.covariates["reward"]
    y_star = float(fit_saturation([float(s) for s in traj.steps], rewards).predict(10))  # max_steps 10
    saturation = swap.saturation
    if y_star > max(rewards):
        assert saturation["target"] == pytest.approx(y_star, abs=1e-4) and saturation["why"] is None
        assert swap.targets == [0.5, saturation["target"]]
        assert f"{saturation['target']:g}" in swap.scores
    else:
        assert saturation["target"] is None and swap.targets == [0.5]


def test_a_full_disk_at_a_snapshot_is_one_error_and_the_run_resumes(tmp_path, monkeypatch):
    """The snapshot of step 4 (the window's weights, for the average candidate) hits a full disk: the run
    used to die on a SafetensorError traceback. Now it stops with one AlphaRLError, leaves no partial
    snapshot, and resumed from checkpoint-2 it ends where an uninterrupted run ends."""
    from tests.commands.test_predict import disk_full_at

    out, settings = (
        tmp_path / "run",
        dict(alpharl_candidates=["average"], save_strategy="steps", save_steps=2),
    )
    monkeypatch.setattr("alpharl_trainer.checkpoints.save_file", disk_full_at("step-000004"))
    with pytest.raises(
        AlphaRLError, match="cannot write the output .*step-000004.*: No space left on device"
    ):
        grpo_run(out, **settings)
    window = out / "alpharl" / "window"
    assert [p.name for p in (window / "step-000002").iterdir()] == ["rank00000-of-00001.safetensors"]
    assert list((window / "step-000004").iterdir()) == []  # no partial (or temporary) snapshot file
    monkeypatch.undo()
    resumed, _ = grpo_run(out, resume=str(out / "checkpoint-2"), **settings)
    full, _ = grpo_run(tmp_path / "full", **settings)
    assert resumed.alpharl.swap.chosen == full.alpharl.swap.chosen == "average of 3"
    final = dict(full.model.named_parameters())
    for name, p in resumed.model.named_parameters():
        torch.testing.assert_close(p.detach(), final[name].detach(), rtol=1e-5, atol=1e-6)
