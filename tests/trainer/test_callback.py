"""Real tiny GRPO/RLOO runs on CPU: the swap, acceptance and rollback, rollout invalidation, resume."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.extrapolation import forecast, predict_weight
from alpharl_trainer.reproduce.methods import relex
from alpharl_trainer.trainer import AlphaRLGRPOTrainer
from alpharl_trainer.trainer.candidates import Candidate
from alpharl_trainer.trainer.decision import describe_decision
from tests.trainer.harness import (
    Recorder,
    WeightsAtReward,
    checksum,
    crash_after_save,
    datasets,
    grpo_args,
    load,
    sevens_reward,
    test_model_dir,
    tiny_trainer,
)


@pytest.fixture(scope="module")
def model_dir():
    return test_model_dir()


def run_grpo(tmp_path, model_dir, reward=sevens_reward, resume=None, extra_callbacks=(), **overrides):
    watched = WeightsAtReward(reward, lambda: trainer.model)
    args = grpo_args(tmp_path / "run", **overrides)
    trainer = tiny_trainer(AlphaRLGRPOTrainer, args, [watched], model_dir=model_dir)
    recorder = Recorder(trainer, trainer.alpharl.window_end)
    trainer.add_callback(recorder)
    for cb in extra_callbacks:
        trainer.add_callback(cb(trainer))
    trainer.train(resume_from_checkpoint=resume)
    return trainer, recorder, watched


def expected_weights(trainer, w_k: dict[str, torch.Tensor], target: float) -> dict[str, torch.Tensor]:
    """The forecast recomputed from the callback's trajectory through the public engine API."""
    cfg = trainer.alpharl.config
    fcs = forecast(trainer.alpharl.trajectory, target, fit=cfg.alpharl_fit, covariate=cfg.alpharl_covariate)
    return {n: predict_weight(w, w, fcs[n], cfg.alpharl_mode, cfg.alpharl_scale) for n, w in w_k.items()}


def test_swap_writes_the_forecast_and_next_rollouts_use_it(tmp_path, model_dir):
    trainer, rec, watched = run_grpo(tmp_path, model_dir)
    swap = trainer.alpharl.swap
    assert swap.step == 6 and swap.chosen == "9"  # first horizon, applied unscored
    assert trainer.alpharl.trajectory.steps == [2, 4, 6]
    expected = expected_weights(trainer, rec.w_k, float(swap.chosen))
    moved = 0.0
    for name, w in rec.after_swap.items():
        torch.testing.assert_close(w, expected[name].float(), rtol=0, atol=0)
        moved += float((w - rec.w_k[name]).norm())
    assert moved > 0  # the swap changed the weights
    # the first training generation after the swap (global_step == 6) saw the swapped weights
    step6 = [c for step, c in watched.calls if step == 6]
    assert step6 and step6[-1] == checksum(rec.after_swap)
    assert rec.buffered_after_swap is None  # rollouts of the old weights dropped
    # training went on: the fine-tune step moved the weights again, then the run stopped
    assert checksum(rec.next_step) != checksum(rec.after_swap)
    assert trainer.state.global_step == 6 + 2
    logged = {k for entry in trainer.state.log_history for k in entry}
    assert {
        "alpharl/snapshot_time",
        "alpharl/swap_time",
        "alpharl/mean_fit_r2",
        "alpharl/rank1_share",
        "alpharl/forecast_time",
        "alpharl/candidates",
    } <= logged
    assert (
        0
        < swap.forecast_time
        <= max(float(e["alpharl/swap_time"]) for e in trainer.state.log_history if "alpharl/swap_time" in e)
    )


def test_swap_forces_a_vllm_weight_resync(tmp_path, model_dir):
    from transformers import TrainerCallback

    class MarkSynced(TrainerCallback):
        def __init__(self, trainer):
            self.trainer = trainer

        def on_step_begin(self, args, state, control, **kwargs):
            self.trainer._last_loaded_step = state.global_step  # what TRL's vLLM path records

    _, rec, _ = run_grpo(tmp_path, model_dir, extra_callbacks=[MarkSynced], alpharl_finetune_steps=0)
    assert rec.vllm_step_after_swap == -1  # the next generation re-pushes weights to vLLM


