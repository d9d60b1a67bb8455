"""Report arithmetic on a hand-made result: gain share, speed-up, and the targets' verdicts."""

from __future__ import annotations

import pytest

from alpharl_trainer.reproduce.report import flat_rows, gain_share, render_csv, targets


def _row(end, method, cost, greedy, off=0.5):
    return {
        "window_step": end,
        "method": method,
        "cost": cost,
        "greedy": greedy,
        "sampled": greedy,
        "logprob": -1.0,
        "off_task": off,
    }


def _result():
    rows = []
    for end, trunc, default, best_baseline in ((10, 0.50, 0.58, 0.55), (16, 0.55, 0.59, 0.60)):
        rows += [
            _row(end, "truncated", end, trunc),
            _row(end, "default", end, default, off=0.45 if end == 16 else 0.5),
            _row(end, "step_linear", end, best_baseline),
            _row(end, "expo", end, trunc),
            _row(end, "lawa", end, trunc),
            {"window_step": end, "method": "alpharl_paper", "cost": end, "error": "no fit"},
            _row(end, "default+ft", end + 4, default + 0.005),
            _row(end, "truncated@ft", end + 4, trunc + 0.01),
        ]
    return {
        "run": "r",
        "task": "arithmetic",
        "loss": "grpo",
        "regime": "x",
        "seed": 0,
        "steps": 40,
        "finetune_steps": 4,
        "test_problems": 800,
        "base": {"greedy": 0.4},
        "full": {"greedy": 0.6},
        "rows": rows,
    }


def test_gain_share_and_speedup():
    res = _result()
    assert gain_share(0.59, res) == pytest.approx(0.95)
    assert gain_share(0.4, {**res, "full": {"greedy": 0.4}}) is None  # no gain to share
    flat = {(r["window_step"], r["method"]): r for r in flat_rows([res])}
    assert flat[(10, "default+ft")]["speedup"] == pytest.approx(40 / 14)
    assert flat[(10, "default")]["window"] == pytest.approx(0.25)
    assert flat[(10, "alpharl_paper")]["gain_share"] is None
    assert "no fit" in render_csv([res])


def test_targets_pick_the_best_within_budget_and_the_worst_margins():
    res = _result()
    t = targets(res, flat_rows([res]))
    assert t["at40"]["method"] == "default" and t["at40"]["greedy"] == 0.59  # 0.595 @ 20 steps is over 40%
    assert t["at25"]["greedy"] == 0.58
    assert t["min_vs_truncated"] == pytest.approx(0.04)
    assert t["min_off_task_vs_truncated"] == pytest.approx(-0.05)
    worst = min(t["vs_baselines"], key=lambda x: x[1])
    assert worst[2] == "step_linear" and worst[1] == pytest.approx(-0.01)


def test_markdown_flags_noise_and_runs_without_gain():
    from alpharl_trainer.reproduce.report import _targets_section

    res = _result()
    flat = flat_rows([res])
    text = "\n".join(_targets_section([res], {"r": flat}))
    assert "missed (within 2 SE)" in text  # default 0.59 vs step_linear 0.60 at 16 steps: 1 point, SE 1.7
    flat_gain = {**res, "full": {"greedy": 0.41}}
    text = "\n".join(_targets_section([flat_gain], {"r": flat_rows([flat_gain])}))
    assert "n/a: no measurable gain" in text
