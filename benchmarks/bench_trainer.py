"""AlphaRL's cost inside a real GRPO run: snapshot overhead per step, and forecast + swap vs one step.

Same tiny policy, task and settings as recipes/tiny/grpo.yaml, measured side by side in one process:
- plain GRPO vs GRPO with AlphaRL snapshots at the default interval (window end past the run, so no swap),
  runs interleaved A/B/A/B to spread machine noise over both; step time is the median of TRL's own
  per-step `step_time`, and the snapshot time is AlphaRL's own `alpharl/snapshot_time`;
- a run that swaps: forecast + write time without the acceptance gate, and with it (64 held-out prompts x 4).

    python3 benchmarks/bench_trainer.py [--steps 40]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

from alpharl_trainer.policies import shipped_policy
from alpharl_trainer.tasks import get_task, to_dataset
from alpharl_trainer.tasks.rewards import task_reward
from alpharl_trainer.trainer import AlphaRLGRPOConfig, AlphaRLGRPOTrainer

DEFAULT_INTERVAL = AlphaRLGRPOConfig.__dataclass_fields__["alpharl_interval"].default


def run(steps: int, **alpharl) -> dict[str, list[float]]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = shipped_policy("tiny")
    task = get_task("arithmetic", mix="rl")
    with tempfile.TemporaryDirectory() as out:
        args = AlphaRLGRPOConfig(
            output_dir=out,
            max_steps=steps,
            learning_rate=1e-5,
            lr_scheduler_type="constant",
            per_device_train_batch_size=64,
            num_generations=8,
            max_completion_length=8,
            beta=0.0,
            loss_type="grpo",
            logging_steps=1,
            save_strategy="no",
            report_to="none",
            use_cpu=True,
            bf16=False,
            disable_tqdm=True,
            seed=0,
            **alpharl,
        )
        trainer = AlphaRLGRPOTrainer(
            model=AutoModelForCausalLM.from_pretrained(path),
            reward_funcs=[task_reward(task)],
            args=args,
            train_dataset=to_dataset(task, "train", 64 * steps),
            eval_dataset=to_dataset(task, "heldout", 64),
            processing_class=AutoTokenizer.from_pretrained(path),
        )
        trainer.train()
    history = trainer.state.log_history
    keys = ("step_time", "alpharl/snapshot_time", "alpharl/swap_time")
    return {k: [float(h[k]) for h in history if k in h] for k in keys}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    print(f"torch threads: {threads}; {args.steps} steps per run; interval {DEFAULT_INTERVAL}")
    plain, snap, snap_cost = [], [], []
    started = time.perf_counter()
    for _ in range(args.repeats):
        plain += run(args.steps, alpharl=False)["step_time"][2:-1]  # first steps warm caches up
        # the window closes at the last step (a window past max_steps is refused); that step is left out
        r = run(args.steps, alpharl_window_end=args.steps, alpharl_acceptance_prompts=0)
        snap += r["step_time"][2:-1]
        snap_cost += r["alpharl/snapshot_time"]
    step = statistics.median(plain)
    step_snap = statistics.median(snap)
    per_snapshot = statistics.median(snap_cost)
    print("\n== snapshot overhead (GRPO step on the tiny policy, 64 completions)")
    print(f"median step time, plain GRPO:           {step * 1e3:8.1f} ms  ({len(plain)} steps)")
    print(f"median step time, with AlphaRL on:      {step_snap * 1e3:8.1f} ms  ({len(snap)} steps)")
    overhead = per_snapshot / DEFAULT_INTERVAL / step
    print(
        f"median time of one rank-1 snapshot:     {per_snapshot * 1e3:8.1f} ms  ({len(snap_cost)} snapshots)"
    )
    print(f"overhead per step at interval {DEFAULT_INTERVAL}:        {overhead:8.2%}")
    print(f"  (A/B step-time ratio, noisier:        {step_snap / step - 1:+8.2%})")

    window = 3 * DEFAULT_INTERVAL
    no_gate = run(window + 1, alpharl_window_end=window, alpharl_acceptance_prompts=0)
    gate = run(window + 1, alpharl_window_end=window, alpharl_acceptance_prompts=64)
    print("\n== forecast + swap (at the window end, 3 snapshots)")
    print(f"forecast + write, no acceptance gate:   {no_gate['alpharl/swap_time'][0]:8.2f} s "
          f"= {no_gate['alpharl/swap_time'][0] / step:6.1f} training steps")  # fmt: skip
    print(f"with the gate (64 prompts x 4, 4 cands): {gate['alpharl/swap_time'][0]:8.2f} s "
          f"= {gate['alpharl/swap_time'][0] / step:6.1f} training steps")  # fmt: skip
    print(f"\nbench_trainer total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
