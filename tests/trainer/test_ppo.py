"""Real tiny PPO runs on CPU: learning, on-policy first updates, critic, checkpoints, AlphaRL, train.py."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from transformers import AutoModelForCausalLM

from alpharl_trainer import recipe
from alpharl_trainer.trainer import AlphaRLPPOConfig, AlphaRLPPOTrainer
from tests.trainer import harness
from tests.trainer.harness import Recorder, datasets, load, sevens_reward, tiny_trainer
from tests.trainer.test_callback import expected_weights

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def model_dir():
    return harness.test_model_dir()


def ppo_args(output_dir, **overrides) -> AlphaRLPPOConfig:
    ppo = dict(
        max_steps=8,
        steps_per_generation=2,  # a rollout of 32 completions = 2 mini-batches of 16 (4 prompts x 4)
        num_iterations=1,
        value_model="head",
        vf_coef=0.5,
        alpharl=False,
    )
    settings = {**harness.TINY_RUN, **harness.ALPHARL_RUN, **ppo, "output_dir": str(output_dir), **overrides}
    return recipe.parse(["--config", str(harness.REPO / "recipes" / "tiny" / "ppo.yaml")], **settings)[1]


def run_ppo(output_dir, model_dir, reward=sevens_reward, resume=None, callbacks=(), **overrides):
    args = ppo_args(output_dir, **overrides)
    trainer = tiny_trainer(AlphaRLPPOTrainer, args, [reward], model_dir=model_dir)
    for cb in callbacks:
        trainer.add_callback(cb(trainer))
    trainer.train(resume_from_checkpoint=resume)
    return trainer


def logged(trainer, key: str) -> list[tuple[int, float]]:
    return [(e["step"], e[key]) for e in trainer.state.log_history if key in e]


def test_short_ppo_run_improves_reward(tmp_path, model_dir):
    trainer = run_ppo(tmp_path, model_dir, max_steps=24, num_iterations=2)
    rewards = [r for _, r in logged(trainer, "reward")]  # one per rollout: 24 steps / (2 x 2) = 6 rollouts
    assert len(rewards) == 6
    assert sum(rewards[-2:]) / 2 > sum(rewards[:2]) / 2 + 0.2, rewards  # measured +0.34..0.49 (3 seeds)
    for key in ("loss/value", "clip_ratio/value", "values/explained_variance", "entropy", "policy/approx_kl"):
        assert logged(trainer, key), key


def test_first_update_of_each_rollout_is_on_policy(tmp_path, model_dir):
    """Old log-probs and values must be the training forward's own: ratio 1, nothing clipped, at each
    rollout's first mini-batch (steps 1, 3, 5); later mini-batches move off-policy."""
    trainer = run_ppo(tmp_path, model_dir, max_steps=6)
    kl = dict(logged(trainer, "policy/approx_kl"))
    for step in (1, 3, 5):
        assert kl[step] == pytest.approx(0.0, abs=1e-10)
        assert dict(logged(trainer, "clip_ratio/policy"))[step] == 0.0
        assert dict(logged(trainer, "clip_ratio/value"))[step] == 0.0
    assert kl[2] > 1e-6


def test_the_critic_learns_a_constant_reward(tmp_path, model_dir):
    trainer = run_ppo(
        tmp_path,
        model_dir,
        reward=lambda completions, **kw: [1.0] * len(completions),
        max_steps=16,
        vf_coef=1.0,
        value_learning_rate=0.05,
        epsilon_value=10.0,
    )
    values = [v for _, v in logged(trainer, "values/mean")]
    assert values[0] == 0.0  # the zero-initialized head
    assert values[-1] > 0.5, values  # V(s) -> 1, the return of every state
    group_lrs = sorted({g["lr"] for g in trainer.optimizer.param_groups})
    assert group_lrs == [2e-3, 0.05]


