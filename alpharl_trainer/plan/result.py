"""The plan of a dry run: what `make_plan` resolves, the estimates fill in and the report prints.

In a module of its own so that the estimates and the report read it without importing the planner, which
imports them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from alpharl_trainer.plan.launch import Launch
from alpharl_trainer.plan.model_size import ModelSize


@dataclass
class Plan:
    recipe: str
    trainer: str
    values: dict
    launch: Launch
    model: ModelSize | None
    batch: dict = field(default_factory=dict)
    alpharl: dict | None = None
    memory: dict[str, float] = field(default_factory=dict)
    """GiB per GPU by item (training peak), plus 'cpu_per_node_at_swap'."""
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
