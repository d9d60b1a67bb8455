"""The gate's judge without generating: 'exact_greedy' gives each prompt the reward greedy decoding gets,
'exact' the probability that the training sampler writes the gold completion (what 'sampled' estimates);
both refuse a reward, data or sampler for which that would not be the same number."""

from __future__ import annotations

import math

import pytest

from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.policies import shipped_policy
from alpharl_trainer.tasks import get_task, to_dataset
from alpharl_trainer.tasks.rewards import task_reward
from alpharl_trainer.trainer import AlphaRLGRPOTrainer
from alpharl_trainer.trainer.acceptance import AcceptanceScorer, generation_config
from alpharl_trainer.trainer.reference_scoring import ReferenceScorer, check_reference_scoring
from tests.trainer.harness import grpo_args, load, sevens_reward, tiny_trainer

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def trainer(tmp_path_factory):
    """The shipped tiny policy on the main job's sort prompts (it sorts some of them: 0/1 and in between)."""
    task = get_task("sort", mix="rl")
    args = grpo_args(tmp_path_factory.mktemp("forced") / "run", max_completion_length=8, reward_weights=[2.0])
    model, tok = load(shipped_policy("tiny"))
    trainer = AlphaRLGRPOTrainer(
        model=model, reward_funcs=[task_reward(task)], args=args, processing_class=tok,
        train_dataset=to_dataset(task, "train", 32), eval_dataset=to_dataset(task, "heldout", 48),
    )  # fmt: skip
    trainer.rows = [trainer.eval_dataset[i] for i in range(len(trainer.eval_dataset))]
    return trainer


def test_exact_greedy_equals_greedy_generation_prompt_by_prompt(trainer):
    generated = AcceptanceScorer(trainer, trainer.rows, samples=1, seed=0, greedy=True).evaluate()
    forced = ReferenceScorer(trainer, trainer.rows, seed=0, greedy=True).evaluate()
    assert forced.per_prompt == generated.per_prompt
    assert 0 < forced.mean < 2.0  # some right, some wrong: the comparison could fail
    assert forced.completions == 0 and forced.tokens > 0 and generated.completions == len(trainer.rows)
    # beside each greedy outcome, the probability of the gold completion at temperature 1 (what 'exact' gives
    # at that temperature, unweighted): the measure a race's shortlist ranks by; generation gives none
    assert generated.probability is None and len(forced.probability) == len(trainer.rows)
    sampler = generation_config(trainer)
    saved, sampler.temperature = sampler.temperature, 1.0
    try:
        exact = ReferenceScorer(trainer, trainer.rows, seed=0).evaluate()
    finally:
        sampler.temperature = saved
    assert forced.probability == pytest.approx([v / 2.0 for v in exact.per_prompt])  # reward weight 2


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_exact_is_what_sampling_estimates(trainer, temperature):
    """Per prompt, P(gold) against the share of 64 samples that are right; overall within 4 SEs."""
    sampler = generation_config(trainer)
    saved, sampler.temperature = sampler.temperature, temperature
    try:
        sampled = AcceptanceScorer(trainer, trainer.rows, samples=64, seed=5).evaluate()
        forced = ReferenceScorer(trainer, trainer.rows, seed=5).evaluate()
    finally:
        sampler.temperature = saved
    diffs = [s - f for s, f in zip(sampled.per_prompt, forced.per_prompt, strict=True)]
    se = math.sqrt(sum(f / 2 * (2 - f) for f in forced.per_prompt) / 64) / len(diffs)  # Bernoulli x weight 2
    assert abs(sum(diffs) / len(diffs)) < 4 * se + 1e-9
    assert 0.05 < forced.mean < 1.95 and len(set(forced.per_prompt)) > 3  # probabilities, not 0/1 outcomes
    assert max(abs(d) for d in diffs) < 0.6  # each prompt's 64-sample share near its probability


def test_refused_where_it_is_not_the_reward(trainer, tmp_path):
    check_reference_scoring(trainer, "exact")  # the fixture's setup is accepted
    sampler = generation_config(trainer)
    saved, sampler.top_p = sampler.top_p, 0.9
    try:
        with pytest.raises(AlphaRLError, match="top_p"):
            check_reference_scoring(trainer, "exact")
        check_reference_scoring(trainer, "exact_greedy")  # greedy ignores the sampler's settings
    finally:
        sampler.top_p = saved
    other = tiny_trainer(AlphaRLGRPOTrainer, trainer.args, [sevens_reward], train=8, heldout=4)
    with pytest.raises(AlphaRLError, match="exact-answer reward"):
        check_reference_scoring(other, "exact_greedy")
    other.reward_funcs = trainer.reward_funcs
    other.eval_dataset = other.eval_dataset.remove_columns("reference")
    with pytest.raises(AlphaRLError, match="'reference' column"):
        check_reference_scoring(other, "exact")
