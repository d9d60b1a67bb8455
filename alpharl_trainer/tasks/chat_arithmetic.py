"""Arithmetic asked in a chat, for a pretrained instruction-tuned policy (e.g. `smollm2-135m`).

The user asks "What is 47 + 38? Answer with the number only."; the completion is free text, and the
verifier reads its last number. A small pretrained chat model has latent but unreliable ability here: it
often computes the right number but buries it in prose past the token budget, or slips on a carry. That is
the regime the AlphaRL paper studies (RL elicits what the base already half knows), not the tiny policy's
(RL teaches a new skill).

Categories (one operation each): `add` two 2-digit numbers, `sub` a 2-digit minus a smaller number,
`mul` 2..12 times 2..9, `word` a one-step word problem. The mix `rl` is add, sub and mul, where the base
scores about 0.2 greedy and about half the sampled groups of 8 have reward variance; `word` is kept for
the off-task check and the category report.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

from alpharl_trainer.tasks.base import Problem
from alpharl_trainer.tasks.splits import parse_mix, pick_category, sample_problems

CATEGORIES = ("add", "sub", "mul", "word")
MIXES: dict[str, dict[str, float]] = {
    "rl": {"add": 1.0, "sub": 1.0, "mul": 1.0},
    "word": {"word": 1.0},
    "all": {c: 1.0 for c in CATEGORIES},
}
INSTRUCTION = "Answer with the number only."
_NAMES = ("Tom", "Anna", "Sam", "Lily", "Ben", "Mia", "Jack", "Emma", "Leo", "Zoe")
_ITEMS = ("apples", "pencils", "books", "cookies", "marbles", "stickers", "cards", "balls")
# A signed integer, thousands commas allowed ("1,024"); a decimal point ends it ("3.5" reads as 3 and 5).
_INTEGER = re.compile(r"-?\d+(?:,\d{3})*(?!\d)")


def _operation(rng: random.Random, category: str) -> tuple[str, int]:
    if category == "add":
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        return f"What is {a} + {b}?", a + b
    if category == "sub":
        a, b = rng.randint(20, 99), rng.randint(2, 19)
        return f"What is {a} - {b}?", a - b
    if category == "mul":
        a, b = rng.randint(2, 12), rng.randint(2, 9)
        return f"What is {a} * {b}?", a * b
    name, item, kind = rng.choice(_NAMES), rng.choice(_ITEMS), rng.randint(0, 3)
    if kind == 0:
        a, b = rng.randint(5, 60), rng.randint(3, 40)
        return f"{name} has {a} {item} and gets {b} more. How many {item} does {name} have now?", a + b
    if kind == 1:
        a = rng.randint(20, 90)
        b = rng.randint(3, a - 5)
        return f"{name} has {a} {item} and gives away {b}. How many {item} does {name} have left?", a - b
    if kind == 2:
        a, b = rng.randint(2, 9), rng.randint(2, 12)
        return f"{name} has {a} boxes with {b} {item} in each. How many {item} are there in total?", a * b
    b, c = rng.randint(2, 9), rng.randint(2, 10)
    return f"{name} shares {b * c} {item} equally among {b} friends. How many does each friend get?", c


@dataclass
class ChatArithmeticTask:
    """One-operation arithmetic as a one-turn chat; see the module docstring."""

    mix: str | dict[str, float] = "rl"
    name: str = field(default="chat-arithmetic", init=False)
    chat: bool = field(default=True, init=False)
    """Prompts are user messages: datasets carry them conversationally and the chat template renders them."""

    def __post_init__(self) -> None:
        self.mix = parse_mix(self.name, self.mix, MIXES, CATEGORIES)

    def _draw(self, rng: random.Random) -> Problem:
        category = pick_category(rng, self.mix)
        question, answer = _operation(rng, category)
        return Problem(f"{question} {INSTRUCTION}", str(answer), str(answer), category)

    def problems(self, split: str, n: int, seed: int = 0) -> list[Problem]:
        return sample_problems(self.name, self._draw, split, n, seed)

    def extract_answer(self, completion: str) -> str | None:
        """The last integer the completion states (commas between thousands dropped), or None."""
        found = _INTEGER.findall(completion)
        return str(int(found[-1].replace(",", ""))) if found else None

    def score(self, completion: str, answer: str) -> float:
        return 1.0 if self.extract_answer(completion) == answer else 0.0
