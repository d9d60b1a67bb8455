"""Verifiable tasks: a registry by name, and conversion to the dataset format TRL's GRPOTrainer reads."""

from __future__ import annotations

from collections.abc import Callable

from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.tasks.arithmetic import ArithmeticTask
from alpharl_trainer.tasks.base import SPLITS, Problem, Task
from alpharl_trainer.tasks.chat_arithmetic import ChatArithmeticTask
from alpharl_trainer.tasks.sorting import SortTask

_REGISTRY: dict[str, Callable[..., Task]] = {
    "arithmetic": ArithmeticTask,
    "sort": SortTask,
    "chat-arithmetic": ChatArithmeticTask,
}
TASKS = tuple(_REGISTRY)

__all__ = ["SPLITS", "TASKS", "Problem", "Task", "get_task", "is_chat", "to_dataset"]


def get_task(name: str, **options) -> Task:
    """The task called `name`, built with `options` (e.g. `mix="rl"`)."""
    if name not in _REGISTRY:
        raise AlphaRLError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}")
    try:
        return _REGISTRY[name](**options)
    except TypeError as err:
        raise AlphaRLError(f"task {name!r}: bad options {options}: {err}") from err


def is_chat(task: Task | None) -> bool:
    """Whether the task's prompts are user messages of a chat (rendered with the policy's chat template)."""
    return bool(getattr(task, "chat", False))


def to_dataset(task: Task, split: str, n: int, seed: int = 0):
    """`n` problems of `split` as a `datasets.Dataset` with columns `prompt`, `answer`, `category`, and
    `reference` (the gold completion) for a task whose verifier accepts that completion alone.

    Prompts in TRL's "standard" format (plain strings) or, for a chat task, its "conversational" one (a list
    holding one user message, which TRL renders with the tokenizer's chat template); reward functions receive
    `answer` and `category` as keyword arguments.
    """
    import datasets  # heavy; only callers that build datasets pay for it

    problems = task.problems(split, n, seed)
    chat = is_chat(task)
    columns = {
        "prompt": [[{"role": "user", "content": p.prompt}] if chat else p.prompt for p in problems],
        "answer": [p.answer for p in problems],
        "category": [p.category for p in problems],
    }
    if getattr(task, "unique_completion", False):  # the gate's exact scoring reads it (reference_scoring.py)
        columns["reference"] = [p.solution for p in problems]
    return datasets.Dataset.from_dict(columns)
