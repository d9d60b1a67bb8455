"""results.csv arithmetic on a hand-made result: gain share, speed-up, window share, a failed row."""

from __future__ import annotations

import pytest

from alpharl_trainer.reproduce.table import flat_rows, gain_share, render_csv
from tests.reproduce.hand_made_result import hand_made_result


def test_gain_share_and_speedup():
    res = hand_made_result()
    assert gain_share(0.59, res) == pytest.approx(0.95)
    assert gain_share(0.4, {**res, "admission": {"gain": 0.0}}) is None  # no gain to share
    flat = {(r["window_step"], r["method"]): r for r in flat_rows([res])}
    assert flat[(10, "default+ft")]["speedup"] == pytest.approx(40 / 14)
    assert flat[(10, "default")]["window"] == pytest.approx(0.25)
    assert flat[(10, "alpharl_paper")]["gain_share"] is None
    assert "no fit" in render_csv([res])
