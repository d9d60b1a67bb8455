"""Paired differences against the truncated run: known answers, the verdict, and the stage table."""

from __future__ import annotations

import math

import pytest

from alpharl_trainer.run_report import Stage, format_stages, paired_diff, stage_table


def test_paired_difference_known_answer():
    # d = [0, -1, 1, 1]: mean 0.25, sample variance 11/12, half-width 1.96 * sqrt(11/12 / 4)
    diff = paired_diff([1, 1, 0, 0], [1, 0, 1, 1])
    half = 1.96 * math.sqrt(11 / 12 / 4)
    assert diff.diff == pytest.approx(0.25)
    assert (diff.low, diff.high) == pytest.approx((0.25 - half, 0.25 + half))
    assert "no significant difference" in str(diff)


def test_pairing_is_what_narrows_the_interval():
    """Two models that differ on 30 of 1,000 problems, all in b's favour: a clear win when paired, although
    the unpaired binomial errors (~0.016 each) would call +0.03 noise."""
    a = [True] * 500 + [False] * 500
    b = [True] * 530 + [False] * 470
    diff = paired_diff(a, b)
    assert diff.diff == pytest.approx(0.03) and diff.low > 0 and str(diff).endswith("(better)")
    assert str(paired_diff(b, a)).endswith("(worse)")
    same = paired_diff(a, a)
    assert (same.diff, same.low, same.high) == (0, 0, 0)


def test_unequal_or_empty_outcomes_are_refused():
    with pytest.raises(ValueError, match="equal, non-zero"):
        paired_diff([1, 0], [1])
    with pytest.raises(ValueError, match="equal, non-zero"):
        paired_diff([], [])


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
