"""`alpharl train RECIPE.yaml [--field value ...]`: run a recipe in this process.

A recipe configures a whole RL run: the policy, the task and its rewards, the TRL trainer (GRPO and its
DAPO/Dr. GRPO/GSPO loss settings, RLOO, PPO) and AlphaRL (rank-1 snapshots during a window, a forecast of
where the weights are heading, candidate jumps scored on held-out prompts, a hot-swap or a rollback). Any
field can be overridden with a flag. At the end it prints what happened (the gate's decision; with
`report_test_size`, test accuracy of the base, the window end, the applied forecast and the final model,
paired against the truncated run) and writes `OUTPUT_DIR/alpharl/summary.json`.

For several processes or DeepSpeed, launch the same module with accelerate:
`accelerate launch --config_file configs/ddp.yaml -m alpharl_trainer.train --config RECIPE.yaml`.
`alpharl train --dry-run RECIPE` prints the resolved plan (batches, AlphaRL window, memory per GPU) and checks
it without loading weights (docs/scale.md).
"""

from __future__ import annotations

import argparse

from alpharl_trainer import plan


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", help="YAML recipe (e.g. recipes/tiny/grpo.yaml)")
    parser.add_argument(
        "overrides",
        nargs=argparse.REMAINDER,
        help="any recipe field as a flag, overriding the recipe (e.g. --max_steps 50 --alpharl_interval 5)",
    )
    plan.add_plan_arguments(parser)


def run(args: argparse.Namespace) -> int:
    argv = ["--config", args.recipe, *args.overrides]
    if args.dry_run:  # plan flags may come before the recipe (parsed here) or after it (in overrides)
        options, rest = plan.pop_plan_args([*argv, "--dry-run"], defaults=plan.options_from(args))
        return plan.run(rest, options)
    from alpharl_trainer.train import main

    return main(argv)
