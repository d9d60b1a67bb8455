"""Scoring a state dict the same way for every method: held-out (choices), test (the results), off-task.

One model object is loaded once and its weights are overwritten per candidate, so scoring a
prediction costs forward passes only. Greedy accuracy is teacher-forced exact match (equal to greedy
decoding on these tasks, one forward pass per batch); sampled accuracy (avg@n) decodes a fixed test
subset with one seed, so every model sees the same random numbers and the same budget.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.evaluate import EvalSettings, TransformersEngine, evaluate, load_folder, teacher_forced
from alpharl_trainer.reproduce.config import EvalSpec
from alpharl_trainer.tasks import get_task

OFF_TASK = {"arithmetic": "sort", "sort": "arithmetic"}
COMPLETION_TOKENS = {"arithmetic": 8, "sort": 10}
"""Completion tokens every run and evaluation of a task allows: its longest answer (a 5-digit sum, an
9-letter list) and EOS, with the tiny recipes' 8 kept for arithmetic."""


def completion_length(task: str) -> int:
    return COMPLETION_TOKENS[task]


BATCH = 500


def test_problems(task, spec: EvalSpec) -> list:
    """The suite's test split: `spec.test_problems` problems of seed `spec.test_seed`, none of whose prompts
    is among the first `spec.unseen_after` of seed 0 (drawn from a longer stream, the order kept)."""
    if not spec.unseen_after:
        return task.problems("test", spec.test_problems, seed=spec.test_seed)
    if spec.test_seed == 0:
        raise AlphaRLError("eval.unseen_after needs a test_seed other than 0 (seed 0 is what it leaves out)")
    seen = {p.prompt for p in task.problems("test", spec.unseen_after, seed=0)}
    drawn = 2 * spec.test_problems
    while True:
        fresh = [p for p in task.problems("test", drawn, seed=spec.test_seed) if p.prompt not in seen]
        if len(fresh) >= spec.test_problems:
            return fresh[: spec.test_problems]
        if drawn > 50 * (spec.test_problems + spec.unseen_after):
            raise AlphaRLError(f"{task.name}: too few test problems outside the first {spec.unseen_after}")
        drawn *= 2


@dataclass
class Scores:
    greedy: float
    """Test accuracy, greedy (teacher-forced exact match)."""
    logprob: float
    """Mean log-probability of the gold test completion."""
    sampled: float
    """avg@n accuracy on the sampled test subset."""
    off_task: float
    """Greedy accuracy on the other task's test split."""
    per_problem: list[int]
    """Greedy correctness (0/1) of every test problem, in the split's order: what paired comparisons use."""
    off_task_per_problem: list[int]
    """Greedy correctness (0/1) of every off-task problem (kept in outcomes.npz)."""


class Evaluator:
    def __init__(self, base: Path, task: str, spec: EvalSpec, mix: str = "rl", heldout_seed: int = 0):
        """`mix`: the regime's; `heldout_seed`: the run's data seed, so the held-out problems are the ones the
        product run's gate scores (the recipe's held-out split, `task_seed`); the test split is fixed."""
        self.model, self.tokenizer = load_folder(base, dtype="float32", device="cpu")
        self.task = get_task(task, mix=mix)
        self.spec = spec
        self.test = test_problems(self.task, spec)
        self.heldout = self.task.problems("heldout", spec.heldout_problems, seed=heldout_seed)
        self.off_task = get_task(OFF_TASK[task], mix="all").problems(
            "test", spec.off_task_problems, seed=spec.test_seed
        )
        self._params = dict(self.model.named_parameters())
        tok = self.tokenizer
        prompts = tok([p.prompt for p in self.heldout])["input_ids"]
        golds = tok([p.solution for p in self.heldout], add_special_tokens=False)["input_ids"]
        self.heldout_tokens = sum(len(a) + len(b) + 1 for a, b in zip(prompts, golds, strict=True))
        """Tokens one scoring of the held-out problems reads (prompt, gold completion, EOS): its compute."""

    @torch.no_grad()
    def load(self, weights: dict[str, torch.Tensor]) -> None:
        """Write `weights` into the model; every parameter must be given (a tied lm_head is the embedding)."""
        missing = [n for n, p in self._params.items() if n not in weights]
        unknown = [n for n in weights if n not in self._params]
        if missing or unknown:
            raise AlphaRLError(
                f"weights do not match the model: missing {missing[:3]}, unknown {unknown[:3]}"
            )
        for name, value in weights.items():
            self._params[name].copy_(value)

    def _greedy(self, problems) -> dict:
        return teacher_forced(self.model, self.tokenizer, problems, batch_size=BATCH)

    def heldout_accuracy(self, weights: dict[str, torch.Tensor]) -> float:
        self.load(weights)
        return self._greedy(self.heldout)["exact"]

    def heldout_outcomes(self, weights: dict[str, torch.Tensor]) -> list[int]:
        """Greedy correctness (0/1) of every held-out problem: what choices are paired on."""
        self.load(weights)
        return [int(x) for x in self._greedy(self.heldout)["exact_per_problem"]]

    def test_greedy(self, weights: dict[str, torch.Tensor]) -> tuple[float, float]:
        """(accuracy, mean gold log-prob) on the test split: the accuracy-vs-step curve."""
        result = self._test(weights)
        return result["exact"], result["logprob"]

    def test_outcomes(self, weights: dict[str, torch.Tensor]) -> list[int]:
        """Greedy correctness (0/1) of every test problem."""
        return [int(x) for x in self._test(weights)["exact_per_problem"]]

    def _test(self, weights: dict[str, torch.Tensor]) -> dict:
        self.load(weights)
        return self._greedy(self.test)

    def test_scores(self, weights: dict[str, torch.Tensor]) -> Scores:
        test = self._test(weights)
        greedy, logprob = test["exact"], test["logprob"]
        spec = self.spec
        settings = EvalSettings(
            greedy=False,
            samples=spec.samples,
            temperature=spec.temperature,
            top_p=1.0,
            max_new_tokens=completion_length(self.task.name),
        )
        engine = TransformersEngine(self.model, self.tokenizer, batch_size=BATCH, progress=False)
        sampled = evaluate(engine, self.task, self.test[: spec.sampled_problems], settings)
        off = self._greedy(self.off_task)
        per_problem = [int(x) for x in test["exact_per_problem"]]
        off_per_problem = [int(x) for x in off["exact_per_problem"]]
        sampled_acc = sampled.summary[f"avg@{spec.samples}"]
        return Scores(greedy, logprob, sampled_acc, off["exact"], per_problem, off_per_problem)
