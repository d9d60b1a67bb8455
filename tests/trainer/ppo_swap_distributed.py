"""Launched by tests/trainer/test_ppo_distributed.py under `accelerate launch` (DDP, ZeRO-2).

A real tiny PPO run with AlphaRL on every rank; rank 0 writes a JSON verdict:
- right after the swap the policy's tracked weights equal the forecast recomputed from the trajectory, on
  every rank, and the critic is untouched by the swap;
- at the end every parameter (policy and critic) is identical on all ranks: gradients were averaged over
  both, including the critic that runs outside the policy's forward.
"""

from __future__ import annotations

import sys

import torch
import torch.distributed as dist

from alpharl_trainer.trainer import AlphaRLPPOTrainer
from tests.trainer import harness
from tests.trainer.harness import Recorder, checksum, datasets, finish_launch, load, sevens_reward
from tests.trainer.test_callback import expected_weights
from tests.trainer.test_ppo import ppo_args


def main(out_path: str, output_dir: str, value_model: str) -> None:
    model, tok = load(harness.test_model_dir())
    train, heldout = datasets()
    args = ppo_args(
        output_dir,
        alpharl=True,
        value_model=value_model,
        max_steps=10,
        per_device_train_batch_size=8,  # x 2 processes = 16 completions = 4 prompts x 4 generations
        alpharl_acceptance_prompts=4,  # exercise the gate's generation across ranks too
        alpharl_acceptance_samples=1,
        alpharl_acceptance_margin=-1e9,  # ...but always apply the best candidate
    )
    trainer = AlphaRLPPOTrainer(
        model=model,
        reward_funcs=[sevens_reward],
        args=args,
        train_dataset=train,
        eval_dataset=heldout,
        processing_class=tok,
    )
    rec = Recorder(trainer, trainer.alpharl.window_end)
    trainer.add_callback(rec)
    trainer.train()

    swap = trainer.alpharl.swap
    policy = {n: w for n, w in rec.w_k.items() if not n.startswith("value_model.")}
    expected = expected_weights(trainer, policy, float(swap.chosen))
    exact = all(torch.equal(rec.after_swap[n], expected[n].float()) for n in expected)
    critic_kept = all(torch.equal(rec.after_swap[n], w) for n, w in rec.w_k.items() if n not in policy)
    final = {n: p.detach() for n, p in trainer.model.named_parameters()}
    world = dist.get_world_size()
    gathered = [None] * world
    dist.all_gather_object(gathered, (exact, critic_kept, checksum(final)))
    verdict = {
        "world": world,
        "deepspeed": bool(trainer.is_deepspeed_enabled),
        "chosen": swap.chosen,
        "has_critic": any(n.startswith("value_model.") for n in final),
        "swap_equals_forecast_all_ranks": all(g[0] for g in gathered),
        "critic_untouched_by_swap": all(g[1] for g in gathered),
        "ranks_identical_at_end": len({g[2] for g in gathered}) == 1,
        "steps": trainer.state.global_step,
    }
    finish_launch(trainer, out_path, verdict)


if __name__ == "__main__":
    main(*sys.argv[1:4])
