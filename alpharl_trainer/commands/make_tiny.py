"""`alpharl make-tiny`: rebuild the tiny SFT policy from code and compare it with the shipped one.

Recipes and tests use the policy shipped in the repository (`model_name_or_path: tiny`,
alpharl_trainer/policies/tiny), because a build is deterministic on one machine but not across machines.
This command rebuilds it from the recipe in alpharl_trainer/policies/build_tiny.py (or a variant: --task,
--steps, --seed) and reports how far the result is from the shipped policy: held-out accuracy on the
arithmetic RL mix, and whether the weights are identical. SFT stops once that accuracy reaches the recipe's
target, so a rebuild lands in the same regime even where its weights differ.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

from alpharl_trainer.commands.arg_types import positive_int
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
    parser.add_argument(
        "--steps", type=positive_int, default=None, help="SFT steps (default: the standard recipe)"
    )
    parser.add_argument("--batch-size", type=positive_int, default=None, help="SFT batch size")
    parser.add_argument("--seed", type=int, default=None, help="seed of the init and the SFT data")
    parser.add_argument(
        "--threads",
        type=positive_int,
        default=1,
        help="torch CPU threads (default 1: the fastest for this model, and the setting the shipped policy "
        "was built with)",
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

    from alpharl_trainer.policies.build_tiny import TinyConfig, build_tiny_model, ensure_tiny_model

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
    else:
        recipe_file = args.out / "tiny_recipe.json"
        if recipe_file.exists():
            built = json.loads(recipe_file.read_text()).get("hash")
            if built != config.recipe_hash():
                raise AlphaRLError(
                    f"{args.out} holds another tiny recipe ({built}); remove it or use another --out"
                )
            print(f"{args.out}: up to date (recipe {built})")
            return 0
        start = time.time()
        out = build_tiny_model(args.out, config)
        print(f"wrote {out} (recipe {config.recipe_hash()}) in {time.time() - start:.0f}s")
    print(compare_to_shipped(out))
    return 0


def compare_to_shipped(folder: Path) -> str:
    """How far a build is from the shipped policy: recipe, held-out RL-mix accuracy, weights."""
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from alpharl_trainer.policies import shipped_policy
    from alpharl_trainer.policies.build_tiny import heldout_accuracy

    shipped = shipped_policy("tiny")
    accuracy = {}
    for name, path in (("this build", folder), ("shipped", shipped)):
        model = AutoModelForCausalLM.from_pretrained(path)
        accuracy[name] = heldout_accuracy(model, AutoTokenizer.from_pretrained(path))
    ours, theirs = (json.loads((p / "tiny_recipe.json").read_text())["hash"] for p in (folder, shipped))
    a, b = load_file(folder / "model.safetensors"), load_file(shipped / "model.safetensors")
    if a.keys() != b.keys() or any(a[k].shape != b[k].shape for k in a):
        weights = "other shapes"
    else:
        gap = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
        weights = "bit-identical" if gap == 0 else f"differ (largest difference {gap:.3g})"
    return (
        f"against the shipped policy (recipe {theirs}; this build: {ours}): held-out accuracy on the "
        f"arithmetic RL mix {accuracy['this build']:.3f} vs {accuracy['shipped']:.3f}; weights {weights}"
    )
