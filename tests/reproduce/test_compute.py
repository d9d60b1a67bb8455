"""Every row's cost as compute (`reproduce.compute`) and the truncated run at that compute."""

from __future__ import annotations

import argparse

import pytest

from alpharl_trainer.commands.reproduce import _shard
from alpharl_trainer.reproduce import compute
from alpharl_trainer.trainer.swap import FORWARDS_PER_TRAINED_TOKEN


def test_a_row_costs_its_steps_plus_its_choices_scoring_or_the_products_gate():
    rows = [
        {"method": "truncated", "cost": 30},
        {"method": "expo", "cost": 30, "scored": 8},
        {"method": "default", "cost": 30},
        {"method": "default+jumps", "cost": 90},
        {"method": "relex", "cost": 30, "error": "too short"},
    ]
    heldout_tokens, step_tokens = 20_000, 5_000.0
    gates = {"default": 12.5, "default+jumps": None}
    compute.price(rows, heldout_tokens, step_tokens, gates)
    per_set = heldout_tokens / (FORWARDS_PER_TRAINED_TOKEN * step_tokens)  # 1 step per weight set scored
    assert rows[0]["compute"] == 30
    assert rows[1]["compute"] == pytest.approx(30 + 8 * per_set)
    assert rows[2]["compute"] == 42.5
    assert "compute" not in rows[3] and "compute" not in rows[4]  # no gate measure; failed row
    unpriced = [{"method": "expo", "cost": 30, "scored": 8}]
    compute.price(unpriced, heldout_tokens, None, gates)
    assert "compute" not in unpriced[0]  # without a training step's token count, no guess


def test_gate_steps_sums_every_jump_and_refuses_a_missing_measure():
    assert compute.gate_steps([{"cost": {"steps_by_flops": 2.0}}, {"cost": {"steps_by_flops": 3.5}}]) == 5.5
    assert compute.gate_steps([{"cost": {"steps_by_flops": 2.0}}, {"cost": {}}]) is None


def test_the_truncated_run_at_equal_compute_is_the_first_checkpoint_at_or_beyond_it():
    assert compute.checkpoint_at(30.0, 5, 300) == 30
    assert compute.checkpoint_at(30.2, 5, 300) == 35
    assert compute.checkpoint_at(41.0, 5, 300) == 45
    assert compute.checkpoint_at(400.0, 5, 300) == 300


def test_every_seed_pairs_with_its_own_checkpoint_under_one_key():
    res = {
        "rows": [
            {"method": "default", "window_step": 30, "compute_step": 45},
            {"method": "lawa", "window_step": 30},
        ],
        "per_problem": {"default@30": [1, 0], "checkpoint@45": [0, 1]},
    }
    paired = compute.with_equal_compute(res)
    assert paired["per_problem"][compute.equal_compute_key("default", 30)] == [0, 1]
    assert compute.equal_compute_key("lawa", 30) not in paired["per_problem"]
    assert len(res["per_problem"]) == 2  # the result itself untouched (a resumed suite reads it again)


def test_shard_argument():
    assert _shard("1/2") == (1, 2)
    for bad in ("2/2", "a/2", "1", "-1/2"):
        with pytest.raises(argparse.ArgumentTypeError):
            _shard(bad)
