"""Small real GRPO/RLOO runs for the trainer tests (in-process and under `accelerate launch`).

The policy is a small SFT-warm-started tiny model kept as test data (`tests/data/tiny-test`, built by
`ensure_tiny_model(TEST_MODEL)`: a build is chaotic across machines, so the tests load these weights rather
than each machine's own build); the reward is a shaped one ("write 7s")
with variance inside every group from the first step, so every step moves the weights coherently and
the rank-1 trajectory is well defined. `Recorder` captures what the tests check: `W_K` just before
the swap, the weights right after it, the weights the next rollouts were generated from, and the
weights one optimizer step later.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from transformers import TrainerCallback

from alpharl_trainer.policies import verified_folder
from alpharl_trainer.policies.build_tiny import TinyConfig
from alpharl_trainer.tasks import get_task, to_dataset

REPO = Path(__file__).resolve().parents[2]
TEST_MODEL = TinyConfig(
    hidden_size=64,
    num_layers=2,
    num_heads=2,
    intermediate_size=128,
    steps=60,
    batch_size=64,
    lr=3e-3,
    target_accuracy=None,
)


TEST_POLICY = REPO / "tests" / "data" / "tiny-test"


def test_model_dir() -> Path:
    """The tests' policy, checksum-verified (to rebuild it: `ensure_tiny_model(TEST_MODEL)`, then copy the
    folder here and regenerate its SHA256SUMS)."""
    return verified_folder(TEST_POLICY, "the tests' tiny policy")


test_model_dir.__test__ = False  # a helper, not a test, wherever it is imported


def tracked(model) -> dict[str, torch.Tensor]:
    from alpharl_trainer.extrapolation import ParamSelector

    select = ParamSelector()
    return {n: p for n, p in model.named_parameters() if select(n, tuple(getattr(p, "ds_shape", p.shape)))}


def checksum(tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        h.update(name.encode())
        h.update(tensors[name].detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def snapshot(model) -> dict[str, torch.Tensor]:
    """Full copies of the tracked weights (under ZeRO-3 gathered collectively: call on every rank)."""
    from alpharl_trainer.distributed import full_weight

    zero3 = any(hasattr(p, "ds_id") for p in model.parameters())
    out = {}
    for name, p in sorted(tracked(model).items()):
        with full_weight(p, zero3=zero3) as w:
            out[name] = w.detach().float().cpu().clone()
    return out


def sevens_reward(completions, **kwargs) -> list[float]:
    """Share of '7' characters in the completion: easy to climb, varied inside every group."""
    return [c.count("7") / max(len(c), 1) for c in completions]


class Recorder(TrainerCallback):
    """Appended after AlphaRL's callback (which sits first), so at `on_step_end` it sees the swap done."""

    def __init__(self, trainer, window_end: int):
        self.trainer, self.window_end = trainer, window_end
        self.w_k = self.after_swap = self.next_step = None
        self.buffered_after_swap = "unset"
        self.vllm_step_after_swap = None

    def on_optimizer_step(self, args, state, control, **kwargs):
        if state.global_step + 1 == self.window_end:  # global_step is incremented after this event
            self.w_k = snapshot(self.trainer.model)

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.window_end:
            self.after_swap = snapshot(self.trainer.model)
            self.buffered_after_swap = getattr(self.trainer, "_buffered_inputs", "absent")
            self.vllm_step_after_swap = getattr(self.trainer, "_last_loaded_step", None)
        elif state.global_step == self.window_end + 1:
            self.next_step = snapshot(self.trainer.model)


class WeightsAtReward:
    """A reward wrapper that records the checksum of the policy's tracked weights at every call."""

    def __init__(self, inner, model_ref):
        self.inner, self.model_ref, self.calls = inner, model_ref, []
        self.__name__ = getattr(inner, "__name__", "reward")

    def __call__(self, completions, trainer_state=None, **kwargs):
        step = trainer_state.global_step if trainer_state is not None else -1
        self.calls.append((step, checksum(snapshot(self.model_ref()))))
        return self.inner(completions=completions, trainer_state=trainer_state, **kwargs)


TINY_RUN = dict(
    max_steps=10,
    learning_rate=2e-3,
    lr_scheduler_type="constant",
    per_device_train_batch_size=16,
    num_generations=4,
    max_completion_length=6,
    temperature=1.0,
    beta=0.0,
    logging_steps=1,
    save_strategy="no",
    report_to="none",
    use_cpu=True,
    bf16=False,
    seed=0,
    data_seed=0,
    disable_tqdm=True,
)
"""Settings every tiny test run shares (GRPO, RLOO, PPO): CPU, fast, seeded, no saving or log backends."""

