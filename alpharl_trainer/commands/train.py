"""`alpharl train RECIPE.yaml [--field value ...]`: run a recipe in this process.

For several processes or DeepSpeed, launch the same module with accelerate:
`accelerate launch --config_file configs/ddp.yaml -m alpharl_trainer.train --config RECIPE.yaml`.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", help="YAML recipe (e.g. recipes/tiny/grpo.yaml)")
    parser.add_argument(
        "overrides",
        nargs=argparse.REMAINDER,
        help="any recipe field as a flag, overriding the recipe (e.g. --max_steps 50 --alpharl_interval 5)",
    )


def run(args: argparse.Namespace) -> int:
    from alpharl_trainer.train import main

    return main(["--config", args.recipe, *args.overrides])
