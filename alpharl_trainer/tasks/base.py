"""What every verifiable task provides: problems with gold answers and worked solutions, and a verifier.

A task is the unit the testbed, the trainer recipes, evaluation and the reproduction harness share.
Splits are disjoint by construction (each generator derives a split's problems from its own seed
stream and filters out problems of other splits), so held-out numbers mean what they say.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

SPLITS = ("train", "heldout", "test")


@dataclass(frozen=True)
class Problem:
    prompt: str
    """Text fed to the policy, ending where the completion starts."""
    answer: str
    """Gold final answer, normalized as the verifier compares it."""
    solution: str
    """Worked completion for SFT: short reasoning, then the final answer, as the policy should write it."""
    category: str = ""
    """Difficulty bucket (e.g. '3+2' digits), for per-category reports."""
    meta: dict = field(default_factory=dict, compare=False, hash=False)


class Task(Protocol):
    name: str

    def problems(self, split: str, n: int, seed: int = 0) -> list[Problem]:
        """`n` problems of `split` (one of SPLITS), deterministic in (split, n, seed)."""
        ...

    def extract_answer(self, completion: str) -> str | None:
        """The final answer a completion states, or None when it states none."""
        ...

    def score(self, completion: str, answer: str) -> float:
        """Reward in [0, 1]: 1.0 exactly when the stated final answer equals the gold answer."""
        ...
