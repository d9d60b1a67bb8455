"""The chat arithmetic task: prompts as user messages, the last integer as the answer, disjoint splits."""

from __future__ import annotations

import pytest

from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.tasks import get_task, is_chat, to_dataset
from alpharl_trainer.tasks.chat_arithmetic import CATEGORIES, INSTRUCTION


@pytest.mark.parametrize(
    ("completion", "stated"),
    [
        ("85", "85"),
        ("The answer is 85.", "85"),
        ("47 + 38 = 85", "85"),
        ("To solve this, we add 47 and 38", "38"),  # prose cut by the budget: its last number, wrong
        ("1,024 apples", "1024"),
        ("It is -7", "-7"),
        ("no number here", None),
        ("", None),
    ],
)
def test_the_stated_answer_is_the_last_integer(completion, stated):
    assert get_task("chat-arithmetic").extract_answer(completion) == stated


def test_score_is_exact_on_the_integer():
    task = get_task("chat-arithmetic")
    assert task.score("The answer is 85.", "85") == 1.0
    assert task.score("85.5", "85") == 0.0  # "85.5" states 5 last
    assert task.score("850", "85") == 0.0


def test_problems_have_the_right_answers_and_categories():
    task = get_task("chat-arithmetic", mix="all")
    problems = task.problems("train", 400, seed=1)
    assert {p.category for p in problems} == set(CATEGORIES)
    for p in problems:
        assert p.prompt.endswith(INSTRUCTION)
        if p.category != "word":
            a, op, b = p.prompt.removeprefix("What is ").split("?")[0].split()
            assert int(p.answer) == {"+": int(a) + int(b), "-": int(a) - int(b), "*": int(a) * int(b)}[op]


def test_splits_are_disjoint_and_deterministic():
    task = get_task("chat-arithmetic")
    train = {p.prompt for p in task.problems("train", 2000, 0)}
    test = {p.prompt for p in task.problems("test", 300, 0)}
    assert not train & test
    assert [p.prompt for p in task.problems("test", 50, 3)] == [
        p.prompt for p in task.problems("test", 50, 3)
    ]


def test_dataset_is_conversational_for_trl():
    from trl.data_utils import is_conversational

    task = get_task("chat-arithmetic")
    assert is_chat(task) and not is_chat(get_task("arithmetic"))
    data = to_dataset(task, "heldout", 4, 0)
    assert is_conversational(data[0])
    assert data[0]["prompt"][0]["role"] == "user"


def test_unknown_mix_is_refused():
    with pytest.raises(AlphaRLError, match="unknown mix"):
        get_task("chat-arithmetic", mix="hard")
