"""A user's own reward, as a recipe names it by dotted path (`tests.custom_rewards.short_answer_reward`)."""

from __future__ import annotations

NOT_A_FUNCTION = 3


def short_answer_reward(completions: list, **kwargs) -> list[float]:
    """1 for a completion of at most 8 characters, else 0 (TRL's reward signature)."""
    texts = [c if isinstance(c, str) else c[-1]["content"] for c in completions]
    return [float(len(t) <= 8) for t in texts]