ALPHARL_RUN = dict(
    alpharl_candidates=[
        "rank1"
    ],  # the swap's mechanics on the rank-1 forecast; the portfolio has its own tests
    alpharl_interval=2,
    alpharl_window_end=6,
    alpharl_horizons=[1.5, 2.0],
    alpharl_acceptance_prompts=0,
    alpharl_acceptance_scoring="sampled",  # the tests' rewards (sevens, ...) are not a task's exact answer
    alpharl_finetune_steps=2,
)
"""AlphaRL in a tiny test run: snapshots at steps 2, 4, 6, swap at 6 (first horizon, unscored), stop at 8."""


MAIN_RECIPE = REPO / "recipes" / "tiny" / "grpo.yaml"
MAIN_RECIPE_SHRUNK = dict(
    max_steps=8,
    alpharl_interval=2,
    alpharl_window_end=6,
    alpharl_finetune_steps=1,
    alpharl_acceptance_prompts=8,
    per_device_train_batch_size=32,
    train_size=512,
    eval_size=32,
    report_test_size=0,
    logging_steps=1,
    save_steps=100,
)
"""The main job's recipe (MAIN_RECIPE: its data, policy and gate) shrunk to seconds for the logger tests:
snapshots at steps 2, 4, 6, the swap gated on 8 held-out prompts at step 6, one fine-tune step, every step
logged, no test scoring, no checkpoint."""


def main_recipe_overrides(output_dir) -> list[str]:
    """MAIN_RECIPE_SHRUNK and `output_dir` as command-line flags (`alpharl train MAIN_RECIPE <flags>`)."""
    settings = {"output_dir": output_dir, **MAIN_RECIPE_SHRUNK}
    return [text for key, value in settings.items() for text in (f"--{key}", str(value))]


def grpo_args(output_dir, **overrides):
    """The main job's recipe (recipes/tiny/grpo.yaml) with the tiny test settings and `overrides`."""
    from alpharl_trainer import recipe

    settings = {**TINY_RUN, **ALPHARL_RUN, "output_dir": str(output_dir), **overrides}
    return recipe.parse(["--config", str(REPO / "recipes" / "tiny" / "grpo.yaml")], **settings)[1]


def crash_after_save(step: int):
    """A callback class (built with the trainer) that kills the run right after checkpoint-`step` is saved."""

    class Crash(TrainerCallback):
        def __init__(self, trainer):
            pass

        def on_save(self, args, state, control, **kwargs):
            if state.global_step == step:
                raise KeyboardInterrupt(f"simulated kill after checkpoint-{step}")

    return Crash


def datasets(train: int = 256, heldout: int = 16):
    task = get_task("arithmetic", mix="rl")
    return to_dataset(task, "train", train), to_dataset(task, "heldout", heldout)


def load(model_dir: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(model_dir), AutoTokenizer.from_pretrained(model_dir)


def tiny_trainer(trainer_cls, args, reward_funcs=(sevens_reward,), *, model_dir=None, train=256, heldout=16):
    """A trainer of the tests' policy (or `model_dir`'s) on the tiny arithmetic prompts."""
    model, tok = load(model_dir or test_model_dir())
    train_data, heldout_data = datasets(train, heldout)
    return trainer_cls(
        model=model,
        reward_funcs=list(reward_funcs),
        args=args,
        train_dataset=train_data,
        eval_dataset=heldout_data,
        processing_class=tok,
    )


def finish_launch(trainer, out_path: str, verdict: dict) -> None:
    """End of a script run under `accelerate launch`: rank 0 writes the verdict, then every rank leaves.

    The ranks leave together and tear the process group down: a rank exiting while gloo threads are still
    live can abort ("terminate called without an active exception"), and torchrun then kills the other.
    Even after that teardown the abort still came, rarely, from C++ destructors at interpreter exit (about 1
    run in 10 of the ZeRO-2 PPO script), after the verdict was written: so the ranks leave with `os._exit`,
    skipping those destructors (nothing is left to flush or save by then).
    """
    import json
    import os
    import sys

    import torch.distributed as dist

    if dist.get_rank() == 0:
        with open(out_path, "w") as f:
            json.dump(verdict, f)
    if trainer.is_deepspeed_enabled:
        trainer.deepspeed.destroy()  # a ZeRO-3 engine aborts at exit otherwise
    dist.barrier()
    dist.destroy_process_group()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