def distance_from_wk_reward(sign: float):
    """A reward that, at the window end (acceptance), is `sign` x the live weights' distance from W_K.

    Returns (reward function, callback class capturing W_K). Elsewhere it is the shaped training reward.
    """
    from transformers import TrainerCallback

    from tests.trainer.harness import snapshot

    state = {}

    def reward(completions, trainer_state=None, **kwargs):
        if "w_k" not in state or trainer_state.global_step != 6:
            return sevens_reward(completions)
        dist = sum(float((w - state["w_k"][n]).norm()) for n, w in snapshot(state["trainer"].model).items())
        return [sign * dist] * len(completions)

    class CaptureWK(TrainerCallback):  # on_optimizer_step runs before AlphaRL's on_step_end
        def __init__(self, trainer):
            state["trainer"] = trainer

        def on_optimizer_step(self, args, st, control, **kwargs):
            if st.global_step + 1 == 6:
                state["w_k"] = snapshot(state["trainer"].model)

    return reward, CaptureWK


def test_the_race_makes_the_full_gates_choice_on_fewer_prompts(tmp_path, model_dir):
    """The same window as above, judged by a race (first look at 2 of 8 prompts): the farthest jump still
    wins, and no model is scored on more prompts than the full gate scores every one on."""
    reward, capture = distance_from_wk_reward(+1.0)
    trainer, _, _ = run_grpo(
        tmp_path,
        model_dir,
        reward=reward,
        extra_callbacks=[capture],
        alpharl_acceptance_prompts=8,
        alpharl_acceptance_samples=1,
        alpharl_acceptance_rule="race",
        alpharl_acceptance_first=2,
        alpharl_horizons=[1.5, 2.0, 3.0],
        alpharl_finetune_steps=1,
    )
    swap = trainer.alpharl.swap
    assert swap.chosen == "18" and swap.scores["current"] == 0.0
    assert swap.cost["prompts"] <= 8 * 4 and swap.cost["completions"] == swap.cost["prompts"]
    assert all(why.startswith(("below the bar", "behind")) for why in swap.eliminated.values())
    assert set(swap.paired_se) == {"9", "12", "18"}


def test_acceptance_picks_the_best_scoring_candidate(tmp_path, model_dir):
    """Reward = distance of the live weights from W_K at acceptance: the farthest jump must win."""
    reward, capture = distance_from_wk_reward(+1.0)
    trainer, rec, _ = run_grpo(
        tmp_path,
        model_dir,
        reward=reward,
        extra_callbacks=[capture],
        alpharl_acceptance_prompts=4,
        alpharl_acceptance_samples=1,
        alpharl_horizons=[1.5, 2.0, 3.0],
        alpharl_finetune_steps=1,
    )
    swap = trainer.alpharl.swap
    assert swap.scores["current"] == 0.0
    assert swap.chosen == "18"  # 3.0 x window end: the largest jump
    assert swap.scores["18"] > swap.scores["12"] > swap.scores["9"] > 0
    cost = swap.cost  # current and 3 candidates, 4 prompts x 1 sample each
    assert cost["prompts"] == 16 and cost["completions"] == 16 and cost["tokens"] > 16
    assert cost["step_tokens"] > 0 and cost["steps_by_tokens"] == cost["tokens"] / cost["step_tokens"]
    assert cost["steps_by_flops"] == pytest.approx(cost["steps_by_tokens"] / 4)
    assert cost["step_seconds"] > 0 and cost["steps_by_seconds"] == pytest.approx(
        swap.seconds / cost["step_seconds"]
    )
    assert "cost: 16 completions on 16 prompts" in describe_decision(swap)


def test_rollback_when_every_candidate_is_worse(tmp_path, model_dir):
    """Adversarial reward: at acceptance time it punishes any distance from W_K, so nothing may be applied."""
    reward, capture = distance_from_wk_reward(-1.0)
    trainer, rec, _ = run_grpo(
        tmp_path,
        model_dir,
        reward=reward,
        extra_callbacks=[capture],
        alpharl_acceptance_prompts=4,
        alpharl_acceptance_samples=1,
    )
    swap = trainer.alpharl.swap
    assert swap.chosen is None
    assert all(score < 0 for key, score in swap.scores.items() if key != "current")
    for name, w in rec.after_swap.items():  # weights restored exactly
        torch.testing.assert_close(w, rec.w_k[name], rtol=0, atol=0)
    assert trainer.state.global_step == 8  # and training went on


