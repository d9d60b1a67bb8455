"""results.md on hand-made results: a run's own differences are described, not judged; over seeds a cell is
judged by its seed-level interval; the headline comparisons carry Holm-adjusted seed-level p-values."""

from __future__ import annotations

from alpharl_trainer.reproduce.comparisons import Evidence
from alpharl_trainer.reproduce.compute import with_equal_compute
from alpharl_trainer.reproduce.headline import headline_comparisons, headline_section
from alpharl_trainer.reproduce.markdown import _targets_section
from alpharl_trainer.reproduce.table import flat_rows
from tests.reproduce.hand_made_result import hand_made_result, hand_made_seeds


def test_a_runs_own_differences_are_described_without_a_verdict():
    res = hand_made_result()
    ev = Evidence()
    text = "\n".join(_targets_section([res], {"r": flat_rows([res])}, ev))
    # default 0.59 vs step_linear 0.60 at 16 steps: 8 problems of 800, all one way: the interval excludes 0,
    # yet one seed's interval is conditional on that seed: no verdict
    assert "-0.010 [-0.0" in text and "(vs step_linear at 16 steps)" in text and "+0.040 [" in text
    assert " better" not in text and " worse" not in text and "conditional on the run's seed" in text
    assert [r["kind"] for r in ev.printed] == ["problem", "problem"]  # both intervals recorded
    no_gain = {**res, "admission": {"gain": 0.001, "gain_in_se": 0.5}}
    text = "\n".join(_targets_section([no_gain], {"r": flat_rows([no_gain])}))
    assert "n/a: no measurable gain" in text


def _cell(text: str, method: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(f"| {method} | +"))


def test_seeds_that_disagree_are_not_called_better_although_each_problem_interval_excludes_0():
    """default ahead by +0.08, -0.02, +0.01 on three seeds: the problem-level interval (seeds fixed) excludes
    0, the seed-level one does not, so no verdict; nor in the headline comparisons, Holm-adjusted."""
    runs = hand_made_seeds([0.08, -0.02, 0.01])
    ev = Evidence()
    text = "\n".join(headline_section(runs, ev) + headline_comparisons(runs, ev))
    default = _cell(text, "default")
    assert default.startswith("| default | +0.023 [-0.1") and "([+0.0" in default and "better" not in default
    assert "step_linear | +0.010 [+0.010, +0.010] ([+0.0" in text  # every seed +0.01: called, unadjusted
    rows = [line for line in text.splitlines() if ": default - " in line]
    assert len(rows) == 4  # 2 windows x (truncated, the baseline best on held-out: step_linear, not expo)
    assert (
        all("no significant difference" in r for r in rows)
        and "default - step_linear (best on held-out)" in text
    )
    kinds = [r["kind"] for r in ev.printed]
    assert kinds.count("headline") == 4 and kinds.count("cell") == 2 * 7  # 7 methods scored in every seed


def test_seeds_that_agree_are_called_better_by_the_holm_adjusted_t_test():
    runs = hand_made_seeds([0.04, 0.045, 0.05])
    ev = Evidence()
    text = "\n".join(headline_section(runs, ev) + headline_comparisons(runs, ev))
    assert _cell(text, "default").endswith("better |")
    row = next(line for line in text.splitlines() if "(step 10): default - truncated" in line)
    cells = [c.strip() for c in row.split("|")[1:-1]]
    p, p_holm = float(cells[5]), float(cells[6])
    assert p < p_holm <= 4 * p + 1e-4 and p_holm < 0.05 and cells[7] == "better"
    assert "Holm" in text and "t-test over seeds" in text


def test_one_seed_gets_no_seed_level_interval_and_no_claim():
    (res,) = hand_made_seeds([0.04])
    ev = Evidence()
    text = "\n".join(headline_section([res], ev) + headline_comparisons([res], ev))
    assert _cell(text, "default").startswith("| default | +0.040 - ([+0.0")
    rows = [line for line in text.splitlines() if ": default - " in line]
    assert rows and all(r.endswith("| no seed-level test (one seed) |") for r in rows)


def test_default_is_compared_with_the_truncated_run_at_its_compute_too():
    """The default's gate costs 5 steps in the hand-made cell, where the truncated run scores 0.52: at equal
    compute the default's +0.04-0.05 lead shrinks by 0.02, and that comparison joins the named ones."""
    runs = [with_equal_compute(res) for res in hand_made_seeds([0.04, 0.045, 0.05])]
    ev = Evidence()
    text = "\n".join(headline_section(runs, ev) + headline_comparisons(runs, ev))
    rows = [line for line in text.splitlines() if ": default - truncated at equal compute (" in line]
    assert len(rows) == 2 and all(r.split("|")[2].strip() == "+0.025" for r in rows)
    assert "(14 steps)" in rows[0] or "(15 steps)" in rows[0]
    compute = next(line for line in text.splitlines() if line.startswith("| default | 14") or
                   line.startswith("| default | 15"))  # fmt: skip
    assert "+0.025 [+0.0" in compute
    assert len([line for line in text.splitlines() if ": default - " in line]) == 6
