"""The acceptance gate's cost and decision on the main job's window, old and new side by side in one run.

Three runs of the main job's recipe (recipes/tiny/grpo.yaml: 150 planned steps, the window closes at step 60,
128 held-out prompts x 4 samples), identical up to the window end (same seed, one torch thread), each stopped
right after its swap:
- the full gate as it was: every candidate, near duplicates included, on every prompt;
- the full gate after near duplicates are collapsed (the default);
- the race (`alpharl_acceptance_rule: race`) after near duplicates are collapsed.
For each: the candidates scored, the prompts and completions generated, the swap's cost in training steps by
tokens and by time (`SwapRecord.cost`), and the decision; the race's choice is also given its score under
the full gate, which scores every candidate on all 128 prompts.

    python3 benchmarks/bench_gate.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch
from transformers import PrinterCallback

from alpharl_trainer import recipe

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "tiny" / "grpo.yaml"


def swap_of(**gate):
    """The main job to its window end and swap (no fine-tune, no test-split scoring), with `gate` set."""
    with tempfile.TemporaryDirectory() as out:
        overrides = dict(output_dir=out, report_test_size=0, save_strategy="no", disable_tqdm=True)
        script, config = recipe.parse(
            ["--config", str(RECIPE)], **overrides, alpharl_finetune_steps=0, report_to="none", **gate
        )
        torch.set_num_threads(script.torch_threads or 1)
        trainer = recipe.build_trainer(script, config)
        trainer.remove_callback(PrinterCallback)
        trainer.train()
    return trainer.alpharl.swap


def main() -> None:
    started = time.perf_counter()
    runs = {
        "full gate, every candidate (before)": swap_of(alpharl_acceptance_duplicates=0.0),
        "full gate, near duplicates collapsed": swap_of(),
        "race, near duplicates collapsed": swap_of(alpharl_acceptance_rule="race"),
    }
    full = runs["full gate, every candidate (before)"]
    print("\n== the acceptance gate at the main job's window (step 60; 128 prompts x 4 samples)")
    print(
        f"{'gate':<38} {'scored':>6} {'prompts':>8} {'completions':>11} {'steps/tokens':>12} "
        f"{'steps/time':>10}  decision"
    )
    for name, swap in runs.items():
        c = swap.cost
        chosen = swap.chosen or "keep W_K"
        print(
            f"{name:<38} {len(swap.candidates):>6} {c['prompts']:>8} {c['completions']:>11} "
            f"{c['steps_by_tokens']:>12.1f} {c['steps_by_seconds']:>10.1f}  {chosen}"
        )
    for name, swap in list(runs.items())[1:]:
        same = swap.chosen == full.chosen
        score = full.scores.get(swap.chosen) if swap.chosen else full.scores["current"]
        best = full.scores.get(full.chosen) if full.chosen else full.scores["current"]
        within = score is not None and best - score <= full.margin
        cost = full.cost["completions"] / swap.cost["completions"]
        print(
            f"{name}: {cost:.2f}x fewer completions than the full gate; decision "
            f"{'the same' if same else 'different'} (full gate's held-out score of it {score}, of its own "
            f"pick {best:.4f}: {'within' if within else 'outside'} the margin {full.margin:g})"
        )
    race = runs["race, near duplicates collapsed"]
    if race.eliminated:
        print("race: dropped early:", "; ".join(f"{k} ({v})" for k, v in race.eliminated.items()))
    print(f"\nbench_gate total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