def test_resume_mid_window_gives_the_same_forecast(tmp_path, model_dir):
    full, full_rec, _ = run_grpo(tmp_path / "a", model_dir, save_strategy="steps", save_steps=2)
    with pytest.raises(KeyboardInterrupt):
        run_grpo(
            tmp_path / "b",
            model_dir,
            extra_callbacks=[crash_after_save(4)],
            save_strategy="steps",
            save_steps=2,
        )
    saved = json.loads((tmp_path / "b/run/checkpoint-4/alpharl/state.json").read_text())
    assert saved["swap"] is None
    resumed, res_rec, _ = run_grpo(
        tmp_path / "b", model_dir, resume=True, save_strategy="steps", save_steps=2
    )
    assert resumed.alpharl.trajectory.steps == full.alpharl.trajectory.steps == [2, 4, 6]
    for name, w in full_rec.after_swap.items():
        torch.testing.assert_close(res_rec.after_swap[name], w, rtol=1e-5, atol=1e-6)


def window_weights(store: dict):
    """A callback class recording the tracked weights at train begin (W_0) and after every optimizer step."""
    from transformers import TrainerCallback

    from tests.trainer.harness import snapshot

    class WindowWeights(TrainerCallback):
        def __init__(self, trainer):
            self.trainer = trainer

        def on_train_begin(self, args, state, control, **kwargs):
            store[state.global_step] = snapshot(self.trainer.model)

        def on_optimizer_step(self, args, state, control, **kwargs):  # before global_step += 1
            store[state.global_step + 1] = snapshot(self.trainer.model)

    return WindowWeights


@pytest.mark.parametrize(
    ("family", "label"),
    [
        ("expo", "expo a=0.1"),
        ("average", "average of 4"),
        ("fixed_basis", "fixed-basis k=2 step 9"),
        ("relex", "relex step 9"),
    ],
)
def test_each_portfolio_family_writes_what_its_math_says(tmp_path, model_dir, family, label):
    """Unscored, the first candidate of the family is applied: W_K + 0.1 (W_K - W_0), the mean of the last
    four snapshots, the rank-2 saturating fixed-basis forecast to step 9, or RELEX to step 9 (the whole
    tracked model's deltas, as the suite computes it), from the snapshots on disk."""
    seen: dict[int, dict[str, torch.Tensor]] = {}
    trainer, rec, _ = run_grpo(
        tmp_path,
        model_dir,
        extra_callbacks=[window_weights(seen)],
        alpharl_candidates=[family],
        alpharl_interval=1,
        alpharl_basis_ranks=[2],
    )
    swap = trainer.alpharl.swap
    assert swap.chosen == label == swap.candidates[0]
    steps = [1, 2, 3, 4, 5, 6]
    window = tmp_path / "run/alpharl/window"  # only the families that read past snapshots keep them
    stored = sorted(p.name for p in window.iterdir()) if window.exists() else []
    assert stored == ([f"step-{s:06d}" for s in steps] if family != "expo" else [])
    if family == "relex":  # the suite's whole-model RELEX on the tracked matrices
        expected = relex(seen[0], [(s, seen[s]) for s in steps], 9.0)
    else:
        candidate = Candidate(family, {"expo": 0.1, "average": 4.0, "fixed_basis": 9.0}[family], rank=2)
        expected = {
            n: candidate.weight(seen[6][n], seen[0][n], steps, lambda s, n=n: seen[s][n])
            for n in rec.after_swap
        }
    for name, w in rec.after_swap.items():
        torch.testing.assert_close(w, expected[name].float(), rtol=1e-6, atol=1e-7)
    assert sum(float((w - rec.w_k[n]).norm()) for n, w in rec.after_swap.items()) > 0


def test_the_gate_scores_every_family_and_applies_the_best(tmp_path, model_dir):
    reward, capture = distance_from_wk_reward(+1.0)
    trainer, rec, _ = run_grpo(
        tmp_path,
        model_dir,
        reward=reward,
        extra_callbacks=[capture],
        alpharl_candidates=["rank1", "fixed_basis", "expo", "average"],
        alpharl_interval=1,
        alpharl_acceptance_prompts=4,
        alpharl_acceptance_samples=1,
    )
    swap = trainer.alpharl.swap
    families = {label.split(" ")[0] for label in swap.candidates}
    assert families == {"9", "12", "fixed-basis", "expo", "average"}
    assert set(swap.scores) == {"current", *swap.candidates}
    best = max(swap.candidates, key=swap.scores.get)
    assert swap.chosen == best and swap.scores[best] > 0
    moved = sum(float((w - rec.w_k[n]).norm()) for n, w in rec.after_swap.items())
    assert moved == pytest.approx(swap.scores[best], rel=1e-4)  # the reward was the distance from W_K


