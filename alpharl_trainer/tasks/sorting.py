"""Sorting a short list of lowercase letters: the non-math task.

Prompt `"sort qbkeb:"`, completion `"bbekq"`, gold answer `"bbekq"`. Categories are list lengths
(`"len6"`). It shares no skill with addition, so a model RL-trained on arithmetic can be scored on it
to see whether an extrapolated update damages what the RL never touched (reported to collapse off
math). Mixes: `sft` mostly lists of 3-5 letters with a few percent of 6-7, `rl` lists of 6-7,
`all` uniform.
"""

from __future__ import annotations

import random
import re
import string
from dataclasses import dataclass, field

from alpharl_trainer.tasks.base import Problem
from alpharl_trainer.tasks.splits import parse_mix, pick_category, sample_problems

MIN_LEN, MAX_LEN = 3, 9
CATEGORIES = tuple(f"len{k}" for k in range(MIN_LEN, MAX_LEN + 1))
_EASY = ("len3", "len4", "len5")
_HARD = ("len6", "len7")
HARD_SHARE_IN_SFT = 0.04

MIXES: dict[str, dict[str, float]] = {
    "sft": {
        **{c: (1 - HARD_SHARE_IN_SFT) / len(_EASY) for c in _EASY},
        **{c: HARD_SHARE_IN_SFT / len(_HARD) for c in _HARD},
    },
    "rl": {c: 1.0 for c in _HARD},
    "climb": {"len5": 1.0, "len9": 3.0},
    "all": {c: 1.0 for c in CATEGORIES},
}

_LETTERS_ONLY = re.compile(r"[a-z]+")


@dataclass
class SortTask:
    """Sort 3..9 lowercase letters (repeats allowed) alphabetically."""

    mix: str | dict[str, float] = "all"
    name: str = field(default="sort", init=False)
    unique_completion: bool = field(default=True, init=False)
    """The verifier accepts the gold solution and no other completion (whitespace around it aside)."""

    def __post_init__(self) -> None:
        self.mix = parse_mix(self.name, self.mix, MIXES, CATEGORIES)

    def make(self, letters: str) -> Problem:
        """The problem of sorting `letters` in this task's format."""
        answer = "".join(sorted(letters))
        return Problem(
            prompt=f"sort {letters}:", answer=answer, solution=answer, category=f"len{len(letters)}"
        )

    def _draw(self, rng: random.Random) -> Problem:
        length = int(pick_category(rng, self.mix).removeprefix("len"))
        return self.make("".join(rng.choices(string.ascii_lowercase, k=length)))

    def problems(self, split: str, n: int, seed: int = 0) -> list[Problem]:
        return sample_problems(self.name, self._draw, split, n, seed)

    def extract_answer(self, completion: str) -> str | None:
        """The stated letters; None unless the completion is lowercase letters only (whitespace aside)."""
        text = completion.strip()
        return text if _LETTERS_ONLY.fullmatch(text) else None

    def score(self, completion: str, answer: str) -> float:
        return 1.0 if self.extract_answer(completion) == answer else 0.0
