"""The gate's decision at the window end: which candidate to apply, if any, and how to say so in one line."""

from __future__ import annotations

import math


def choose(scores: dict[str, float], targets: list[float], margin: float) -> float | None:
    """The target whose score beats the current weights' by more than `margin` and is highest (the first
    such on a tie), or None (rollback) when none does. A NaN score never wins."""
    best, chosen = scores["current"] + margin, None
    if math.isnan(best):
        return None
    for target in targets:
        score = scores[f"{target:g}"]
        if score > best:  # False for NaN
            best, chosen = score, target
    return chosen


def describe_decision(swap: dict) -> str:
    """The gate's decision in one line, e.g. 'AlphaRL at step 60: applied the forecast to step 150 (held-out
    reward 0.361 vs 0.344 for the current weights, margin 0.01; others: 75 0.350, ...)'. Targets are steps,
    or reward levels with the reward covariate."""
    scores = dict(swap["scores"])
    current = scores.pop("current", None)
    unit = "step" if swap.get("covariate", "step") == "step" else "reward"
    others = ", ".join(f"{unit} {k} {v:.3f}" for k, v in scores.items())
    head = f"AlphaRL at step {swap['step']}: "
    if current is None:
        return head + f"applied the forecast to {unit} {swap['chosen']:g} unscored (acceptance gate off)"
    if swap["chosen"] is None:
        return head + (
            f"rollback: kept the current weights (held-out reward {current:.3f}); no candidate beat them "
            f"by more than the margin {swap['margin']:g} (candidates: {others})"
        )
    won = scores[f"{swap['chosen']:g}"]
    return head + (
        f"applied the forecast to {unit} {swap['chosen']:g} (held-out reward {won:.3f} vs {current:.3f} for "
        f"the current weights, margin {swap['margin']:g}; candidates: {others})"
    )