PORTFOLIO_RESUME = dict(
    alpharl_candidates=["fixed_basis"], alpharl_interval=1, save_strategy="steps", save_steps=2
)
"""The fixed-basis family (it reads every snapshot's weights back from disk), a checkpoint every 2 steps."""


@pytest.mark.parametrize("elsewhere", [False, True])
def test_resume_keeps_the_window_weights_for_the_portfolio(tmp_path, model_dir, elsewhere):
    """Killed after checkpoint-4 and resumed (in place, or into another output_dir): the snapshots taken
    before the kill are read back from disk and the fixed-basis forecast is the uninterrupted run's."""
    settings = PORTFOLIO_RESUME
    _, full_rec, _ = run_grpo(tmp_path / "a", model_dir, **settings)
    with pytest.raises(KeyboardInterrupt):
        run_grpo(tmp_path / "b", model_dir, extra_callbacks=[crash_after_save(4)], **settings)
    into, resume = (
        (tmp_path / "c", str(tmp_path / "b/run/checkpoint-4")) if elsewhere else (tmp_path / "b", True)
    )
    resumed, res_rec, _ = run_grpo(into, model_dir, resume=resume, **settings)
    assert resumed.alpharl.swap.chosen == "fixed-basis k=1 step 9"
    assert len(list((into / "run/alpharl/window").iterdir())) == 6
    for name, w in full_rec.after_swap.items():
        torch.testing.assert_close(res_rec.after_swap[name], w, rtol=1e-5, atol=1e-6)


def as_two_processes(names: list[str], folders: list[Path]) -> None:
    """Rewrite the single-process shares in `folders` as the two shares of a 2-process run."""
    from safetensors.torch import load_file

    from alpharl_trainer.distributed import assign_owners

    for folder in folders:
        one = folder / "rank00000-of-00001.safetensors"
        tensors = load_file(one)
        owners = assign_owners({n: tensors[n].numel() for n in names}, 2)
        for rank in (0, 1):
            save_file(
                {n: t for n, t in tensors.items() if owners[n] == rank},
                folder / f"rank{rank:05d}-of-00002.safetensors",
            )
        one.unlink()


def leave_another_worlds_files(run, shapes: dict[str, torch.Size], steps: list[int]) -> None:
    """What an earlier attempt with 2 processes leaves in `run/alpharl/`: W_0 and the snapshots' weights in
    two shares per folder (here zeros: any weights but this run's)."""
    from alpharl_trainer.distributed import assign_owners
    from alpharl_trainer.trainer.state import save_base, save_window

    owners = assign_owners({n: shape.numel() for n, shape in shapes.items()}, 2)
    for rank in (0, 1):
        zeros = {n: torch.zeros(shape) for n, shape in shapes.items() if owners[n] == rank}
        save_base(run, rank, 2, zeros)
        for step in steps:
            save_window(run, step, rank, 2, zeros)


@pytest.mark.parametrize("start", ["fresh", "resumed"])
def test_files_of_an_earlier_attempt_with_another_world_size_are_not_read(tmp_path, model_dir, start, caplog):
    """An earlier attempt with 2 processes left its shares of W_0 and of every snapshot in the output_dir:
    a single-process run (from the start, or resumed after checkpoint-4) used to read them as its own and
    forecast from them. It reads only its own world size's files and says it ignores the others: the
    forecast is the clean run's."""
    _, clean_rec, _ = run_grpo(tmp_path / "a", model_dir, **PORTFOLIO_RESUME)
    shapes = {n: w.shape for n, w in clean_rec.w_k.items()}
    run = tmp_path / "b" / "run"
    if start == "resumed":
        with pytest.raises(KeyboardInterrupt):
            run_grpo(tmp_path / "b", model_dir, extra_callbacks=[crash_after_save(4)], **PORTFOLIO_RESUME)
    leave_another_worlds_files(run, shapes, steps=[1, 2, 3, 4, 5, 6])
    caplog.clear()
    resume = start == "resumed" or None
    trainer, rec, _ = run_grpo(tmp_path / "b", model_dir, resume=resume, **PORTFOLIO_RESUME)
    assert trainer.alpharl.swap.chosen == "fixed-basis k=1 step 9"
    for name, w in clean_rec.after_swap.items():
        torch.testing.assert_close(rec.after_swap[name], w, rtol=1e-5, atol=1e-6)
    assert f"ignoring 14 files of another number of processes in {run}/alpharl" in caplog.text


