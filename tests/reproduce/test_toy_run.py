"""The harness end to end on a toy suite: a 4-step GRPO run of the tiny model, one window of 3 checkpoints."""

from __future__ import annotations

import csv
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from alpharl_trainer.reproduce.config import EvalSpec, MethodSpec, Regime, RunSpec, Suite
from alpharl_trainer.reproduce.registry import BASELINES, METHODS
from alpharl_trainer.reproduce.report import write_report
from alpharl_trainer.reproduce.run_evaluation import load_weights
from alpharl_trainer.reproduce.runs import product_run, train_full
from alpharl_trainer.reproduce.suite import run_suite
from alpharl_trainer.trainer.candidates import describe


@pytest.fixture(scope="module")
def toy(tmp_path_factory, tiny_model_dir):
    threads = torch.get_num_threads()
    root = tmp_path_factory.mktemp("reproduce")
    suite = Suite(
        name="toy",
        steps=4,
        checkpoint_every=1,
        windows=(0.75,),
        finetune_steps=1,
        regimes={"r": Regime(learning_rate=1e-4, prompts=2, generations=2)},
        runs=(RunSpec("arithmetic", "grpo", "r", seed=0, headline=True),),
        eval=EvalSpec(
            test_problems=24,
            heldout_problems=16,
            sampled_problems=4,
            samples=2,
            off_task_problems=8,
            curve_every=2,
        ),
        methods=MethodSpec(
            horizons=(1.5, 2.0), expo_factors=(0.5,), first_update_factors=(2.0,), scan_scales=(0.0, 1.0, 2.0)
        ),
        out=root / "results",
        work_dir=root / "runs",
        threads=1,
    )
    results = run_suite(suite, tiny_model_dir)
    torch.set_num_threads(threads)
    return suite, results, tiny_model_dir


def test_every_method_is_scored_at_the_window_and_the_curve_matches(toy):
    suite, (res,), _ = toy
    rows = {r["method"]: r for r in res["rows"]}
    assert set(rows) == set(METHODS) - {"default+jumps", "truncated@jumps"}  # no repeated jumps in 4 steps
    curve = {c["step"]: c["greedy"] for c in res["curve"]}
    assert rows["truncated"]["greedy"] == curve[3] and rows["truncated"]["cost"] == 3
    assert rows["truncated@ft"]["greedy"] == curve[4] == res["full"]["greedy"]
    assert rows["first_update"]["cost"] == 1 and rows["default+ft"]["cost"] == 4
    scored = [r for r in rows.values() if "greedy" in r]
    # counts over the same problems: greedy out of the 24 test problems, avg@2 out of 4 problems x 2 samples
    assert all(
        round(r["greedy"] * 24, 9).is_integer() and round(r["sampled"] * 8, 9).is_integer() for r in scored
    )
    assert {s["direction"] for s in res["scans"]} == {"forecast", "true"}
    true_scan = {s["scale"]: s["heldout"] for s in res["scans"] if s["direction"] == "true"}
    assert true_scan[1.0] == res["heldout"]["full"]  # s = 1 along the true update is W_T itself
    assert len(res["r2"]["values"]) == 1 and len(res["r2"]["names"]) == 28


def test_every_method_is_paired_with_the_truncated_run_at_the_same_cost(toy):
    """Per-problem outcomes are kept for every scored model, and each row carries its paired difference to
    the truncated run at its cost, with a bootstrap interval (reproduction v2's yardstick)."""
    suite, (res,), _ = toy
    rows = {r["method"]: r for r in res["rows"] if "greedy" in r}
    truncated = res["per_problem"][f"truncated@{rows['truncated']['window_step']}"]
    assert len(truncated) == 24 and set(truncated) <= {0, 1}
    assert rows["truncated"]["diff_vs_truncated"] == 0 and rows["truncated"]["p_mcnemar"] == 1.0
    for method, row in rows.items():
        reference = rows["truncated@ft"] if method in ("default+ft", "truncated@ft") else rows["truncated"]
        assert row["diff_vs_truncated"] == pytest.approx(row["greedy"] - reference["greedy"]), method
        assert row["diff_ci_low"] <= row["diff_vs_truncated"] <= row["diff_ci_high"], method
        assert not {"per_problem", "heldout_per_problem", "off_task_per_problem"} & set(row)
    assert len(res["base"]["per_problem"]) == 24 and len(res["base"]["off_task_per_problem"]) == 8
    # held-out outcomes of every row a headline comparison may choose (each baseline has a held-out score)
    chosen_from = {f"{m}@3" for m in ("truncated", "default", *BASELINES) if m in rows}
    assert set(res["heldout_per_problem"]) == chosen_from
    assert all(len(v) == 16 for v in res["heldout_per_problem"].values())
    assert rows["step_linear"]["heldout"] == sum(res["heldout_per_problem"]["step_linear@3"]) / 16
    assert set(res["off_task_per_problem"]) == {f"{m}@{r['window_step']}" for m, r in rows.items()}


