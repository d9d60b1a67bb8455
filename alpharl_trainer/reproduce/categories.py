"""What a gain is made of: the test problems' categories (sort: the list length, `len5`; arithmetic: the digit
counts, `3+2`). Every run records them once, in the test split's order (`test_categories`, beside the
per-problem outcomes; outcomes.npz keeps them as one packed 0/1 mask per category).
"""

from __future__ import annotations

from alpharl_trainer.reproduce.config import RunSpec, Suite
from alpharl_trainer.tasks import get_task


def split_categories(spec: RunSpec, suite: Suite) -> list[str]:
    """The categories of the run's test problems, in the split's order: the problems `Evaluator` scores (the
    regime's mix, seed 0), drawn again without a model (for results saved before they were recorded)."""
    task = get_task(spec.task, mix=suite.regimes[spec.regime].mix)
    return [p.category for p in task.problems("test", suite.eval.test_problems, seed=0)]


def with_categories(res: dict, spec: RunSpec, suite: Suite) -> dict:
    """`res` with its `test_categories` (drawn again if the saved result predates them)."""
    if "test_categories" not in res:
        res["test_categories"] = split_categories(spec, suite)
    return res
