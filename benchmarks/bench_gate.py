"""The acceptance gate's cost and decision on the main job's window, old and new side by side in one run.

Runs of the main job's recipe (recipes/tiny/grpo.yaml: 150 planned steps, the window closes at step 60, 128
held-out prompts), identical up to the window end (same seed, one torch thread), each stopped right after its
swap:
- sampled scoring (4 completions per prompt, as in training): the full gate as it was (every candidate, near
  duplicates included, on every prompt), the full gate after near duplicates are collapsed, and the race
  (`alpharl_acceptance_rule: race`) after the collapse (the recipe scores exact: these set 'sampled');
- exact scoring (`alpharl_acceptance_scoring: exact`, the recipe's: the probability that the sampler writes
  each prompt's gold completion, from one teacher-forced pass; no generation), full, race, and the race with
  a shortlist (`alpharl_acceptance_finalists: 2`: after 64 prompts only the 2 leaders go on to all 128);
- greedy scoring against exact_greedy (the reproduction suite's kind of gate), on 256 prompts;
- at the reproduction suite's scale (its headline regime: 5- and 9-letter lists, 1,000 held-out problems,
  completions up to 10 tokens), one model scored both ways on the same problems: seconds and outcomes.
For each: the candidates scored, the prompts, completions generated and tokens processed, the swap's cost in
training steps by tokens and by time (`SwapRecord.cost`), and the decision; each decision is also given its
score under the sampled full gate (which scores every candidate on all 128 prompts), or under greedy's.

    python3 benchmarks/bench_gate.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch
from transformers import PrinterCallback

from alpharl_trainer import recipe
from alpharl_trainer.trainer.acceptance import AcceptanceScorer
from alpharl_trainer.trainer.reference_scoring import ReferenceScorer

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


def suite_scale() -> None:
    """Greedy generation against teacher forcing for one model (the shipped policy) on the suite's held-out
    problems: what each of a suite swap's ~26 scorings costs, and whether the outcomes agree."""
    with tempfile.TemporaryDirectory() as out:
        script, config = recipe.parse(
            ["--config", str(RECIPE)], output_dir=out, report_to="none", task_mix="climb", eval_size=1000,
            max_completion_length=10, report_test_size=0,
        )  # fmt: skip
        trainer = recipe.build_trainer(script, config)
    rows = list(trainer.eval_dataset)
    timed = {}
    for name, scorer in [
        ("greedy generation", AcceptanceScorer(trainer, rows, samples=1, seed=0, greedy=True)),
        ("teacher-forced (exact_greedy)", ReferenceScorer(trainer, rows, seed=0, greedy=True)),
    ]:
        began = time.perf_counter()
        timed[name] = (scorer.evaluate(), time.perf_counter() - began)
    (generated, t_gen), (forced, t_forced) = timed.values()
    agree = sum(a == b for a, b in zip(generated.per_prompt, forced.per_prompt, strict=True))
    print("\n== one model on the reproduction suite's 1,000 held-out problems (5- and 9-letter lists)")
    for name, (result, seconds) in timed.items():
        print(f"{name:<32} {seconds:>7.2f} s  accuracy {result.mean:.3f}  tokens {result.tokens}")
    print(
        f"teacher forcing {t_gen / t_forced:.1f}x faster; outcomes agree on {agree} of {len(rows)} problems "
        f"(a suite swap scores W_K and ~26 candidates: ~{27 * t_gen:.0f} s generating, "
        f"~{27 * t_forced:.0f} s teacher-forced)"
    )


def main() -> None:
    started = time.perf_counter()
    torch.set_num_threads(1)
    suite_scale()
    full_name, greedy_name = "sampled, full, every candidate (before)", "greedy, full, 256 prompts"
    sampled = dict(alpharl_acceptance_scoring="sampled")  # the recipe scores exact: the old gate sampled
    runs = {
        full_name: swap_of(**sampled, alpharl_acceptance_duplicates=0.0),
        "sampled, full, collapsed": swap_of(**sampled),
        "sampled, race, collapsed": swap_of(**sampled, alpharl_acceptance_rule="race"),
        "exact, full, collapsed (the recipe)": swap_of(),
        "exact, race, collapsed": swap_of(alpharl_acceptance_scoring="exact", alpharl_acceptance_rule="race"),
        "exact, race, 2 finalists at 64": swap_of(
            alpharl_acceptance_scoring="exact", alpharl_acceptance_rule="race", alpharl_acceptance_finalists=2
        ),
        greedy_name: swap_of(alpharl_acceptance_scoring="greedy", alpharl_acceptance_prompts=256),
        "exact_greedy, full, 256 prompts": swap_of(
            alpharl_acceptance_scoring="exact_greedy", alpharl_acceptance_prompts=256
        ),
    }
    print("\n== the acceptance gate at the main job's window (step 60)")
    print(
        f"{'gate':<40} {'scored':>6} {'prompts':>8} {'completions':>11} {'tokens':>8} {'steps/tokens':>12} "
        f"{'steps/FLOPs':>11} {'steps/time':>10}  decision"
    )
    for name, swap in runs.items():
        c = swap.cost
        print(
            f"{name:<40} {len(swap.candidates):>6} {c['prompts']:>8} {c['completions']:>11} {c['tokens']:>8} "
            f"{c['steps_by_tokens']:>12.1f} {c['steps_by_flops']:>11.1f} {c['steps_by_seconds']:>10.1f}  "
            f"{swap.chosen or 'keep W_K'}"
        )
    print()
    for name, swap in runs.items():
        ref_name = greedy_name if "greedy" in name else full_name
        if name == ref_name:
            continue
        ref = runs[ref_name]
        score = ref.scores.get(swap.chosen) if swap.chosen else ref.scores["current"]
        best = ref.scores.get(ref.chosen) if ref.chosen else ref.scores["current"]
        within = score is not None and best - score <= ref.margin
        seconds = ref.cost["seconds"] / swap.cost["seconds"]
        print(
            f"{name}: {seconds:.1f}x less time than '{ref_name}'; decision "
            f"{'the same' if swap.chosen == ref.chosen else 'different'} (its score there {score:.4f}, that "
            f"gate's own pick {best:.4f}: {'within' if within else 'outside'} the margin {ref.margin:g})"
        )
    for name, swap in runs.items():
        if swap.eliminated:
            print(f"{name}: dropped early:", "; ".join(f"{k} ({v})" for k, v in swap.eliminated.items()))
    print(f"\nbench_gate total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
