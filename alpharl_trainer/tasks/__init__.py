"""Verifiable tasks: a registry by name, and conversion to the dataset format TRL's GRPOTrainer reads."""

from __future__ import annotations

from collections.abc import Callable

from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.tasks.arithmetic import ArithmeticTask
from alpharl_trainer.tasks.base import SPLITS, Problem, Task
from alpharl_trainer.tasks.sorting import SortTask

_REGISTRY: dict[str, Callable[..., Task]] = {"arithmetic": ArithmeticTask, "sort": SortTask}
TASKS = tuple(_REGISTRY)

__all__ = ["SPLITS", "TASKS", "Problem", "Task", "get_task", "to_dataset"]


def get_task(name: str, **options) -> Task:
    """The task called `name`, built with `options` (e.g. `mix="rl"`)."""
    if name not in _REGISTRY:
        raise AlphaRLError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}")
    try:
        return _REGISTRY[name](**options)
    except TypeError as err:
        raise AlphaRLError(f"task {name!r}: bad options {options}: {err}") from err


def to_dataset(task: Task, split: str, n: int, seed: int = 0):
    """`n` problems of `split` as a `datasets.Dataset` with columns `prompt`, `answer`, `category`.

    Plain-string prompts: TRL's "standard" (non-conversational) format; reward functions receive
    `answer` and `category` as keyword arguments.
    """
    import datasets  # heavy; only callers that build datasets pay for it

    problems = task.problems(split, n, seed)
    return datasets.Dataset.from_dict(
        {
            "prompt": [p.prompt for p in problems],
            "answer": [p.answer for p in problems],
            "category": [p.category for p in problems],
        }
    )
