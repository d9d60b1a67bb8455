"""When AlphaRL acts in a run: window ends, snapshot steps, candidate targets and the stop step.

One object answers for the callback (which acts at these steps), the planner (which prices them before any
weight is loaded) and the model card: the arithmetic lives nowhere else. Window `j` (from 0) starts at the
previous jump, `start = j x length`; every window has the first one's length and snapshot offsets.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from alpharl_trainer.errors import AlphaRLError


def window_length(window_end: float, max_steps: int) -> int:
    """`alpharl_window_end` as a whole step: itself when >= 1, else that share of `max_steps`, half up (0.25 x
    150 is step 38, not 37)."""
    if window_end < 1:
        if max_steps <= 0:
            raise AlphaRLError("a fractional alpharl_window_end needs max_steps > 0")
        window_end = window_end * max_steps
    return max(1, math.floor(window_end + 0.5))


def target_steps(horizons: Sequence[float], window_end: int, start: int = 0) -> list[int]:
    """Forecast steps of a window from `start` to `window_end`: each horizon times the window's length beyond
    its start, as a whole step after its end, in the order given, without repeats."""
    length = window_end - start
    steps = [max(window_end + 1, start + math.floor(h * length + 0.5)) for h in horizons]
    return list(dict.fromkeys(steps))


@dataclass(frozen=True)
class Schedule:
    """A run's AlphaRL steps (`AlphaRLConfig.schedule(max_steps)` builds it)."""

    max_steps: int
    length: int
    """Steps per window: the first window's end."""
    interval: int
    """Steps between snapshots."""
    jumps: int
    covariate: str
    horizons: tuple[float, ...]
    target_rewards: tuple[float, ...]
    finetune_steps: int
    continue_after_swap: bool

    def window_end(self, start: int = 0) -> int:
        """The step the window starting at `start` closes at."""
        return start + self.length

    def snapshot_steps(self, start: int = 0) -> list[int]:
        """Steps with a rank-1 snapshot in the window from `start`: every `interval` steps, and its end."""
        steps = list(range(start + self.interval, self.window_end(start) + 1, self.interval))
        return steps if steps and steps[-1] == self.window_end(start) else [*steps, self.window_end(start)]

    def targets(self, start: int = 0) -> list[float]:
        """The window's forecast targets in the covariate's units: whole steps, or the reward levels."""
        if self.covariate == "step":
            return [float(t) for t in target_steps(self.horizons, self.window_end(start), start)]
        return [float(r) for r in self.target_rewards]

    @property
    def jump_steps(self) -> list[int]:
        """The step of every jump."""
        return [j * self.length for j in range(1, self.jumps + 1)]

    @property
    def stop_step(self) -> int | None:
        """Where the run stops: the last jump plus the fine-tune, or None when it trains on to `max_steps`."""
        if self.continue_after_swap:
            return None
        return self.jumps * self.length + self.finetune_steps
