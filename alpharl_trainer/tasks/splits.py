"""Seeded, split-disjoint problem sampling shared by the synthetic tasks.

A problem's split is a pure function of its prompt (a stable hash), not of the seed or the mix it
was drawn from. So the train, held-out and test splits never share a problem, whatever difficulty
mix, seed or size each caller asks for: an SFT set drawn from an easy mix and an RL held-out set
drawn from a hard mix are disjoint too.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable

from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.tasks.base import SPLITS, Problem

# Share of the problem space owned by each split, in percent (train, heldout, test).
_SPLIT_PERCENT = (80, 10, 10)


def held_out_count(rows: int, eval_size: int) -> int:
    """Rows held out of a file or dataset of `rows` for the gate: `eval_size`, at most a fifth of them (the
    rest trains)."""
    return min(eval_size, rows // 5)


def split_of(prompt: str) -> str:
    """The split that owns `prompt` (stable across processes and Python versions)."""
    bucket = int.from_bytes(hashlib.blake2b(prompt.encode(), digest_size=8).digest(), "big") % 100
    if bucket < _SPLIT_PERCENT[0]:
        return "train"
    return "heldout" if bucket < _SPLIT_PERCENT[0] + _SPLIT_PERCENT[1] else "test"


def pick_category(rng: random.Random, mix: dict[str, float]) -> str:
    """A category drawn with probability proportional to its weight."""
    names = list(mix)
    return rng.choices(names, weights=[mix[c] for c in names])[0]


def sample_problems(
    task_name: str, draw: Callable[[random.Random], Problem], split: str, n: int, seed: int
) -> list[Problem]:
    """`n` problems of `split`: draws from a (task, split, seed) stream and keeps those the split owns.

    Problems may repeat inside a split (small categories have few problems); they never cross splits.
    """
    if split not in SPLITS:
        raise AlphaRLError(f"{task_name}: unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    if n < 0:
        raise AlphaRLError(f"{task_name}: number of problems must be >= 0, got {n}")
    rng = random.Random(f"{task_name}/{split}/{seed}")
    out: list[Problem] = []
    budget = 50 * n + 1000  # a split owns >= 10% of the space, so this only trips on a degenerate mix
    while len(out) < n:
        budget -= 1
        if budget < 0:
            raise AlphaRLError(f"{task_name}: could not draw {n} {split} problems from this mix")
        problem = draw(rng)
        if split_of(problem.prompt) == split:
            out.append(problem)
    return out


def parse_mix(
    task_name: str, mix: str | dict[str, float], presets: dict, categories: tuple[str, ...]
) -> dict:
    """Resolve a preset name or an explicit {category: weight} mapping, rejecting unknown categories."""
    if isinstance(mix, str):
        if mix not in presets:
            raise AlphaRLError(f"{task_name}: unknown mix {mix!r}; presets are {', '.join(presets)}")
        mix = presets[mix]
    unknown = [c for c in mix if c not in categories]
    if unknown or not mix or any(w < 0 for w in mix.values()) or sum(mix.values()) <= 0:
        raise AlphaRLError(
            f"{task_name}: bad mix {mix!r}; categories are {', '.join(categories)}, weights >= 0, sum > 0"
        )
    return dict(mix)