def test_checkpoints_hold_a_clean_policy_and_resume_restores_the_critic(tmp_path, model_dir):
    settings = dict(value_model="separate", max_steps=4, save_strategy="steps", save_steps=2)
    full = run_ppo(tmp_path / "a", model_dir, **settings)

    with pytest.raises(KeyboardInterrupt):
        run_ppo(tmp_path / "b", model_dir, callbacks=[harness.crash_after_save(2)], **settings)
    checkpoint = tmp_path / "b" / "checkpoint-2"
    with safe_open(str(checkpoint / "model.safetensors"), "pt") as f:
        assert not [k for k in f.keys() if k.startswith("value_model")]  # noqa: SIM118
    with safe_open(str(checkpoint / "value_model.safetensors"), "pt") as f:
        assert "backbone.layers.0.self_attn.q_proj.weight" in f.keys()  # noqa: SIM118
        assert f.metadata()["value_model"] == "separate"
    AutoModelForCausalLM.from_pretrained(checkpoint)  # loads as a plain causal LM

    resumed = run_ppo(tmp_path / "b", model_dir, resume=True, **settings)
    a, b = dict(full.model.named_parameters()), dict(resumed.model.named_parameters())
    assert any(n.startswith("value_model.backbone") for n in a)
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-5, atol=1e-6, msg=name)


def test_alpharl_config_excludes_the_critic_unless_asked(tmp_path):
    critic = "value_model.backbone.layers.0.self_attn.q_proj.weight"
    policy = "model.layers.0.self_attn.q_proj.weight"
    off = ppo_args(tmp_path, alpharl_exclude="mlp")
    select = off.selector()
    assert not select(critic, (64, 64)) and select(policy, (64, 64))
    assert not select("model.layers.0.mlp.up_proj.weight", (128, 64))  # the user's own exclusion still holds
    assert ppo_args(tmp_path, alpharl_critic=True).selector()(critic, (64, 64))


def test_alpharl_swap_on_ppo_moves_the_policy_only(tmp_path, model_dir):
    model, tok = load(model_dir)
    train, heldout = datasets()
    trainer = AlphaRLPPOTrainer(
        model=model,
        reward_funcs=[sevens_reward],
        args=ppo_args(tmp_path, alpharl=True, value_model="separate", max_steps=10),
        train_dataset=train,
        eval_dataset=heldout,
        processing_class=tok,
    )
    rec = Recorder(trainer, trainer.alpharl.window_end)
    trainer.add_callback(rec)
    trainer.train()

    swap = trainer.alpharl.swap
    assert swap.step == 6 and swap.chosen == "9"
    assert trainer.alpharl.trajectory.steps == [2, 4, 6]
    critic = {n for n in rec.w_k if n.startswith("value_model.")}
    policy = {n: w for n, w in rec.w_k.items() if n not in critic}
    assert critic and policy and not critic & set(trainer.alpharl.names)
    expected = expected_weights(trainer, policy, float(swap.chosen))
    for name in policy:
        torch.testing.assert_close(rec.after_swap[name], expected[name].float(), rtol=0, atol=0)
    for name in critic:
        torch.testing.assert_close(rec.after_swap[name], rec.w_k[name], rtol=0, atol=0)
    assert swap.delta_norm > 0
    assert rec.buffered_after_swap is None  # the next rollout is sampled from the swapped policy
    assert trainer.state.global_step == 8


def test_train_entry_runs_a_ppo_recipe(tmp_path, model_dir, monkeypatch):
    from alpharl_trainer import recipe, train

    monkeypatch.chdir(tmp_path)
    script, config = recipe.parse(["--config", str(harness.REPO / "recipes/tiny/ppo.yaml")])
    assert script.trainer == "ppo" and isinstance(config, AlphaRLPPOConfig)
    assert config.alpharl_exclude and config.gamma == 1.0 and config.lam == 1.0
    overrides = {
        "model_name_or_path": str(model_dir),
        "output_dir": str(tmp_path / "run"),
        "train_size": 256,
        "eval_size": 16,
        "max_steps": 8,
        "per_device_train_batch_size": 16,
        "num_generations": 4,
        "steps_per_generation": 1,
        "alpharl_interval": 2,
        "alpharl_window_end": 6,
        "alpharl_acceptance_prompts": 4,
        "alpharl_acceptance_samples": 1,
        "alpharl_finetune_steps": 1,
        "save_steps": 4,
        "logging_steps": 1,
        "report_test_size": 16,
    }
    argv = ["--config", str(harness.REPO / "recipes/tiny/ppo.yaml")]
    for key, value in overrides.items():
        argv += [f"--{key}", str(value)]
    assert train.main(argv) == 0
    summary = json.loads((tmp_path / "run/alpharl/summary.json").read_text())
    assert summary["swap"]["step"] == 6 and summary["snapshots"] == [2, 4, 6]
    assert (tmp_path / "run/value_model.safetensors").is_file()
    AutoModelForCausalLM.from_pretrained(tmp_path / "run")


