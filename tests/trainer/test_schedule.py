"""The schedule: window ends, snapshot steps and forecast targets are whole steps, each later window has the
first one's length and offsets, and the stop step follows the last jump's fine-tune."""

from __future__ import annotations

import pytest

from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.trainer.config import AlphaRLConfig
from alpharl_trainer.trainer.schedule import target_steps, window_length


@pytest.mark.parametrize(
    ("window_end", "max_steps", "end", "snapshots", "targets"),
    [
        (0.4, 150, 60, [10, 20, 30, 40, 50, 60], [75, 90, 120, 150]),
        (0.25, 100, 25, [10, 20, 25], [31, 38, 50, 63]),  # the README's DAPO example: whole steps
        (0.3, 10, 3, [1, 2, 3], [4, 5, 6, 8]),
        (36, 0, 36, [10, 20, 30, 36], [45, 54, 72, 90]),
    ],
)
def test_window_snapshots_and_candidates_are_whole_steps(window_end, max_steps, end, snapshots, targets):
    interval = 1 if max_steps == 10 else 10
    config = AlphaRLConfig(alpharl_window_end=window_end, alpharl_interval=interval)
    config.validate_alpharl(max_steps)
    schedule = config.schedule(max_steps)
    assert schedule.length == end and schedule.window_end() == end
    assert schedule.snapshot_steps() == snapshots
    assert schedule.targets() == targets


def test_repeated_targets_collapse_and_stay_beyond_the_window():
    assert target_steps([1.01, 1.02, 2.0], 10) == [11, 20]
    assert target_steps([1.5, 2.0], 30, start=10) == [40, 50]  # a later window: its own length, 20


def test_a_later_window_is_the_first_shifted_to_its_start():
    config = AlphaRLConfig(
        alpharl_window_end=6, alpharl_interval=2, alpharl_jumps=2, alpharl_finetune_steps=3
    )
    schedule = config.schedule(20)
    assert schedule.snapshot_steps(6) == [8, 10, 12] and schedule.window_end(6) == 12
    assert schedule.targets() == [8, 9, 12, 15] and schedule.targets(6) == [14, 15, 18, 21]
    assert schedule.jump_steps == [6, 12] and schedule.stop_step == 15
    assert AlphaRLConfig(alpharl_continue_after_swap=True).schedule(100).stop_step is None


def test_a_fractional_window_needs_the_run_length():
    assert window_length(0.25, 150) == 38  # half up, not 37
    with pytest.raises(AlphaRLError, match="needs max_steps > 0"):
        window_length(0.4, -1)