def test_a_checkpoint_of_two_processes_resumes_in_one(tmp_path, model_dir):
    """The checkpoint records the number of processes whose shares it needs: a single-process resume of a
    2-process run's checkpoint-4 reads those, saves its own, and forecasts as the uninterrupted run."""
    _, clean_rec, _ = run_grpo(tmp_path / "a", model_dir, **PORTFOLIO_RESUME)
    with pytest.raises(KeyboardInterrupt):
        run_grpo(tmp_path / "b", model_dir, extra_callbacks=[crash_after_save(4)], **PORTFOLIO_RESUME)
    run = tmp_path / "b" / "run"
    window = [run / f"alpharl/window/step-{s:06d}" for s in (1, 2, 3, 4)]
    as_two_processes(sorted(clean_rec.w_k), [run / "alpharl/base", *window])
    state = run / "checkpoint-4/alpharl/state.json"
    state.write_text(json.dumps({**json.loads(state.read_text()), "world": 2}))
    trainer, rec, _ = run_grpo(tmp_path / "b", model_dir, resume=True, **PORTFOLIO_RESUME)
    for name, w in clean_rec.after_swap.items():
        torch.testing.assert_close(rec.after_swap[name], w, rtol=1e-5, atol=1e-6)
    assert (run / "alpharl/base/rank00000-of-00001.safetensors").is_file()
    assert json.loads((run / "checkpoint-6/alpharl/state.json").read_text())["world"] == 1


JUMPS = dict(
    alpharl_jumps=2,
    alpharl_window_end=4,
    alpharl_interval=1,
    alpharl_horizons=[1.5, 2.0],
    max_steps=12,
    save_strategy="steps",
    save_steps=2,
)
"""Two jumps of 4 steps: at step 4 (snapshots 1-4), at step 8 (snapshots 5-8, W_0 = the weights right
after the first jump); the first candidate applied unscored (step 10 = 4 + 1.5 x 4); 2 fine-tune steps."""


@pytest.mark.parametrize(("family", "label"), [("rank1", "10"), ("fixed_basis", "fixed-basis k=1 step 10")])
def test_repeated_jumps_fit_each_window_from_the_previous_jump(tmp_path, model_dir, family, label):
    seen: dict[int, dict[str, torch.Tensor]] = {}
    second: list[Recorder] = []

    def at_eight(trainer):
        second.append(Recorder(trainer, 8))
        return second[0]

    trainer, first, _ = run_grpo(
        tmp_path,
        model_dir,
        extra_callbacks=[window_weights(seen), at_eight],
        alpharl_candidates=[family],
        **JUMPS,
    )
    callback, rec = trainer.alpharl, second[0]
    assert [s.step for s in callback.swaps] == [4, 8] and callback.swap is callback.swaps[-1]
    assert callback.swaps[0].chosen == ("6" if family == "rank1" else "fixed-basis k=1 step 6")
    assert callback.swap.chosen == label and callback.start == 4
    assert callback.trajectory.steps == [5, 6, 7, 8]
    for name, w in first.after_swap.items():  # the second window starts from the first jump's weights
        torch.testing.assert_close(callback.recorder.base[name].float(), w, rtol=0, atol=0)
    assert (tmp_path / "run/alpharl/base-000004").is_dir()
    if family == "rank1":
        expected = expected_weights(trainer, rec.w_k, 10.0)
    else:
        candidate = Candidate("fixed_basis", 10.0, rank=1)
        read = lambda s, n: seen[s][n]  # noqa: E731
        expected = {
            n: candidate.weight(w, first.after_swap[n], [5, 6, 7, 8], lambda s, n=n: read(s, n), origin=4)
            for n, w in rec.w_k.items()
        }
    for name, w in rec.after_swap.items():
        torch.testing.assert_close(w, expected[name].float(), rtol=1e-6, atol=1e-7)
    assert trainer.state.global_step == 10  # the last jump's 2 fine-tune steps, then stop


