"""The outcomes behind every interval are kept (outcomes.npz, packed bits, and outcomes.json), and
`scripts/recompute_intervals.py` recomputes every interval of results.md and results.csv from them alone:
agreement on an untouched report, a mismatch (exit 1) for a tampered outcome or a tampered number."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from alpharl_trainer.reproduce.categories import category_section, render_category_csv
from alpharl_trainer.reproduce.comparisons import Evidence
from alpharl_trainer.reproduce.compute import with_equal_compute
from alpharl_trainer.reproduce.headline import headline_comparisons, headline_section
from alpharl_trainer.reproduce.markdown import _targets_section
from alpharl_trainer.reproduce.outcomes import pair_with_truncated, read_outcomes, write_outcomes
from alpharl_trainer.reproduce.recompute import check
from alpharl_trainer.reproduce.table import flat_rows, render_csv
from tests.reproduce.hand_made_result import hand_made_seeds, hand_made_split

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "recompute_intervals.py"


def _script():
    spec = importlib.util.spec_from_file_location("recompute_intervals", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    """A report of a hand-made cell of 3 seeds (the targets, headline, comparisons and per-category sections,
    both csv files), and of a cell of 3 seeds whose default gains on one category what it loses on the
    other."""
    split = [
        {**res, "run": f"split{i}", "regime": "split"} for i, res in enumerate(hand_made_split([12, 14, 10]))
    ]
    runs = [with_equal_compute(res) for res in hand_made_seeds([0.04, 0.045, 0.05]) + split]
    for res in runs:  # as the suite does: outcomes in the rows, then moved out with the paired differences
        for row in res["rows"]:
            if "greedy" in row:
                row["per_problem"] = res["per_problem"][f"{row['method']}@{row['window_step']}"]
        res["per_problem"] = pair_with_truncated(res["rows"])
        res["heldout_per_problem"] = {"truncated@10": [1, 0, 1]}
    ev = Evidence()
    by_run = {res["run"]: flat_rows([res]) for res in runs}
    md = _targets_section(runs, by_run, ev) + headline_section(runs, ev) + headline_comparisons(runs, ev)
    md += category_section(runs, ev)
    folder = tmp_path_factory.mktemp("report")
    (folder / "results.md").write_text("\n".join(md))
    (folder / "results.csv").write_text(render_csv(runs, ev))
    (folder / "results_by_category.csv").write_text(render_category_csv(runs))
    write_outcomes(folder, runs, ev.printed)
    return folder


def _copy(report: Path, tmp_path: Path) -> Path:
    for name in ("results.md", "results.csv", "results_by_category.csv", "outcomes.npz", "outcomes.json"):
        (tmp_path / name).write_bytes((report / name).read_bytes())
    return tmp_path


def test_the_outcomes_are_kept_as_packed_bits_with_an_index(report):
    index, arrays = read_outcomes(report)
    assert list(index["runs"]) == ["s0", "s1", "s2", "split0", "split1", "split2"]
    assert index["runs"]["s1"]["seed"] == 1 and index["categories"]["s1"] == ["2+1", "3+3"]
    assert arrays["s1/category/2+1"].sum() == 200 and arrays["s1/category/3+3"].sum() == 600
    assert index["arrays"]["s0/test/default@10"] == 800 and arrays["s0/test/default@10"].sum() == 0.54 * 800
    assert arrays["s2/heldout/truncated@10"].tolist() == [1, 0, 1]
    assert (report / "outcomes.npz").stat().st_size < 6 * 16 * 800  # under a byte per outcome or mask bit
    assert {r["kind"] for r in index["printed"]} == {"problem", "cell", "headline"}


def test_every_interval_recomputes_from_the_outcomes_alone(report, capsys):
    problems, checked = check(report)
    assert problems == [] and checked > 50
    assert _script().main([str(report)]) == 0
    assert "0 mismatch(es)" in capsys.readouterr().out


def test_a_tampered_outcome_fails_the_check(report, tmp_path, capsys):
    folder = _copy(report, tmp_path)
    index, arrays = read_outcomes(folder)
    arrays["s1/test/default@10"][799] = 1  # one more problem solved by one seed
    packed = {k: np.packbits(v.astype(np.uint8)) for k, v in arrays.items()}
    np.savez_compressed(folder / "outcomes.npz", **packed)
    problems, _ = check(folder)
    assert any("s1, default@10" in p and "greedy" in p for p in problems)  # results.csv
    assert any(p.startswith("results.md") for p in problems)  # the cell and headline over the seeds
    assert _script().main([str(folder)]) == 1
    assert "mismatch" in capsys.readouterr().out


def test_a_tampered_or_unrecorded_printed_interval_fails_the_check(report, tmp_path):
    folder = _copy(report, tmp_path)
    md = (folder / "results.md").read_text()
    index = json.loads((folder / "outcomes.json").read_text())
    cell = next(r["text"] for r in index["printed"] if r["kind"] == "cell" and "default@10" == r["method"])
    (folder / "results.md").write_text(md.replace(cell, cell.replace("better", ""), 1))
    problems = check(folder)[0]
    # default and default+ft at both windows, and the per-category table's `all` rows: 6 cells print that
    # text, one of them now without its verdict
    assert problems == [f"results.md: {cell!r} printed 5 times, recorded 6"]
    (folder / "results.md").write_text(md + "\nextra: +0.100 [+0.050, +0.150]\n")
    assert check(folder)[0] == ["results.md: [+0.050, +0.150] printed but not among the recorded intervals"]


def test_the_per_category_intervals_recompute_on_their_categorys_problems(report):
    index, _ = read_outcomes(report)
    by_category = [r for r in index["printed"] if r.get("category")]
    assert {r["category"] for r in by_category} == {"2+1", "3+3"} and len(by_category) == 2 * 2 * 2
    split = [r["text"] for r in by_category if r["runs"][0] == "split0" and r["method"] == "default@10"]
    assert split[0].startswith("+0.060 [") and split[0].endswith("better")
    assert split[1].startswith("-0.020 [") and split[1].endswith("worse")


def test_a_tampered_category_fails_the_check(report, tmp_path):
    """One problem moved from 3+3 to 2+1 in one seed's masks: the per-category csv rows and intervals of that
    seed's cell no longer recompute."""
    folder = _copy(report, tmp_path)
    _, arrays = read_outcomes(folder)
    arrays["split1/category/2+1"][1], arrays["split1/category/3+3"][1] = 1, 0
    packed = {k: np.packbits(v.astype(np.uint8)) for k, v in arrays.items()}
    np.savez_compressed(folder / "outcomes.npz", **packed)
    problems = check(folder)[0]
    assert any(p.startswith("results_by_category.csv") and "split1" in p and " n is " in p for p in problems)
    differ = "default@10 - truncated@10 on 2+1): outcomes not kept, or the runs' categories differ"
    assert any(p.startswith("results.md interval") and "split1" in p and differ in p for p in problems)
    assert not any("'s0'" in p or "(s0," in p for p in problems)  # the other cell is untouched


@pytest.mark.slow
def test_the_committed_default_report_recomputes_from_its_outcomes():
    """The committed v3 report (`results/reproduce/default`): every interval of results.md, results.csv and
    results_by_category.csv recomputes from its outcomes.npz alone (about two minutes of bootstraps)."""
    problems, checked = check(SCRIPT.parents[1] / "results" / "reproduce" / "default")
    assert problems == [] and checked > 1000
