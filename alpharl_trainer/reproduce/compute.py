"""Every row's cost as compute: training-step equivalents by forward passes, the unit of the product's swap
record (`trainer.swap`, `steps_by_flops`), so that a method is compared with the truncated run at equal
compute as well as at equal steps.

A row costs the RL steps its weights trained, plus every held-out scoring its choice made: one weight set
scored on the held-out problems reads each prompt and gold completion once (teacher-forced, one forward pass
per token, as the product's exact gate counts them), and a training step costs
`FORWARDS_PER_TRAINED_TOKEN` forward passes per token it saw. The product's rows carry their gate's own count
(every jump's, for `default+jumps`). The forecasts' arithmetic (SVDs, fits: seconds on the CPU, no forward
pass) is left out for every method alike; the report gives the product's seconds beside it.
"""

from __future__ import annotations

import math

from alpharl_trainer.trainer.swap import FORWARDS_PER_TRAINED_TOKEN

PRODUCT = ("default", "default+ft", "default+jumps")


def scoring_steps(weight_sets: int, heldout_tokens: int, step_tokens: float) -> float:
    """Training-step equivalents of scoring `weight_sets` weight sets on held-out problems of
    `heldout_tokens` tokens in all."""
    return weight_sets * heldout_tokens / (FORWARDS_PER_TRAINED_TOKEN * step_tokens)


def gate_steps(swaps: list[dict]) -> float | None:
    """The product's gates' cost (sum over its jumps), None where a swap record has no measure."""
    costs = [(s.get("cost") or {}).get("steps_by_flops") for s in swaps]
    return None if any(c is None for c in costs) else float(sum(costs))


def price(rows: list[dict], heldout_tokens: int, step_tokens: float | None, gates: dict[str, float | None]):
    """Give each row `compute` (training-step equivalents): its `cost` (steps) plus its choice's scoring
    (`scored` weight sets on held-out) or, for the product's rows, its gate's (`gates`: method -> steps).
    Without a training step's token count (`step_tokens` None) the rows get no `compute`."""
    if not step_tokens:
        return
    for row in rows:
        if "error" in row:
            continue
        if row["method"] in PRODUCT:
            extra = gates.get(row["method"])
            if extra is None:
                continue
        else:
            extra = scoring_steps(row.get("scored", 0), heldout_tokens, step_tokens)
        row["compute"] = row["cost"] + extra


def checkpoint_at(compute: float, every: int, total: int) -> int:
    """The full run's first saved checkpoint at or beyond `compute` steps (the truncated run given at least
    the same compute), at most the run's last."""
    return min(total, every * math.ceil(compute / every - 1e-9))


def equal_compute_key(method: str, end: int) -> str:
    """The outcome key of the truncated run at the compute of `method`'s row at window end `end`."""
    return f"truncated~{method}@{end}"


def with_equal_compute(res: dict) -> dict:
    """A copy of `res` (itself untouched) with, per row priced as compute, the full run's checkpoint at that
    compute under `equal_compute_key` in its test outcomes: one key for every seed of a cell, though each
    seed's row may cost a different number of steps, so the over-seeds comparisons pair them as any other."""
    outcomes = dict(res.get("per_problem", {}))
    for row in res["rows"]:
        checkpoint = outcomes.get(f"checkpoint@{row.get('compute_step')}")
        if checkpoint is not None:
            outcomes[equal_compute_key(row["method"], row["window_step"])] = checkpoint
    return {**res, "per_problem": outcomes}