def test_paper_recipe_parses():
    from alpharl_trainer.recipe import parse

    cpu = ["--bf16", "false", "--use_cpu", "true"]  # the recipe targets GPUs
    script, config = parse(["--config", str(harness.REPO / "recipes/paper/ppo.yaml"), *cpu])
    assert script.trainer == "ppo" and config.value_model == "separate" and config.beta == 0.0
    assert (config.gamma, config.lam, config.alpharl_critic) == (1.0, 1.0, False)


def _heldout_after(trainer_cls, config_cls, steps: int, **settings) -> tuple[float, float, float]:
    """(base, final) teacher-forced exact match on 1000 held-out problems and the completion tokens generated,
    after `steps` steps of 32 prompts x 8 samples on the arithmetic task from the shipped tiny SFT policy."""
    from alpharl_trainer.evaluate import teacher_forced
    from alpharl_trainer.policies import shipped_policy
    from alpharl_trainer.tasks import get_task, to_dataset
    from alpharl_trainer.tasks.rewards import task_reward

    task = get_task("arithmetic", mix="rl")
    problems = task.problems("heldout", 1000, 12345)
    model, tok = load(shipped_policy("tiny"))
    tok.padding_side = "left"
    base = teacher_forced(model, tok, problems)["exact"]
    args = config_cls(
        output_dir=settings.pop("output_dir"),
        max_steps=steps,
        learning_rate=2e-5,
        lr_scheduler_type="constant",
        per_device_train_batch_size=256,  # 32 prompts: with 8, neither trainer moves the shipped policy up
        num_generations=8,
        max_completion_length=8,
        beta=0.0,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        bf16=False,
        seed=0,
        disable_tqdm=True,
        **settings,
    )
    train = to_dataset(task, "train", 8192, 0)
    trainer = trainer_cls(
        model=model, reward_funcs=[task_reward(task)], args=args, train_dataset=train, processing_class=tok
    )
    trainer.train()
    model.eval()
    tokens = 256 * sum(
        e["completions/mean_length"] for e in trainer.state.log_history if "completions/mean_length" in e
    )
    return base, teacher_forced(model, tok, problems)["exact"], tokens


@pytest.mark.slow  # ~2.5 minutes: 2 x 150 steps of 32 prompts x 8
def test_ppo_raises_heldout_accuracy_like_grpo(tmp_path):
    """From the shipped policy (0.571 on these held-out problems): PPO must gain more than 0.03 and stay
    within 0.03 of GRPO at the same generation budget. Passes at 32 prompts and lr 2e-5; at 8 prompts PPO
    did not gain (lr 1e-5: 0.572, 3e-5: 0.504 after 150 steps)."""
    from trl import GRPOConfig, GRPOTrainer

    from alpharl_trainer.trainer import PPOConfig, PPOTrainer

    ppo = dict(output_dir=str(tmp_path / "ppo"), gamma=1.0, lam=1.0, value_learning_rate=1e-3)
    base, ppo_final, ppo_tokens = _heldout_after(PPOTrainer, PPOConfig, 150, **ppo)
    grpo = dict(output_dir=str(tmp_path / "grpo"), loss_type="grpo", scale_rewards="group")
    _, grpo_final, grpo_tokens = _heldout_after(GRPOTrainer, GRPOConfig, 150, **grpo)
    assert abs(ppo_tokens - grpo_tokens) < 0.05 * grpo_tokens  # same generation budget
    assert ppo_final > base + 0.03, (base, ppo_final)
    assert ppo_final > grpo_final - 0.03, (ppo_final, grpo_final)
