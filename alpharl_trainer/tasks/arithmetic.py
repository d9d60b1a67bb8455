"""Multi-digit addition, answered least-significant digit first.

Prompt `"347+058="`, completion `"504"` (405 written backwards), gold answer `"405"`. Writing the sum
from the units digit up lets each output digit depend only on the operand digits at its position
and the carry just produced, the one order in which a tiny causal model can learn addition (a
normally written sum needs the carry chain before its first digit). The reversed digits are the
short worked chain: one digit and one carry per position. The shorter operand is zero-padded to the
longer one's width so digits of equal weight sit at a fixed distance: a tiny model then learns the
format within a few minutes of CPU SFT.

Categories are operand digit counts, e.g. `"4+3"`. Mixes: `sft` is mostly operands of up to 3
digits with a few percent of 4-digit ones; `rl` is 2+3, 3+2 and 3+3, where the default tiny SFT
policy is partially right (about half: RL has something to teach); `hard` the 4-digit categories
(the base is near 0 there); `all` uniform.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

from alpharl_trainer.tasks.base import Problem
from alpharl_trainer.tasks.splits import parse_mix, pick_category, sample_problems

MAX_DIGITS = 4
CATEGORIES = tuple(f"{a}+{b}" for a in range(1, MAX_DIGITS + 1) for b in range(1, MAX_DIGITS + 1))
_HARD = tuple(c for c in CATEGORIES if str(MAX_DIGITS) in c)
_EASY = tuple(c for c in CATEGORIES if c not in _HARD)
HARD_SHARE_IN_SFT = 0.04

MIXES: dict[str, dict[str, float]] = {
    "sft": {
        **{c: (1 - HARD_SHARE_IN_SFT) / len(_EASY) for c in _EASY},
        **{c: HARD_SHARE_IN_SFT / len(_HARD) for c in _HARD},
    },
    "rl": {"2+3": 1.0, "3+2": 1.0, "3+3": 1.0},
    "hard": {c: 1.0 for c in _HARD},
    "all": {c: 1.0 for c in CATEGORIES},
}

_DIGITS_ONLY = re.compile(r"[0-9]+")


def _operand(rng: random.Random, digits: int) -> int:
    return rng.randint(0 if digits == 1 else 10 ** (digits - 1), 10**digits - 1)


@dataclass
class ArithmeticTask:
    """Addition of two operands of 1..4 digits; see the module docstring for the format."""

    mix: str | dict[str, float] = "all"
    name: str = field(default="arithmetic", init=False)
    unique_completion: bool = field(default=True, init=False)
    """The verifier accepts the gold solution and no other completion (whitespace around it aside)."""

    def __post_init__(self) -> None:
        self.mix = parse_mix(self.name, self.mix, MIXES, CATEGORIES)

    def make(self, x: int, y: int) -> Problem:
        """The problem `x + y` in this task's format."""
        answer = str(x + y)
        width = max(len(str(x)), len(str(y)))
        return Problem(
            prompt=f"{x:0{width}d}+{y:0{width}d}=",
            answer=answer,
            solution=answer[::-1],
            category=f"{len(str(x))}+{len(str(y))}",
        )

    def _draw(self, rng: random.Random) -> Problem:
        a, b = (int(d) for d in pick_category(rng, self.mix).split("+"))
        return self.make(_operand(rng, a), _operand(rng, b))

    def problems(self, split: str, n: int, seed: int = 0) -> list[Problem]:
        return sample_problems(self.name, self._draw, split, n, seed)

    def extract_answer(self, completion: str) -> str | None:
        """The stated sum, un-reversed; None unless the completion is digits only (surrounding
        whitespace aside): a sign, a separator or trailing junk means no valid answer."""
        text = completion.strip()
        return text[::-1] if _DIGITS_ONLY.fullmatch(text) else None

    def score(self, completion: str, answer: str) -> float:
        # String comparison on purpose: a leading zero ("0405") is an extra digit, not the same answer.
        return 1.0 if self.extract_answer(completion) == answer else 0.0
