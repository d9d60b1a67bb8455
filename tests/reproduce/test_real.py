"""The real-model suite's pure parts: its recipe and a report written from
planted per-problem outcomes (the runs themselves are `make real`'s, minutes each)."""

from __future__ import annotations

import csv
import json
import random

import pytest

from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.reproduce.real import RealSuite, distinct, load_real_suite, rank1_models
from alpharl_trainer.reproduce.real_report import write_report
from alpharl_trainer.reproduce.real_table import COLUMNS
from alpharl_trainer.tasks import get_task
from tests.trainer.harness import REPO


def test_the_shipped_suite_runs_three_seeds_at_the_issues_windows():
    suite = load_real_suite(REPO / "recipes" / "reproduce" / "real.yaml")
    assert len(suite.seeds) >= 3 and suite.windows == (0.1, 0.25, 0.4)
    assert suite.steps() == 30 and suite.window_steps() == [3, 8, 12]
    assert {3, 8, 12, 30} <= set(suite.save_steps())


@pytest.mark.parametrize(
    ("body", "message"),
    [("bogus: 1\n", "unknown keys"), ("windows: [0.5, 1.5]\n", "fractions"), ("recipe: nope.yaml\n", "nope")],
)
def test_bad_suite_recipes_are_refused(tmp_path, body, message):
    path = tmp_path / "suite.yaml"
    path.write_text(body)
    with pytest.raises(AlphaRLError, match=message):
        load_real_suite(path)


def _bits(rng, p, n):
    return [int(rng.random() < p) for _ in range(n)]


def test_report_from_planted_outcomes(tmp_path):
    """Seeds where the product is +0.2 above the truncated run: the seed-level interval excludes 0, the csv
    has the suite's columns, and every interval can be recomputed from outcomes.json."""
    suite = RealSuite(recipe=REPO / "recipes" / "real" / "grpo.yaml", out=tmp_path / "out",
                      curve_steps=(6,), test_problems=40, off_task_problems=10)  # fmt: skip
    rng = random.Random(0)
    n = len(distinct(get_task("chat-arithmetic").problems("test", 40, 0)))  # the suite's distinct problems
    scores = {"base": {"test": _bits(rng, 0.1, n), "off_task": _bits(rng, 0.1, 10)}}
    runs, products, checks = {}, {}, {}
    for s in suite.seeds:
        runs[s] = {"seconds": 300.0, "steps": 30, "step_seconds": {k: 10.0 for k in range(1, 31)}}
        for step in suite.save_steps():
            scores[f"s{s}/full@{step}"] = {
                "test": _bits(rng, 0.1 + step / 60, n),
                "off_task": _bits(rng, 0.1, 10),
            }
        for end in suite.window_steps():
            truncated = scores[f"s{s}/full@{end}"]["test"]
            better = [1 if i % 5 == 0 else b for i, b in enumerate(truncated)]  # one in five problems fixed
            scores[f"s{s}/product@{end}"] = {"test": better, "off_task": _bits(rng, 0.1, 10)}
            swap = {"chosen": "expo a=1", "scores": {"current": 0.2, "expo a=1": 0.3}, "seconds": 25.0}
            products[s, end] = {"summary": {"swap": swap}, "seconds": 100.0}
            checks[f"s{s}@{end}"] = {"gate_current": 0.2, "suite_heldout": 0.2}
        for name in ("rank1-only@30", "random-rank1@30", "predict@12->30"):
            scores[f"s{s}/{name}"] = {"test": _bits(rng, 0.4, n), "off_task": _bits(rng, 0.1, 10)}
    steps = [3, 6, 8, 12, 30]
    analysis = {
        "steps": steps,
        "summary": {"mean_r2_linear": 0.9},
        "matrices": {
            "m": {
                "rank1_share": [0.5] * 5,
                "s1_over_s2": [1.5] * 5,
                "fro": [1e-3] * 5,
                "r2_linear": 0.9,
                "u_cosine": [0.99] * 4,
            }
        },  # fmt: skip
    }
    write_report(suite, runs, products, scores, checks, analysis, seconds=60.0)
    rows = list(csv.DictReader((tmp_path / "out" / "results.csv").open()))
    assert list(rows[0]) == COLUMNS
    product = [r for r in rows if r["method"] == "default"]
    assert len(product) == 3 * len(suite.windows)
    for r in product:  # 25 s of swap at 10 s a step: 2.5 step equivalents on top of the window's steps
        assert float(r["cost_step_equivalents"]) == pytest.approx(int(r["window_step"]) + 2.5)
        assert float(r["diff_vs_truncated"]) > 0 and r["choice"] == "expo a=1"
    md = (tmp_path / "out" / "results.md").read_text()
    assert "(better)" in md and "seed-level" in md
    outcomes = json.loads((tmp_path / "out" / "outcomes.json").read_text())
    assert len(outcomes["problems"]) == len(outcomes["test"]["base"])
    assert (tmp_path / "out" / "accuracy_vs_step.png").stat().st_size > 0
    scores["base"]["test"] = scores["base"]["test"][:-1]  # scored on other problems: refused, not reported
    with pytest.raises(AlphaRLError, match="base.*problems"):
        write_report(suite, runs, products, scores, checks, analysis, seconds=60.0)


def test_rank1_only_and_its_control_have_the_same_size(tmp_path):
    import torch
    from safetensors.torch import save_file

    name = "model.layers.0.mlp.up_proj.weight"
    w0 = {name: torch.randn(6, 4), "model.norm.weight": torch.ones(4)}
    update = 0.1 * torch.outer(torch.randn(6), torch.randn(4)) + 0.001 * torch.randn(6, 4)
    (tmp_path / "base").mkdir()
    save_file(w0, str(tmp_path / "base" / "model.safetensors"))
    save_file({**w0, name: w0[name] + update}, str(tmp_path / "final.safetensors"))
    rank1, control = rank1_models(tmp_path / "base", tmp_path / "final.safetensors")
    assert set(rank1) == set(control) == {name}  # only tracked matrices
    s1 = torch.linalg.matrix_norm(rank1[name] - w0[name], ord=2)
    assert s1 == pytest.approx(torch.linalg.matrix_norm(update, ord=2).item(), rel=1e-4)
    assert torch.linalg.matrix_norm(control[name] - w0[name], ord=2) == pytest.approx(s1.item(), rel=1e-4)
    assert torch.linalg.matrix_rank(control[name] - w0[name]) == 1
