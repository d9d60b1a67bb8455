"""AlphaRL's cost inside a real GRPO run: snapshot overhead per step, and forecast + swap vs one step.

The main job's recipe (recipes/tiny/grpo.yaml) at 64 completions per step, measured side by side in one
process:
- plain GRPO vs GRPO with AlphaRL snapshots at the default interval (window end past the run, so no swap),
  runs interleaved A/B/A/B to spread machine noise over both; step time is the median of TRL's own
  per-step `step_time`, and the snapshot time is AlphaRL's own `alpharl/snapshot_time`;
- a run that swaps, at the recipe's window (6 snapshots): the rank-1 line alone without the gate; the recipe's
  portfolio, computing and writing every candidate (`alpharl/forecast_time`) and with the gate scoring them
  (64 held-out prompts x 4).

    python3 benchmarks/bench_trainer.py [--steps 40]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from transformers import PrinterCallback

from alpharl_trainer import recipe

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "tiny" / "grpo.yaml"
DEFAULT_INTERVAL = recipe.resolve(["--config", str(RECIPE)]).values["alpharl_interval"]


def run(steps: int, **alpharl) -> dict[str, list[float]]:
    """A run of the main job's recipe, shortened to `steps` (64 completions per step), with `alpharl`."""
    with tempfile.TemporaryDirectory() as out:
        overrides = dict(
            output_dir=out, max_steps=steps, per_device_train_batch_size=64, train_size=64 * steps
        )
        overrides.update(
            eval_size=64, report_test_size=0, logging_steps=1, save_strategy="no", disable_tqdm=True
        )
        script, config = recipe.parse(["--config", str(RECIPE)], **overrides, **alpharl)
        trainer = recipe.build_trainer(script, config)
        trainer.remove_callback(PrinterCallback)  # per-step log dicts would bury the results
        trainer.train()
    history = trainer.state.log_history
    keys = (
        "step_time",
        "alpharl/snapshot_time",
        "alpharl/swap_time",
        "alpharl/forecast_time",
        "alpharl/candidates",
    )
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

    window = 6 * DEFAULT_INTERVAL  # the recipe's window: 6 snapshots, enough for every family
    rank1 = run(
        window + 1, alpharl_window_end=window, alpharl_acceptance_prompts=0, alpharl_candidates=["rank1"]
    )
    gated = run(
        window + 1, alpharl_window_end=window, alpharl_acceptance_prompts=64
    )  # the recipe's portfolio
    count = int(gated["alpharl/candidates"][0])
    print(f"\n== forecast + swap (at the window end, 6 snapshots; one training step = {step * 1e3:.0f} ms)")
    rows = [
        ("rank-1 line, one candidate, no gate", rank1["alpharl/swap_time"][0]),
        (f"portfolio: {count} candidates computed + written", gated["alpharl/forecast_time"][0]),
        (f"portfolio with the gate (64 prompts x 4, {count + 1} scorings)", gated["alpharl/swap_time"][0]),
    ]
    for name, seconds in rows:
        print(f"{name:<58} {seconds:8.2f} s = {seconds / step:7.1f} training steps")
    print(f"\nbench_trainer total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