def test_every_interval_of_the_report_recomputes_from_its_kept_outcomes(toy, tmp_path):
    """scripts/recompute_intervals.py, in a fresh process, on the toy suite's report: everything agrees."""
    suite, results, _ = toy
    out = write_report(suite, results, 1.0, tmp_path / "report")
    done = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).resolve().parents[2] / "scripts" / "recompute_intervals.py"),
            str(out),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 mismatch(es)" in done.stdout


def test_default_is_the_product_runs_in_run_decision(toy):
    """`default` is what `alpharl train` did at the window end: its gate (greedy outcomes read teacher-forced,
    nothing generated; the suite's margin in paired SE, the suite's horizons) scored the full run's W_K
    exactly as the suite scores it (same weights, same held-out problems), and its decision is the row's
    choice."""
    suite, (res,), _ = toy
    (decision,) = res["decisions"]
    assert decision["window_step"] == 3 and decision["scoring"] == "exact_greedy"
    assert decision["gate_engine"] == "teacher_forced" and decision["margin_se"] == suite.methods.margin_se
    assert decision["cost"]["completions"] == 0 and decision["cost"]["prompts"] > 0
    # the suite's portfolio: rank-1 to the horizons 1.5x, 2x of step 3 (whole steps), ExPO with the suite's
    # factors and the line to T = 4, the average of the window's 3 checkpoints (fixed basis: needs 4)
    scores = set(decision["scores"])
    assert {"current", "5", "6", "average of 3", "expo a=0.5", "expo a=0.333"} <= scores
    assert not any(label.startswith("fixed-basis") for label in scores)
    assert decision["gate_current"] == decision["suite_current"]
    rows = {r["method"]: r for r in res["rows"]}
    chosen = decision["chosen"]
    expected = "keep W_K" if chosen is None else describe(chosen).removeprefix("the forecast to ")
    assert rows["default"]["choice"] == expected
    assert rows["default+ft"]["cost"] == 4 and rows["truncated@ft"]["cost"] == 4
    assert (Path(suite.work_dir) / next(iter(suite.work_dir.iterdir())).name / "product-3.yaml").is_file()


def test_a_product_run_that_keeps_w_k_is_the_full_run(toy):
    """With a bar no candidate can pass, the product run keeps W_K: its window weights are the full run's
    checkpoint bit for bit, and its fine-tune (same optimizer state, data and RNG) lands on the full run's
    next checkpoint: the product run and the full run are one training run until the swap."""
    suite, _, base = toy
    folder = next(suite.work_dir.iterdir())
    run = train_full(suite.runs[0], suite, base, folder)  # finished: reloaded, not retrained
    strict = dataclasses.replace(suite, methods=dataclasses.replace(suite.methods, margin_se=1e9))
    made = product_run(suite.runs[0], strict, run, 3, 1)
    assert made.swap["chosen"] is None
    window, after = load_weights(run.checkpoints[3]), load_weights(run.checkpoints[4])
    assert all(torch.equal(made.window[n], window[n]) for n in window)
    assert max((made.finetuned[n] - after[n]).abs().max().item() for n in after) < 1e-6


CHOSEN = ("alpharl_paper_tuned", "expo", "relex", "fixed_basis_linear", "best_recent", "default")


def test_every_chosen_baseline_keeps_w_k_under_the_same_bar(toy):
    """Symmetric baselines: each method with a knob chooses it on held-out by the gate's rule and may keep
    W_K. In the toy run a kept W_K is the truncated run's outcomes exactly, a chosen candidate scored above
    W_K on held-out; under a bar no candidate can pass, every one of them (the product's gate too) keeps
    W_K."""
    suite, (res,), base = toy
    rows = {r["method"]: r for r in res["rows"] if r["window_step"] == 3}
    truncated = res["per_problem"]["truncated@3"]
    for method in CHOSEN:
        if rows[method]["choice"] == "keep W_K":
            assert res["per_problem"][f"{method}@3"] == truncated, method
        else:
            assert rows[method]["heldout"] > rows["truncated"]["heldout"], method
    from alpharl_trainer.reproduce.run_evaluation import RunEvaluation

    strict = dataclasses.replace(suite, methods=dataclasses.replace(suite.methods, margin_se=1e9))
    folder = next(suite.work_dir.iterdir())
    ev = RunEvaluation(suite.runs[0], strict, train_full(suite.runs[0], strict, base, folder))
    ev.first_update()
    ev.window(3)
    kept = {r["method"]: r["choice"] for r in ev.rows if r["method"] in CHOSEN}
    assert kept == dict.fromkeys(CHOSEN, "keep W_K")


