"""The gate's decision at the window end: which candidate to apply, if any, and how to say so in one line."""

from __future__ import annotations

import math

from alpharl_trainer.stats import paired_se
from alpharl_trainer.trainer.candidates import describe, short


def best_over_bar(
    scores: dict[str, float],
    candidates: list[str],
    margin: float,
    *,
    per_prompt: dict[str, list[float]] | None = None,
    margin_se: float = 0.0,
) -> str | None:
    """The gate's rule, for any candidates: the highest-scoring key of `candidates` (the first on a tie) among
    those that beat `scores["current"]` by more than `margin` plus, with `margin_se`, that many paired
    standard errors of the per-prompt difference (a bar that scales with the held-out set's noise); None
    (keep the current weights) when none does. NaN never wins. The reproduction suite chooses every
    baseline's knob with it too, so the product and the baselines are held to one bar."""
    current, chosen, best = scores["current"], None, -math.inf
    if math.isnan(current):
        return None
    for key in candidates:
        bar = current + margin
        if margin_se > 0:
            bar += margin_se * paired_se(per_prompt["current"], per_prompt[key])
        if scores[key] > bar and scores[key] > best:  # False for NaN
            best, chosen = scores[key], key
    return chosen


def describe_decision(swap: dict) -> str:
    """The gate's decision in one line, e.g. 'AlphaRL at step 60: applied the forecast to step 150 (held-out
    reward 0.361 vs 0.344 for the current weights, margin 0.01; others: 75 0.350, ...)'. Candidates are
    labelled (`candidates.py`): a rank-1 candidate by its target, a step or a reward level with the reward
    covariate."""
    scores = dict(swap["scores"])
    current = scores.pop("current", None)
    unit = "step" if swap.get("covariate", "step") == "step" else "reward"
    head = f"AlphaRL at step {swap['step']}: "
    return head + _decision(swap, scores, current, unit) + _dropped(swap)


def _dropped(swap: dict) -> str:
    """The candidates left out for NaN or inf weights (they score NaN), for the end of the decision line."""
    dropped = swap.get("dropped") or []
    return f"; dropped for NaN or inf weights: {', '.join(dropped)}" if dropped else ""


def _decision(swap: dict, scores: dict[str, float], current: float | None, unit: str) -> str:
    """What was decided, after the line's head; `scores` are the candidates' (`current` apart)."""
    others = ", ".join(f"{short(k, unit)} {v:.3f}" for k, v in scores.items())
    chosen = swap["chosen"]
    if current is None:
        if chosen is None:
            refused = f": refused {swap['refused']}" if swap.get("refused") else ""
            return f"kept the current weights unscored (acceptance gate off){refused}"
        return f"applied {describe(chosen, unit)} unscored (acceptance gate off)"
    bar = f"the margin {swap['margin']:g}"
    if swap.get("margin_se"):
        bar += f" + {swap['margin_se']:g} paired SE"
    if chosen is None:
        return (
            f"rollback: kept the current weights (held-out reward {current:.3f}); no candidate beat them "
            f"by more than {bar} (candidates: {others})"
        )
    return (
        f"applied {describe(chosen, unit)} (held-out reward {scores[chosen]:.3f} vs {current:.3f} for "
        f"the current weights, {bar}; candidates: {others})"
    )
