"""The gate's judge without generating, for tasks whose verifier accepts one completion: the gold one.

Where the reward is a synthetic task's exact-answer reward and the task's gold completion is the only one its
verifier accepts (whitespace around it aside), a completion's expected reward is the probability that the
sampler writes the gold completion, and greedy decoding's reward is whether it does. Both come from one
teacher-forced forward pass over prompt + gold (`teacher_forcing.score_references`), so scoring a candidate
costs one forward pass per prompt instead of token-by-token generation of `samples` completions, and the
score has no sampling noise: the paired difference between two candidates varies with the prompts only.

'exact' is the expected reward of 'sampled' (the training sampler's temperature; top-p, top-k, min-p and a
repetition penalty change the probabilities and are refused), 'exact_greedy' equals 'greedy'. Completions
with extra whitespace around the gold are accepted by the verifier but not counted here: the score is a lower
bound that a policy trained on the gold completion meets to within their small probability.
"""

from __future__ import annotations

import math

import torch
from trl.data_utils import maybe_apply_chat_template

from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.tasks.rewards import TaskReward
from alpharl_trainer.teacher_forcing import score_references
from alpharl_trainer.trainer.acceptance import AcceptanceScorer, generation_config

REFERENCE = "reference"
"""The held-out column holding each prompt's gold completion (written for tasks with `unique_completion`)."""


def check_reference_scoring(trainer, scoring: str) -> None:
    """Refuse 'exact'/'exact_greedy' scoring where it would not equal the generated kind: a reward other than
    a task's exact answer, held-out rows without the gold completion, or sampling settings that reshape the
    probabilities."""
    if not all(isinstance(f, TaskReward) for f in trainer.reward_funcs):
        raise AlphaRLError(
            f"alpharl_acceptance_scoring: {scoring} scores the gold completion, which equals the reward only "
            "for a synthetic task's exact-answer reward alone (rewards: [task]); use 'sampled' or 'greedy'"
        )
    data = trainer.eval_dataset
    if data is None or REFERENCE not in data.column_names:
        raise AlphaRLError(
            f"alpharl_acceptance_scoring: {scoring} needs each held-out prompt's gold completion (a "
            f"'{REFERENCE}' column, written for tasks whose verifier accepts it alone); use 'sampled' or "
            "'greedy'"
        )
    if scoring == "exact":
        sampler = generation_config(trainer)  # what the trainer's sampling (and 'sampled' scoring) uses
        reshaped = {
            "top_p": sampler.top_p not in (None, 1.0),
            "top_k": sampler.top_k not in (None, 0, -1),
            "min_p": sampler.min_p not in (None, 0.0),
            "repetition_penalty": sampler.repetition_penalty not in (None, 1.0),
        }
        if any(reshaped.values()):
            names = ", ".join(k for k, v in reshaped.items() if v)
            raise AlphaRLError(
                f"alpharl_acceptance_scoring: exact computes sampling probabilities at the temperature only; "
                f"this run also sets {names}: use 'sampled'"
            )


class ReferenceScorer(AcceptanceScorer):
    """AcceptanceScorer's interface and row split; each row's score is the (reward-weighted) probability that
    sampling writes its gold completion, or whether greedy decoding does."""

    def __init__(self, trainer, rows: list[dict], seed: int, greedy: bool = False, batch_size: int = 64):
        super().__init__(trainer, rows, samples=1, seed=seed, batch_size=batch_size, greedy=greedy)
        self.weight = float(trainer.reward_weights.sum())  # every reward function is the task's exact answer
        self.generates = False
        tok = trainer.processing_class
        self._encoded = []
        """(prompt ids, gold completion ids, rows) per batch, tokenized once: every candidate reads them."""
        for b in range(self.batches):  # as many batches on every rank (ZeRO-3: its forward passes collect)
            batch = self.rows[b * batch_size : (b + 1) * batch_size]
            texts = [maybe_apply_chat_template(row, tok)["prompt"] for row in batch] or [tok.eos_token]
            prompts = tok(texts, add_special_tokens=False)["input_ids"]
            refs = tok([row[REFERENCE] for row in batch] or [""], add_special_tokens=False)["input_ids"]
            self._encoded.append((prompts, refs, len(batch)))

    @property
    def engine(self) -> str:
        return "teacher_forced"

    def _score_local(self) -> torch.Tensor:
        trainer, tok = self.trainer, self.trainer.processing_class
        config = generation_config(trainer)
        eos = config.eos_token_id if config.eos_token_id is not None else tok.eos_token_id
        stops = list(eos) if isinstance(eos, (list, tuple)) else [eos]
        pad = tok.pad_token_id if tok.pad_token_id is not None else stops[0]
        temperature = 1.0 if self.greedy else float(config.temperature or 1.0)
        scores, probabilities = [], []
        with self._policy() as policy:
            for prompts, refs, rows in self._encoded:  # a rank without rows still joins the forward passes
                exact, logprob = score_references(
                    policy, prompts, refs, stops, pad, temperature, config.max_new_tokens, len(prompts)
                )
                if rows:
                    self._tokens += sum(len(p) + len(r) + 1 for p, r in zip(prompts, refs, strict=True))
                    probability = torch.tensor([math.exp(lp) for lp in logprob], dtype=torch.float64)
                    values = torch.tensor([float(e) for e in exact], dtype=torch.float64)
                    scores.append((values if self.greedy else probability) * self.weight)
                    probabilities.append(probability)
        self._probability = self._per_row(probabilities)
        return self._per_row(scores)