@pytest.mark.parametrize("killed_after", [4, 6])
def test_repeated_jumps_resume_exactly(tmp_path, model_dir, killed_after):
    """Killed right after the first jump's checkpoint, or mid-way through the second window: the resumed
    run reloads the second window's W_0 and snapshots and makes the uninterrupted run's second jump."""
    settings = dict(alpharl_candidates=["fixed_basis"], **JUMPS)
    full, _, _ = run_grpo(tmp_path / "a", model_dir, **settings)
    with pytest.raises(KeyboardInterrupt):
        run_grpo(tmp_path / "b", model_dir, extra_callbacks=[crash_after_save(killed_after)], **settings)
    resumed, _, _ = run_grpo(tmp_path / "b", model_dir, resume=True, **settings)
    assert [s.step for s in resumed.alpharl.swaps] == [4, 8]
    assert [s.chosen for s in resumed.alpharl.swaps] == [s.chosen for s in full.alpharl.swaps]
    final = {n: p.detach() for n, p in full.model.named_parameters()}
    for name, p in resumed.model.named_parameters():
        torch.testing.assert_close(p.detach(), final[name], rtol=1e-5, atol=1e-6)


def test_bad_settings_are_refused_before_training(tmp_path, model_dir):
    model, tok = load(model_dir)
    train, _ = datasets()
    with pytest.raises(AlphaRLError, match="eval_dataset"):
        AlphaRLGRPOTrainer(
            model=model,
            reward_funcs=[sevens_reward],
            args=grpo_args(tmp_path, alpharl_acceptance_prompts=8),
            train_dataset=train,
            processing_class=tok,
        )
    with pytest.raises(AlphaRLError, match="a line fit needs 3"):
        AlphaRLGRPOTrainer(
            model=model,
            reward_funcs=[sevens_reward],
            args=grpo_args(tmp_path, alpharl_window_end=4),
            train_dataset=train,
            processing_class=tok,
        )


def test_a_non_finite_candidate_is_dropped_and_the_others_are_scored(tmp_path, model_dir, caplog):
    """`W_K + 1e300 (W_K - W_0)` overflows to inf: the run used to abort at the window end ("new value for
    ... has non-finite entries") after the whole window was trained. Now that candidate scores NaN (which
    never wins), the others are scored, and the run goes on."""
    trainer, rec, _ = run_grpo(
        tmp_path,
        model_dir,
        alpharl_candidates=["rank1", "expo"],
        alpharl_expo_factors=[0.1, 1e300],
        alpharl_acceptance_prompts=4,
        alpharl_acceptance_samples=1,
    )
    swap = trainer.alpharl.swap
    assert swap.dropped == ["expo a=1e+300"] and math.isnan(swap.scores["expo a=1e+300"])
    assert all(math.isfinite(swap.scores[label]) for label in swap.candidates if label != "expo a=1e+300")
    assert swap.chosen != "expo a=1e+300" and trainer.state.global_step == 8
    assert "candidate expo a=1e+300 dropped: its weight of model." in caplog.text
    assert all(torch.isfinite(w).all() for w in rec.after_swap.values())


def test_an_absurd_unscored_jump_keeps_w_k(tmp_path, model_dir, caplog):
    """Gate off, the forecast to reward 1e6 (a reward target cannot be priced before the run) moves the
    weights ~1e7 times their window update: it used to be applied silently (and the next rollout died with
    "probability tensor contains either `inf`, `nan`"). Now it is refused as offline `predict` refuses it,
    and W_K is kept."""
    trainer, rec, _ = run_grpo(tmp_path, model_dir, alpharl_covariate="reward", alpharl_target_rewards=[1e6])
    swap = trainer.alpharl.swap
    assert swap.chosen is None and swap.jump > 1e4 and trainer.state.global_step == 8
    assert "refused: the forecast to reward 1e+06 moved the weights" in caplog.text
    assert "kept the current weights unscored (acceptance gate off): refused the forecast" in caplog.text
    for name, w in rec.after_swap.items():
        assert torch.equal(w, rec.w_k[name]), name


def test_a_large_unscored_jump_is_applied_with_a_warning(tmp_path, model_dir, caplog):
    trainer, rec, _ = run_grpo(tmp_path, model_dir, alpharl_horizons=[50])
    swap = trainer.alpharl.swap
    assert swap.chosen == "300" and 10 < swap.jump < 1e4
    assert "the forecast to step 300 is applied unscored and moves the weights about 49 times" in caplog.text
    assert "the forecast to step 300 moved the weights" in caplog.text  # measured at the swap
