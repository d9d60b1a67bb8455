"""The outcomes behind every interval are kept (outcomes.npz, packed bits, and outcomes.json), and
`scripts/recompute_intervals.py` recomputes every interval of results.md and results.csv from them alone:
agreement on an untouched report, a mismatch (exit 1) for a tampered outcome or a tampered number."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from alpharl_trainer.reproduce.comparisons import Evidence
from alpharl_trainer.reproduce.headline import headline_comparisons, headline_section
from alpharl_trainer.reproduce.markdown import _targets_section
from alpharl_trainer.reproduce.outcomes import pair_with_truncated, read_outcomes, write_outcomes
from alpharl_trainer.reproduce.recompute import check
from alpharl_trainer.reproduce.table import flat_rows, render_csv
from tests.reproduce.hand_made_result import hand_made_seeds

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "recompute_intervals.py"


def _script():
    spec = importlib.util.spec_from_file_location("recompute_intervals", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    """A report of a hand-made cell of 3 seeds (the targets, headline and comparisons sections, the csv)."""
    runs = hand_made_seeds([0.04, 0.045, 0.05])
    for res in runs:  # as the suite does: outcomes in the rows, then moved out with the paired differences
        for row in res["rows"]:
            if "greedy" in row:
                row["per_problem"] = res["per_problem"][f"{row['method']}@{row['window_step']}"]
        res["per_problem"] = pair_with_truncated(res["rows"])
        res["heldout_per_problem"] = {"truncated@10": [1, 0, 1]}
    ev = Evidence()
    by_run = {res["run"]: flat_rows([res]) for res in runs}
    md = _targets_section(runs, by_run, ev) + headline_section(runs, ev) + headline_comparisons(runs, ev)
    folder = tmp_path_factory.mktemp("report")
    (folder / "results.md").write_text("\n".join(md))
    (folder / "results.csv").write_text(render_csv(runs, ev))
    write_outcomes(folder, runs, ev.printed)
    return folder


def _copy(report: Path, tmp_path: Path) -> Path:
    for name in ("results.md", "results.csv", "outcomes.npz", "outcomes.json"):
        (tmp_path / name).write_bytes((report / name).read_bytes())
    return tmp_path


def test_the_outcomes_are_kept_as_packed_bits_with_an_index(report):
    index, arrays = read_outcomes(report)
    assert list(index["runs"]) == ["s0", "s1", "s2"] and index["runs"]["s1"]["seed"] == 1
    assert index["arrays"]["s0/test/default@10"] == 800 and arrays["s0/test/default@10"].sum() == 0.54 * 800
    assert arrays["s2/heldout/truncated@10"].tolist() == [1, 0, 1]
    assert (report / "outcomes.npz").stat().st_size < 3 * 14 * 800  # under a byte per outcome
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
    # default and default+ft, at both windows: 4 cells print that text, one of them now without its verdict
    assert problems == [f"results.md: {cell!r} printed 3 times, recorded 4"]
    (folder / "results.md").write_text(md + "\nextra: +0.100 [+0.050, +0.150]\n")
    assert check(folder)[0] == ["results.md: [+0.050, +0.150] printed but not among the recorded intervals"]
