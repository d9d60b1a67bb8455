"""The gate's judge with rewards that depend on what is sampled: reproducible scores, the training run's
random stream untouched, and several weighted, partly-None rewards combined as TRL combines them."""

from __future__ import annotations

import math

import pytest
import torch

from alpharl_trainer.trainer import AlphaRLGRPOTrainer
from alpharl_trainer.trainer.acceptance import AcceptanceScorer
from tests.trainer.harness import grpo_args, sevens_reward, tiny_trainer

pytestmark = pytest.mark.usefixtures("single_thread")


class Recording:
    """A reward recording every completion and value it returns; `none_every`: every n-th value is None."""

    def __init__(self, inner, none_every: int = 0):
        self.inner, self.none_every, self.seen = inner, none_every, []
        self.__name__ = f"recording_{getattr(inner, '__name__', 'reward')}"

    def __call__(self, completions, **kwargs):
        values = list(self.inner(completions=completions, **kwargs))
        if self.none_every:
            values = [None if i % self.none_every == 0 else v for i, v in enumerate(values)]
        self.seen.extend(zip(completions, values, strict=True))
        return values


def ones_in(completions, **kwargs) -> list[float]:
    return [float(c.count("1")) for c in completions]


@pytest.fixture(scope="module")
def trainer(tmp_path_factory):
    sevens, ones = Recording(sevens_reward), Recording(ones_in, none_every=3)
    args = grpo_args(
        tmp_path_factory.mktemp("scorer") / "run", reward_weights=[0.5, 2.0], max_completion_length=8
    )
    trainer = tiny_trainer(AlphaRLGRPOTrainer, args, [sevens, ones], train=32, heldout=8)
    trainer.rows = [trainer.eval_dataset[i] for i in range(len(trainer.eval_dataset))]
    return trainer


def _clear(trainer) -> None:
    for func in trainer.reward_funcs:
        func.seen.clear()


def test_the_same_weights_score_the_same_and_the_seed_matters(trainer):
    """Common random numbers: a candidate's score depends on its weights, not on when it was scored; the
    seed does change the samples (else "same seed" would be an empty claim)."""
    scorer = AcceptanceScorer(trainer, trainer.rows, samples=4, seed=123)
    _clear(trainer)
    first = scorer.score()
    completions = [c for c, _ in trainer.reward_funcs[0].seen]
    _clear(trainer)
    assert scorer.score() == first
    assert [c for c, _ in trainer.reward_funcs[0].seen] == completions
    _clear(trainer)
    AcceptanceScorer(trainer, trainer.rows, samples=4, seed=124).score()
    assert [c for c, _ in trainer.reward_funcs[0].seen] != completions


def test_scoring_leaves_the_training_random_stream_untouched(trainer):
    torch.manual_seed(7)
    expected = torch.rand(5)  # what training would draw next without a gate in between
    torch.manual_seed(7)
    AcceptanceScorer(trainer, trainer.rows, samples=2, seed=0).score()
    torch.testing.assert_close(torch.rand(5), expected, rtol=0, atol=0)


def test_weighted_and_partly_none_rewards_combine_as_trl_does(trainer):
    """Per completion: sum of weight x reward over the functions that returned a value (TRL's nansum); a
    completion no function scored is left out of the mean, not counted as 0."""
    _clear(trainer)
    score = AcceptanceScorer(trainer, trainer.rows, samples=3, seed=5).score()
    sevens, ones = trainer.reward_funcs
    assert len(sevens.seen) == len(ones.seen) == 8 * 3
    assert sum(v is None for _, v in ones.seen) == 8  # every third completion: None from the second function
    totals = [
        0.5 * s + (0.0 if o is None else 2.0 * o)
        for (_, s), (_, o) in zip(sevens.seen, ones.seen, strict=True)
    ]
    assert score == pytest.approx(sum(totals) / len(totals), rel=1e-12)
    assert not math.isclose(score, sum(0.5 * s for _, s in sevens.seen) / 24)  # the weights did matter


def test_a_completion_no_reward_scored_is_left_out(trainer):
    sevens, ones = trainer.reward_funcs
    sevens.none_every, ones.none_every = 2, 2  # both None on the same completions
    try:
        _clear(trainer)
        score = AcceptanceScorer(trainer, trainer.rows, samples=2, seed=9).score()
        scored = [
            0.5 * s + 2.0 * o for (_, s), (_, o) in zip(sevens.seen, ones.seen, strict=True) if s is not None
        ]
        assert len(scored) == 8 and score == pytest.approx(sum(scored) / len(scored), rel=1e-12)
    finally:
        sevens.none_every, ones.none_every = 0, 3


def test_greedy_scoring_is_the_reward_of_each_prompt_s_greedy_completion(trainer):
    """The verifier-task gate: one greedy completion per prompt (samples ignored), no randomness at all."""
    from transformers import GenerationConfig

    tok = trainer.processing_class
    _clear(trainer)
    result = AcceptanceScorer(trainer, trainer.rows, samples=4, seed=1, greedy=True).evaluate()
    assert len(result.per_prompt) == len(trainer.rows) == len(trainer.reward_funcs[0].seen)  # one each
    side, tok.padding_side = tok.padding_side, "left"
    config = GenerationConfig(
        do_sample=False, max_new_tokens=trainer.args.max_completion_length, pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
    )  # fmt: skip
    enc = tok(
        [row["prompt"] for row in trainer.rows], return_tensors="pt", padding=True, add_special_tokens=False
    )
    out = trainer.model.eval().generate(**enc, generation_config=config)
    tok.padding_side = side
    texts = tok.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
    assert [c for c, _ in trainer.reward_funcs[0].seen] == texts  # the same greedy completions
    sevens = [float(v) for _, v in trainer.reward_funcs[0].seen]
    ones = [v for _, v in trainer.reward_funcs[1].seen]
    expected = [0.5 * s + (0.0 if o is None else 2.0 * o) for s, o in zip(sevens, ones, strict=True)]
    assert result.per_prompt == pytest.approx(expected)
    assert AcceptanceScorer(trainer, trainer.rows, samples=2, seed=99, greedy=True).evaluate() == result
