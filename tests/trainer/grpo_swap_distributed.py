"""Launched by tests/trainer/test_distributed_swap.py under `accelerate launch` (DDP, ZeRO-2, ZeRO-3).

A real tiny GRPO run with AlphaRL on every rank. Checks on every rank, then rank 0 writes a JSON verdict:
- right after the swap the weights equal the forecast recomputed from the trajectory (tensor by tensor), or,
  with the portfolio's families (third argument), the chosen candidate recomputed from the window's weights;
  with repeated jumps (fourth argument), all of this at the last jump;
- all ranks hold identical weights after the swap (checksums all-gathered);
- one optimizer step later the weights are the swapped ones plus one small update, not the pre-swap ones
  (under DeepSpeed this proves the fp32 master copy received the swap too).
"""

from __future__ import annotations

import sys

import torch
import torch.distributed as dist

from alpharl_trainer.reproduce.methods import relex
from alpharl_trainer.trainer import AlphaRLGRPOTrainer
from alpharl_trainer.trainer.candidates import build_candidates
from tests.trainer.harness import (
    Recorder,
    checksum,
    datasets,
    finish_launch,
    grpo_args,
    load,
    sevens_reward,
    test_model_dir,
)
from tests.trainer.test_callback import expected_weights, window_weights


def main(out_path: str, output_dir: str, families: str = "rank1", jumps: str = "1") -> None:
    model, tok = load(test_model_dir())
    train, heldout = datasets()
    portfolio = {}
    if families != "rank1":  # the families computed by each matrix's owner and sent to every rank
        portfolio = dict(alpharl_candidates=families.split(","), alpharl_interval=1, alpharl_basis_ranks=[2])
    if int(jumps) > 1:  # windows of 4 steps (snapshots 1-4, 5-8, ...); the checks below are the last jump's
        portfolio.update(alpharl_jumps=int(jumps), alpharl_window_end=4, alpharl_interval=1)
    args = grpo_args(
        output_dir,
        per_device_train_batch_size=8,  # x 2 processes = 16 completions = 4 prompts x 4 generations
        alpharl_scale=20.0,  # a swap much larger than one Adam update, so "swap survived" is unambiguous
        alpharl_acceptance_prompts=4,  # exercise the gate's generation across ranks too
        alpharl_acceptance_samples=1,
        alpharl_acceptance_margin=-1e9,  # ...but always apply the best candidate
        alpharl_finetune_steps=1,
        save_strategy="no",
        **portfolio,
    )
    trainer = AlphaRLGRPOTrainer(
        model=model,
        reward_funcs=[sevens_reward],
        args=args,
        train_dataset=train,
        eval_dataset=heldout,
        processing_class=tok,
    )
    rec = Recorder(trainer, trainer.alpharl.schedule.length * int(jumps))
    trainer.add_callback(rec)
    seen: dict[int, dict[str, torch.Tensor]] = {}
    trainer.add_callback(window_weights(seen)(trainer))
    trainer.train()

    swap = trainer.alpharl.swap
    if families == "rank1":
        expected = expected_weights(trainer, rec.w_k, float(swap.chosen))
    else:  # the chosen candidate recomputed on this rank from the weights every rank saw
        cfg, steps = trainer.alpharl.config, trainer.alpharl.trajectory.steps
        candidate = {c.label: c for c in build_candidates(cfg, swap.targets, swap.step, 10, len(steps))}
        chosen = candidate[swap.chosen]
        if chosen.family == "relex":  # the whole model's fit: every rank's matrices in one Gram matrix
            expected = relex(seen[0], [(s, seen[s]) for s in steps], chosen.value)
        else:
            expected = {
                n: chosen.weight(w, seen[0][n], steps, lambda s, n=n: seen[s][n], cfg.alpharl_basis_profile)
                for n, w in rec.w_k.items()
            }
    if families == "rank1" or candidate[swap.chosen].family != "relex":  # one computation: bit for bit
        exact = all(torch.equal(rec.after_swap[n], expected[n].float()) for n in expected)
    else:  # RELEX sums the ranks' Gram parts: the same math in another order
        exact = all(
            torch.allclose(rec.after_swap[n], expected[n].float(), rtol=1e-6, atol=1e-7) for n in expected
        )
    sums = [None] * dist.get_world_size()
    dist.all_gather_object(sums, checksum(rec.after_swap))
    norm = lambda a, b: sum(float((a[n] - b[n]).norm() ** 2) for n in a) ** 0.5  # noqa: E731
    verdict = {
        "world": dist.get_world_size(),
        "chosen": swap.chosen,
        "swap_steps": [s.step for s in trainer.alpharl.swaps],
        "swap_equals_forecast": exact,
        "ranks_identical": len(set(sums)) == 1,
        "swap_size": norm(rec.after_swap, rec.w_k),
        "update_after_swap": norm(rec.next_step, rec.after_swap),
        "distance_next_to_pre_swap": norm(rec.next_step, rec.w_k),
        "deepspeed": bool(trainer.is_deepspeed_enabled),
    }
    oks = [None] * dist.get_world_size()
    dist.all_gather_object(oks, exact)
    verdict["swap_equals_forecast_all_ranks"] = all(oks)
    finish_launch(trainer, out_path, verdict)


if __name__ == "__main__":
    main(*sys.argv[1:])
