"""The targets on a hand-made result: the best within budget and the worst paired margins."""

from __future__ import annotations

import pytest

from alpharl_trainer.reproduce.table import flat_rows
from alpharl_trainer.reproduce.verdicts import targets
from tests.reproduce.hand_made_result import hand_made_result


def test_targets_pick_the_best_within_budget_and_the_worst_margins():
    res = hand_made_result()
    t = targets(res, flat_rows([res]))
    assert t["at40"]["method"] == "default" and t["at40"]["greedy"] == 0.59  # 0.595 @ 20 steps is over 40%
    assert t["at25"]["greedy"] == 0.58
    worst = t["worst_vs_truncated"]  # +0.08 at step 10, +0.04 at step 16: paired, 32 problems apart
    assert worst.diff == pytest.approx(0.04) and worst.low > 0 and worst.verdict == "better"
    assert t["min_off_task_vs_truncated"] == pytest.approx(-0.05)
    end, diff, name = min(t["vs_baselines"], key=lambda x: x[1].diff)
    assert (end, name) == (16, "step_linear") and diff.diff == pytest.approx(-0.01) and diff.high < 0
