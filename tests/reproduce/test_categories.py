"""What a gain is made of, on hand-made results: the test problems' categories are kept, the per-category
table over seeds describes `default - truncated` per category with its seed-level interval (a difference of 0
overall can hide one category gaining what another loses: both are shown), a run of one seed gets a compact
line per window, results_by_category.csv has one row per (run, window, method, category)."""

from __future__ import annotations

import csv
import io

import pytest

from alpharl_trainer.reproduce.categories import (
    category_section,
    compare_in,
    order,
    render_category_csv,
    split_categories,
)
from alpharl_trainer.reproduce.comparisons import Evidence
from alpharl_trainer.reproduce.config import EvalSpec, Regime, RunSpec, Suite
from alpharl_trainer.reproduce.outcomes import arrays_of
from tests.reproduce.hand_made_result import hand_made_result, hand_made_split


def _row(text: str, start: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(start))


def test_categories_in_natural_order():
    assert order(["len9", "len10", "len5", "len9"]) == ["len5", "len9", "len10"]
    assert order(["3+10", "3+2", "10+1"]) == ["3+2", "3+10", "10+1"]


def test_the_test_splits_categories_follow_the_regimes_mix():
    suite = Suite(
        name="c",
        steps=4,
        checkpoint_every=1,
        windows=(0.75,),
        finetune_steps=1,
        regimes={"climbing": Regime(learning_rate=1e-5, prompts=2, mix="climb")},
        runs=(RunSpec("sort", "grpo", "climbing"),),
        eval=EvalSpec(test_problems=400),
    )
    cats = split_categories(suite.runs[0], suite)
    assert len(cats) == 400 and set(cats) == {"len5", "len9"}
    assert 0.15 < cats.count("len5") / 400 < 0.35  # the mix: one 5-letter list to three 9-letter ones


def test_over_seeds_a_zero_overall_difference_shows_the_categories_that_make_it():
    """default gains 12, 14, 10 problems of the 200 in 2+1 and loses as many of the 600 in 3+3: 0 overall in
    every seed, +0.06 on 2+1 (seed-level interval above 0), -0.02 on 3+3 (below 0); both shown, and the
    overall row carries no verdict."""
    runs = hand_made_split([12, 14, 10])
    ev = Evidence()
    text = "\n".join(category_section(runs, ev))
    assert "descriptive" in text and "outside the comparisons named in advance" in text
    assert "### arithmetic / grpo / x, seeds [0, 1, 2]" in text
    overall = _row(text, "| w=25% (step 10) | all (800) |")
    assert overall.endswith("| +0.000 [+0.000, +0.000] ([-0.0" + overall.split("([-0.0")[1])
    assert "better" not in overall and "worse" not in overall
    small = _row(text, "|  | 2+1 (200) |")
    assert "| 0.500 | 0.560 |" in small and small.endswith("better |") and "| +0.060 [+0.0" in small
    large = _row(text, "|  | 3+3 (600) |")
    assert "| 0.500 | 0.480 |" in large and large.endswith("worse |") and "| -0.020 [-0.0" in large
    assert "all 0.400 / 0.600, 2+1 0.500 / 0.900, 3+3 0.367 / 0.500" in text  # base / full per category
    cells = [r for r in ev.printed if r["kind"] == "cell"]
    assert len(cells) == 2 * 3  # 2 windows x (all, 2+1, 3+3)
    assert [r.get("category", "") for r in cells[:3]] == ["", "2+1", "3+3"]
    c = compare_in(runs, "truncated@10", "default@10", "3+3")
    assert c.seeds.per_seed == pytest.approx((-0.02, -14 / 600, -10 / 600))


def test_one_seed_gets_a_compact_line_per_window_without_intervals():
    (res,) = hand_made_split([12])
    ev = Evidence()
    text = "\n".join(category_section([res], ev))
    assert "| window |" not in text and ev.printed == []
    line = _row(text, "- w=25% (step 10): ")
    assert line.endswith(
        "all (n=800) 0.500 -> 0.500 (+0.000); 2+1 (n=200) 0.500 -> 0.560 (+0.060); "
        "3+3 (n=600) 0.500 -> 0.480 (-0.020)"
    )
    assert "[" not in line


def test_nested_outcomes_split_by_category():
    """The plain hand-made run (first k problems solved): truncated 0.50 solves 400, default 0.58 solves 464;
    every fourth problem is 2+1, so 100 and 116 of its 200."""
    res = hand_made_result()
    text = "\n".join(category_section([res], Evidence()))
    assert "2+1 (n=200) 0.500 -> 0.580 (+0.080)" in text and "3+3 (n=600) 0.500 -> 0.580 (+0.080)" in text


def test_results_without_categories_get_no_section():
    res = hand_made_result()
    del res["test_categories"]
    assert category_section([res], Evidence()) == []
    assert render_category_csv([res]).strip() == "run,task,loss,regime,seed,T,window,window_step,method," + (
        "cost_steps,category,n,greedy"
    )


def test_the_category_csv_has_a_row_per_method_window_and_category():
    (res,) = hand_made_split([12])
    rows = list(csv.DictReader(io.StringIO(render_category_csv([res]))))
    scored = len(res["per_problem"])
    assert len(rows) == 2 * (scored + 2)  # every scored row, the base and the full run; 2 categories
    default = [r for r in rows if r["method"] == "default" and r["window_step"] == "10"]
    assert [(r["category"], r["n"], r["greedy"]) for r in default] == [
        ("2+1", "200", "0.56"),
        ("3+3", "600", "0.48"),
    ]
    ft = next(r for r in rows if r["method"] == "default+ft" and r["window_step"] == "10")
    assert ft["cost_steps"] == "14" and ft["window"] == "0.25"
    base = [r for r in rows if r["method"] == "base"]
    assert [(r["window_step"], r["cost_steps"], r["greedy"]) for r in base] == [
        ("", "0", "0.5"),
        ("", "0", "0.36667"),
    ]


def test_the_categories_are_kept_as_masks_beside_the_outcomes():
    res = hand_made_result()
    arrays = arrays_of(res)
    small, large = arrays["r/category/2+1"], arrays["r/category/3+3"]
    assert sum(small) == 200 and sum(large) == 600 and small[:5] == [1, 0, 0, 0, 1]
