"""The gate's decision (margin, ties, NaN) and the window's whole steps, without a trainer."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest

from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.stats import paired_se
from alpharl_trainer.trainer.config import AlphaRLConfig
from alpharl_trainer.trainer.decision import SwapRecord, describe_decision
from alpharl_trainer.trainer.racing import best_over_bar

TARGETS = [75.0, 90.0, 150.0]
LABELS = [f"{t:g}" for t in TARGETS]


def choose(scores: dict[str, float], labels: list[str], margin: float, **bar) -> str | None:
    return best_over_bar(scores, labels, margin, **bar)


def scores(current: float, *values: float) -> dict[str, float]:
    return {"current": current, **{f"{t:g}": v for t, v in zip(TARGETS, values, strict=True)}}


def test_a_candidate_must_beat_the_current_weights_by_more_than_the_margin():
    assert choose(scores(0.500, 0.505, 0.520, 0.515), LABELS, 0.01) == "90"
    assert choose(scores(0.500, 0.505, 0.510, 0.502), LABELS, 0.01) is None  # +0.010 is not > 0.010
    one_completion = 1 / 512  # the win that applied a forecast in the first-run report
    assert choose(scores(0.5, 0.5 + one_completion, 0.5, 0.5), LABELS, 0.01) is None
    assert choose(scores(0.5, 0.5 + one_completion, 0.5, 0.5), LABELS, 0.0) == "75"


def test_ties_and_nan_roll_back():
    assert choose(scores(0.5, 0.5, 0.5, 0.5), LABELS, 0.0) is None  # a tie keeps the current weights
    assert choose(scores(0.5, 0.6, 0.6, 0.55), LABELS, 0.0) == "75"  # equal best: the first (shortest jump)
    assert choose(scores(0.5, math.nan, 0.7, math.nan), LABELS, 0.0) == "90"
    assert choose(scores(0.5, math.nan, math.nan, math.nan), LABELS, 0.0) is None
    assert choose(scores(math.nan, 0.9, 0.9, 0.9), LABELS, 0.0) is None  # nothing to compare with


def test_the_decision_reads_as_one_line():
    swap = SwapRecord(
        step=60, targets=[], scores=scores(0.322, 0.328, 0.334, 0.338), margin=0.01, chosen="150"
    )
    line = describe_decision(swap)
    assert "\n" not in line and line.startswith("AlphaRL at step 60: applied the forecast to step 150")
    assert "0.338 vs 0.322" in line and "margin 0.01" in line and "step 90 0.334" in line
    rolled = describe_decision(replace(swap, chosen=None))
    assert "rollback: kept the current weights" in rolled and "applied" not in rolled
    unscored = describe_decision(replace(swap, scores={}, chosen="75"))
    assert "unscored" in unscored
    expo = describe_decision(replace(swap, scores={**swap.scores, "expo a=0.5": 0.35}, chosen="expo a=0.5"))
    assert "applied expo a=0.5 (held-out reward 0.350 vs 0.322" in expo and "step 150 0.338" in expo
    by_reward = describe_decision(replace(swap, covariate="reward", scores={}, chosen="1"))
    assert "applied the forecast to reward 1 unscored" in by_reward  # a reward level, not "step 1"


def test_the_decision_line_names_dropped_candidates_and_why_w_k_was_kept_unscored():
    swap = SwapRecord(step=6, targets=[9.0], scores={"current": 0.3, "9": 0.4, "expo a=1e+300": math.nan})
    line = describe_decision(replace(swap, chosen="9", margin=0.01, dropped=["expo a=1e+300"]))
    assert line.endswith("; dropped for NaN or inf weights: expo a=1e+300")
    kept = describe_decision(replace(swap, scores={}, dropped=["expo a=1e+300"]))
    assert kept == (
        "AlphaRL at step 6: kept the current weights unscored (acceptance gate off); "
        "dropped for NaN or inf weights: expo a=1e+300"
    )


def test_windows_that_cannot_work_are_refused():
    with pytest.raises(AlphaRLError, match="after max_steps 30"):
        AlphaRLConfig(alpharl_window_end=60).validate_alpharl(30)
    with pytest.raises(AlphaRLError, match=r"holds 2 snapshot\(s\) .*steps \[10, 20\]"):
        AlphaRLConfig(alpharl_window_end=0.2).validate_alpharl(100)


def test_a_margin_in_paired_standard_errors_scales_with_the_noise():
    n = 100
    current = [0.0] * n
    quiet = [0.05] * n  # +0.05 on every prompt: SE 0
    noisy = [1.0] * 5 + [0.0] * (n - 5)  # +0.05 from 5 prompts: SE ~0.022
    per_prompt = {"current": current, "75": quiet, "90": noisy, "150": noisy}
    s = scores(0.0, 0.05, 0.05, 0.05)
    assert choose(s, LABELS, 0.0, per_prompt=per_prompt, margin_se=2.0) == "75"  # only the quiet one clears
    per_prompt["75"] = noisy
    se = paired_se(current, noisy)
    assert 0.05 > 2 * se and 0.05 < 3 * se
    assert choose(s, LABELS, 0.0, per_prompt=per_prompt, margin_se=2.0) == "75"  # 2 SE: the win counts
    assert choose(s, LABELS, 0.0, per_prompt=per_prompt, margin_se=3.0) is None  # 3 SE: within the noise
    swap = SwapRecord(step=60, targets=[], scores=s, margin=0.0, margin_se=3.0)
    assert "more than the margin 0 + 3 paired SE" in describe_decision(swap)


def test_a_swap_record_round_trips_through_json_and_reads_older_states():
    scores = {"current": 0.3, "75": 0.4}
    record = SwapRecord(
        step=60, targets=[75.0], candidates=["75"], scores=scores, chosen="75", mean_fit_r2=0.9
    )
    assert SwapRecord.from_dict(json.loads(json.dumps(record.to_dict()))) == record
    assert record.chosen_target == 75.0 and record.logs()["alpharl/rolled_back"] == 0.0
    old = SwapRecord.from_dict({"step": 6, "targets": [9.0], "chosen": None, "gone": 1})  # no "dropped"
    assert old.dropped == [] and math.isnan(old.chosen_target) and old.logs()["alpharl/rolled_back"] == 1.0
