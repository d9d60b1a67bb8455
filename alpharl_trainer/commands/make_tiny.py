"""`alpharl make-tiny`: build the tiny character-level SFT policy into a folder."""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.tasks import TASKS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder to write (default: the shared cache <repo>/.cache/tiny-model-<recipe hash> that "
        "recipes with `model_name_or_path: tiny` and the tests use)",
    )
    parser.add_argument(
        "--task",
        default=None,
        help="SFT tasks with optional shares, e.g. 'arithmetic' or 'arithmetic=0.8,sort=0.2' "
        "(default: the standard recipe's mix)",
    )
    parser.add_argument("--steps", type=int, default=None, help="SFT steps (default: the standard recipe)")
    parser.add_argument("--batch-size", type=int, default=None, help="SFT batch size")
    parser.add_argument("--seed", type=int, default=None, help="seed of the init and the SFT data")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's, i.e. all cores)"
    )


def parse_tasks(text: str) -> dict[str, float]:
    """'arithmetic=0.8,sort=0.2' -> {'arithmetic': 0.8, 'sort': 0.2}; a bare name has share 1."""
    shares: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, share = item.partition("=")
        if name not in TASKS:
            raise AlphaRLError(f"--task: unknown task {name!r}; known tasks: {', '.join(TASKS)}")
        try:
            shares[name] = float(share) if share else 1.0
        except ValueError as err:
            raise AlphaRLError(f"--task: share of {name!r} must be a number, got {share!r}") from err
        if shares[name] <= 0:
            raise AlphaRLError(f"--task: share of {name!r} must be > 0")
    if not shares:
        raise AlphaRLError("--task: no task given")
    return shares


def run(args: argparse.Namespace) -> int:
    import torch

    from alpharl_trainer.tiny import TinyConfig, build_tiny_model, ensure_tiny_model

    overrides = {
        "tasks": parse_tasks(args.task) if args.task is not None else None,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "seed": args.seed,
    }
    for key in ("steps", "batch_size"):
        if overrides[key] is not None and overrides[key] < 1:
            raise AlphaRLError(f"--{key.replace('_', '-')} must be >= 1")
    config = dataclasses.replace(TinyConfig(), **{k: v for k, v in overrides.items() if v is not None})
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.out is None:
        start = time.time()
        out = ensure_tiny_model(config)
        print(f"tiny model ready at {out} (recipe {config.recipe_hash()}, {time.time() - start:.0f}s)")
        return 0
    recipe_file = args.out / "tiny_recipe.json"
    if recipe_file.exists():
        built = json.loads(recipe_file.read_text()).get("hash")
        if built == config.recipe_hash():
            print(f"{args.out}: up to date (recipe {built})")
            return 0
        raise AlphaRLError(f"{args.out} holds another tiny recipe ({built}); remove it or use another --out")
    start = time.time()
    out = build_tiny_model(args.out, config)
    print(f"wrote {out} (recipe {config.recipe_hash()}) in {time.time() - start:.0f}s")
    return 0
