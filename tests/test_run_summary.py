"""The run report's stage table: each stage's accuracy and its paired difference to its reference."""

from __future__ import annotations

import pytest

from alpharl_trainer.run_summary import Stage, format_stages, stage_table


def test_stage_table_compares_each_stage_with_its_reference():
    stages = [
        Stage("base policy", 0, [True, False, False, False]),
        Stage("truncated run", 70, [True, True, False, False], "base policy"),
        Stage("final", 70, [True, True, True, False], "truncated run"),
    ]
    rows = stage_table(stages)
    assert [r["accuracy"] for r in rows] == [0.25, 0.5, 0.75]
    assert "paired" not in rows[0] and rows[2]["vs"] == "truncated run"
    assert rows[2]["paired"]["diff"] == pytest.approx(0.25) and rows[2]["paired"]["n"] == 4
    lines = format_stages(rows)
    assert len(lines) == 3 and "final" in lines[2] and "vs truncated run: +0.250" in lines[2]


def test_a_stage_line_says_what_its_interval_says():
    """30 of 1,000 problems, all one way: a clear win paired (`stats.paired_normal`), a loss the other way."""
    a = [True] * 500 + [False] * 500
    b = [True] * 530 + [False] * 470
    stages = [Stage("truncated", 10, a), Stage("b", 10, b, "truncated"), Stage("a", 10, a, "b")]
    stages.append(Stage("again", 10, a, "truncated"))
    lines = format_stages(stage_table(stages))
    assert lines[1].endswith("+0.030 +- 0.011 (better)") and lines[2].endswith("(worse)")
    assert lines[3].endswith("+0.000 +- 0.000 (no significant difference)")
