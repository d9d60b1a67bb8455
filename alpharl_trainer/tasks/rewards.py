"""Reward functions, usable directly as TRL `reward_funcs`.

TRL calls a reward function as `f(prompts=..., completions=..., completion_ids=..., **columns)`,
where completions are strings ("standard" datasets) or lists of `{"role", "content"}` messages
("conversational" ones), every other dataset column arrives as a keyword list (here: `answer`), and
`None` means "no reward for this row" (TRL turns it into NaN and ignores it). The factories return
callable class instances rather than closures: TRL's async rollout worker pickles reward functions,
and TRL logs each one under its `__name__`. Math answers are graded by `grading.grade_math`.
"""

from __future__ import annotations

from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.tasks.answers import extract_final_answer
from alpharl_trainer.tasks.base import Task
from alpharl_trainer.tasks.grading import grade_math


def completion_text(completion: str | list[dict]) -> str:
    """The text of a completion: the string itself, or the content of the last message of a conversation."""
    if isinstance(completion, str):
        return completion
    if not completion:
        return ""
    content = completion[-1].get("content") or ""
    if isinstance(content, list):  # multimodal content blocks: keep the text parts
        return "".join(part.get("text", "") for part in content if part.get("type") == "text")
    return content


def _answers(answer: list | None, completions: list, reward_name: str) -> list:
    if answer is None:
        raise AlphaRLError(f"reward {reward_name!r} needs an 'answer' (or 'solution') column in the dataset")
    if len(answer) != len(completions):
        raise AlphaRLError(
            f"reward {reward_name!r}: {len(completions)} completions but {len(answer)} answers"
        )
    return answer


def math_accuracy_reward(
    completions: list, answer: list | None = None, solution: list | None = None, **kwargs
) -> list[float | None]:
    """1.0 when the final answer (last `\\boxed{}` / `Answer:` line) equals the gold answer (column `answer`,
    or `solution` as TRL's `accuracy_reward` names it) under math-verify, 0.0 otherwise, None when the gold
    answer cannot be parsed (as TRL's `accuracy_reward`)."""
    answers = _answers(answer if answer is not None else solution, completions, "math_accuracy_reward")
    return [grade_math(completion_text(c), a).reward for c, a in zip(completions, answers, strict=True)]


def format_reward(completions: list, **kwargs) -> list[float]:
    """1.0 when the completion states a final answer (a closed `\\boxed{}` or an `Answer:` line), else 0.0."""
    return [float(extract_final_answer(completion_text(c)) is not None) for c in completions]


class TaskReward:
    """Exact-answer reward of a verifiable task: `task.score(completion, answer)`."""

    def __init__(self, task: Task):
        self.task = task
        self.__name__ = f"{task.name}_accuracy"

    def __call__(self, completions: list, answer: list | None = None, **kwargs) -> list[float]:
        answers = _answers(answer, completions, self.__name__)
        return [self.task.score(completion_text(c), a) for c, a in zip(completions, answers, strict=True)]


def task_reward(task: Task) -> TaskReward:
    """The exact-answer reward of `task`, reading the gold answer from the dataset column `answer`."""
    return TaskReward(task)


class OverlongPenalty:
    """DAPO's soft overlong punishment (eq. 13): 0 up to `max_completion_len - buffer_len` tokens, then
    linear down to -1 at `max_completion_len`, -1 beyond."""

    __name__ = "overlong_penalty"

    def __init__(self, max_completion_len: int, buffer_len: int, tokenizer=None):
        if not 0 < buffer_len <= max_completion_len:
            raise AlphaRLError(
                f"overlong penalty needs 0 < buffer_len <= max_completion_len, got {buffer_len} and "
                f"{max_completion_len}"
            )
        self.max_completion_len = max_completion_len
        self.buffer_len = buffer_len
        self.tokenizer = tokenizer

    def penalty(self, length: int) -> float:
        free = self.max_completion_len - self.buffer_len
        return max(-1.0, min(0.0, (free - length) / self.buffer_len))

    def __call__(self, completions: list, completion_ids: list | None = None, **kwargs) -> list[float]:
        """Lengths from `completion_ids` (TRL passes the generated token ids, EOS included), else from
        tokenizing the completion text with the tokenizer given at construction."""
        if completion_ids is None:
            if self.tokenizer is None:
                raise AlphaRLError("overlong_penalty needs completion_ids (TRL passes them) or a tokenizer")
            texts = [completion_text(c) for c in completions]
            completion_ids = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
        return [self.penalty(len(ids)) for ids in completion_ids]


def overlong_penalty(max_completion_len: int, buffer_len: int, tokenizer=None) -> OverlongPenalty:
    """DAPO's soft overlong punishment over completion token lengths (L_max, L_cache = buffer_len)."""
    return OverlongPenalty(max_completion_len, buffer_len, tokenizer)