def test_report_files_and_resume(toy):
    suite, results, base = toy
    again = run_suite(suite, base)  # every run finished: reused, identical
    assert json.dumps(again) == json.dumps(results)
    out = write_report(suite, results, 1.0, suite.out)
    names = {p.name for p in out.iterdir()}
    assert {
        "results.md",
        "results.csv",
        "accuracy_vs_step.png",
        "r2_heatmap.png",
        "rank1_share.png",
        "scans.png",
        "paired_differences.png",
    } <= names
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert len(rows) == len(METHODS) - 2  # default+jumps, truncated@jumps: off in the toy suite
    full_share = [r for r in rows if r["method"] == "truncated@ft"][0]["gain_share"]
    res = results[0]  # the full run's accuracy in a share is the mean of its last 3 checkpoints
    gain = res["admission"]["gain"]
    expected = "" if gain == 0 else f"{(res['full']['greedy'] - res['base']['greedy']) / gain:.5g}"
    assert full_share == expected
    text = (out / "results.md").read_text()
    assert "## Targets vs measurements" in text and "Headline: arithmetic / grpo / r" in text
    admission = results[0]["admission"]  # T = 4, a checkpoint per step: 40% -> 2, 80% -> 3, last 2, 3, 4
    assert admission["steps"] == {"at_40": [2], "at_80": [3], "last_three": [2, 3, 4]}
    assert not admission["admitted"] and admission["gain_in_se"] < 10  # 24 problems, 4 steps: no headline
    assert f"| {results[0]['run']} | {admission['gain']:+.3f} |" in text and "## Admission" in text
    assert "over the 1 seed(s): mean [seed-level 95% t-interval" in text and "What the numbers are." in text
    assert (
        "| truncated | +0.000 - ([+0.000, +0.000]) |" in text
        and "± is the standard deviation over seeds" in text
    )
    assert "## Headline comparisons (named in advance)" in text and "no seed-level test (one seed)" in text
    assert {"outcomes.npz", "outcomes.json", "results_by_category.csv"} <= names
    from alpharl_trainer.reproduce.categories import split_categories

    cats = res["test_categories"]  # the Evaluator's test problems, recorded once; the same drawn again
    assert (
        len(cats) == 24
        and set(cats) <= {"2+3", "3+2", "3+3"}
        and cats == split_categories(suite.runs[0], suite)
    )
    assert (
        "## Per category: what the gains are made of (descriptive)" in text
        and "- w=75% (step 3): all (n=24)" in text
    )
    by_category = list(csv.DictReader((out / "results_by_category.csv").open()))
    assert {r["category"] for r in by_category} == set(cats) and sum(
        int(r["n"]) for r in by_category if r["method"] == "base"
    ) == 24
    from alpharl_trainer.reproduce.suite import fingerprint

    spec = suite.runs[0]
    retrained = dataclasses.replace(suite, steps=5, windows=(0.6,))
    rescored = dataclasses.replace(suite, eval=dataclasses.replace(suite.eval, test_problems=10))
    for scoring in (False, True):
        assert fingerprint(retrained, spec, base, scoring=scoring) != fingerprint(
            suite, spec, base, scoring=scoring
        )
    assert fingerprint(rescored, spec, base, scoring=False) == fingerprint(suite, spec, base, scoring=False)
    other_task = dataclasses.replace(spec, task="sort")  # another completion length in the recipe it trains
    assert fingerprint(suite, other_task, base, scoring=False) != fingerprint(
        suite, spec, base, scoring=False
    )
    assert fingerprint(rescored, spec, base, scoring=True) != fingerprint(suite, spec, base, scoring=True)


def test_a_changed_training_recipe_retrains(toy, monkeypatch, tmp_path):
    """A run's folder name covers what it trains with, not only the suite's settings: a setting the harness
    puts on the recipe (here the completion length) or the recipe file itself changes it."""
    from alpharl_trainer.reproduce import evaluation, runs
    from alpharl_trainer.reproduce.suite import fingerprint

    suite, _, base = toy
    spec = suite.runs[0]
    before = fingerprint(suite, spec, base, scoring=False)
    monkeypatch.setitem(evaluation.COMPLETION_TOKENS, "arithmetic", 9)
    assert fingerprint(suite, spec, base, scoring=False) != before
    monkeypatch.undo()
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "grpo.yaml").write_text((runs.RECIPES / "grpo.yaml").read_text() + "\n# edited\n")
    monkeypatch.setattr("alpharl_trainer.reproduce.suite.RECIPES", recipes)
    monkeypatch.setattr(runs, "RECIPES", recipes)
    assert fingerprint(suite, spec, base, scoring=False) != before
