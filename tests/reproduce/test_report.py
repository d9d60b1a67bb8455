"""Report arithmetic on a hand-made result: gain share, speed-up, and the targets' paired verdicts."""

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


N = 800


def _solved(acc):
    """Outcomes of N problems with the first round(acc N) solved: any two are nested, so their paired
    difference is one-signed and its interval excludes 0 whenever the accuracies differ."""
    k = round(acc * N)
    return [1] * k + [0] * (N - k)


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
        "per_problem": {
            f"{r['method']}@{r['window_step']}": _solved(r["greedy"]) for r in rows if "greedy" in r
        },
        "admission": {"gain": 0.2, "gain_in_se": 20.0},
    }


def test_gain_share_and_speedup():
    res = _result()
    assert gain_share(0.59, res) == pytest.approx(0.95)
    assert gain_share(0.4, {**res, "admission": {"gain": 0.0}}) is None  # no gain to share
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
    worst = t["worst_vs_truncated"]  # +0.08 at step 10, +0.04 at step 16: paired, 32 problems apart
    assert worst.diff == pytest.approx(0.04) and worst.low > 0 and worst.verdict == "better"
    assert t["min_off_task_vs_truncated"] == pytest.approx(-0.05)
    end, diff, name = min(t["vs_baselines"], key=lambda x: x[1].diff)
    assert (end, name) == (16, "step_linear") and diff.diff == pytest.approx(-0.01) and diff.high < 0


def test_markdown_states_paired_verdicts_and_runs_without_gain():
    from alpharl_trainer.reproduce.report import _targets_section

    res = _result()
    text = "\n".join(_targets_section([res], {"r": flat_rows([res])}))
    # default 0.59 vs step_linear 0.60 at 16 steps: 8 problems of 800, all one way: the interval excludes 0
    assert "-0.010 [" in text and "worse (vs step_linear at 16 steps)" in text
    assert "+0.040 [" in text and "better" in text
    no_gain = {**res, "admission": {"gain": 0.001, "gain_in_se": 0.5}}
    text = "\n".join(_targets_section([no_gain], {"r": flat_rows([no_gain])}))
    assert "n/a: no measurable gain" in text
