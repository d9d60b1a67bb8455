"""results.csv arithmetic on a hand-made result: gain share, speed-up, window share, a failed row, and the
seed-level columns of a cell with several seeds."""

from __future__ import annotations

import csv
import io

import pytest

from alpharl_trainer.reproduce.table import SEED_COLUMNS, flat_rows, gain_share, render_csv
from tests.reproduce.hand_made_result import hand_made_result, hand_made_seeds


def test_gain_share_and_speedup():
    res = hand_made_result()
    assert gain_share(0.59, res) == pytest.approx(0.95)
    assert gain_share(0.4, {**res, "admission": {"gain": 0.0}}) is None  # no gain to share
    flat = {(r["window_step"], r["method"]): r for r in flat_rows([res])}
    assert flat[(10, "default+ft")]["speedup"] == pytest.approx(40 / 14)
    assert flat[(10, "default")]["window"] == pytest.approx(0.25)
    assert flat[(10, "alpharl_paper")]["gain_share"] is None
    assert "no fit" in render_csv([res])
    rows = list(csv.DictReader(io.StringIO(render_csv([res]))))
    assert all(row[c] == "" for row in rows for c in SEED_COLUMNS)  # one seed: no seed-level columns


def test_a_cell_of_several_seeds_gets_its_seed_level_columns_on_every_seed():
    rows = list(csv.DictReader(io.StringIO(render_csv(hand_made_seeds([0.08, -0.02, 0.01])))))
    default = [r for r in rows if r["method"] == "default" and r["window_step"] == "10"]
    assert len(default) == 3 and len({tuple(r[c] for c in SEED_COLUMNS) for r in default}) == 1
    row = default[0]
    assert row["cell_seeds"] == "3" and float(row["seed_diff"]) == pytest.approx(0.07 / 3, abs=1e-5)
    assert float(row["seed_ci_low"]) < 0 < float(row["seed_ci_high"]) and float(row["seed_p"]) > 0.4
    assert float(row["hier_ci_low"]) <= float(row["seed_diff"]) <= float(row["hier_ci_high"])
    assert 0 < float(row["seeds_problem_ci_low"]) < float(row["seeds_problem_ci_high"])
    failed = [r for r in rows if r["method"] == "alpharl_paper"]
    assert all(r[c] == "" for r in failed for c in SEED_COLUMNS)
