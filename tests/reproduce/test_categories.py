"""The test problems' categories are recorded once per run and kept beside the outcomes."""

from __future__ import annotations

from alpharl_trainer.reproduce.categories import split_categories
from alpharl_trainer.reproduce.config import EvalSpec, Regime, RunSpec, Suite
from alpharl_trainer.reproduce.outcomes import arrays_of
from tests.reproduce.hand_made_result import hand_made_result


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


def test_the_categories_are_kept_as_masks_beside_the_outcomes():
    res = hand_made_result()
    arrays = arrays_of(res)
    small, large = arrays["r/category/2+1"], arrays["r/category/3+3"]
    assert sum(small) == 200 and sum(large) == 600 and small[:5] == [1, 0, 0, 0, 1]
