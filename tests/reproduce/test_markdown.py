"""results.md's targets table on a hand-made result: paired verdicts, and a run without a gain to share."""

from __future__ import annotations

from alpharl_trainer.reproduce.markdown import _targets_section
from alpharl_trainer.reproduce.table import flat_rows
from tests.reproduce.hand_made_result import hand_made_result


def test_markdown_states_paired_verdicts_and_runs_without_gain():
    res = hand_made_result()
    text = "\n".join(_targets_section([res], {"r": flat_rows([res])}))
    # default 0.59 vs step_linear 0.60 at 16 steps: 8 problems of 800, all one way: the interval excludes 0
    assert "-0.010 [" in text and "worse (vs step_linear at 16 steps)" in text
    assert "+0.040 [" in text and "better" in text
    no_gain = {**res, "admission": {"gain": 0.001, "gain_in_se": 0.5}}
    text = "\n".join(_targets_section([no_gain], {"r": flat_rows([no_gain])}))
    assert "n/a: no measurable gain" in text
