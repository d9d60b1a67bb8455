import pickle
import threading
from dataclasses import dataclass, field

import pytest

from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.tasks.answers import gold_text
from alpharl_trainer.tasks.base import Problem
from alpharl_trainer.tasks.grading import grade_math
from alpharl_trainer.tasks.rewards import (
    completion_text,
    format_reward,
    math_accuracy_reward,
    overlong_penalty,
    task_reward,
)


@dataclass
class EchoTask:
    """A minimal Task: the answer is the completion, stripped."""

    name: str = field(default="echo", init=False)

    def problems(self, split: str, n: int, seed: int = 0) -> list[Problem]:
        return [Problem(prompt=f"say {i}:", answer=str(i), solution=str(i)) for i in range(n)]

    def extract_answer(self, completion: str) -> str | None:
        return completion.strip() or None

    def score(self, completion: str, answer: str) -> float:
        return float(self.extract_answer(completion) == answer)


def chat(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


def test_unparsable_gold_gives_none_like_trl():
    grade = grade_math("\\boxed{1}", "")
    assert grade.reward is None and "cannot be parsed" in grade.reason
    assert math_accuracy_reward(["\\boxed{1}"], answer=[""]) == [None]


def test_math_accuracy_reward_standard_and_conversational():
    completions = ["\\boxed{4}", "\\boxed{5}", "Answer: 4"]
    assert math_accuracy_reward(completions, answer=["4"] * 3) == [1.0, 0.0, 1.0]
    assert math_accuracy_reward([chat(c) for c in completions], answer=["4"] * 3) == [1.0, 0.0, 1.0]
    assert math_accuracy_reward(completions, solution=["4"] * 3) == [1.0, 0.0, 1.0]  # TRL's column name


def test_rewards_accept_the_keywords_trl_passes():
    """TRL 1.16 `_calculate_rewards` calls f(prompts=, completions=, completion_ids=, **columns,
    trainer_state=, log_extra=, log_metric=)."""
    kwargs = dict(
        prompts=["2+2?"],
        completions=["\\boxed{4}"],
        completion_ids=[[1, 2, 3]],
        answer=["4"],
        category=[""],
        trainer_state=None,
        log_extra=lambda *a: None,
        log_metric=lambda *a: None,
    )
    assert math_accuracy_reward(**kwargs) == [1.0]
    assert format_reward(**kwargs) == [1.0]
    assert task_reward(EchoTask())(**{**kwargs, "completions": ["4"]}) == [1.0]
    assert overlong_penalty(4, 2)(**kwargs) == [-0.5]


def test_missing_or_mismatched_answer_column_is_a_clear_error():
    with pytest.raises(AlphaRLError, match=r"'answer' \(or 'solution'\) column"):
        math_accuracy_reward(["\\boxed{4}"])
    with pytest.raises(AlphaRLError, match="2 completions but 1 answers"):
        task_reward(EchoTask())(["1", "2"], answer=["1"])


def test_grading_works_outside_the_main_thread():
    """math-verify's signal-based timeouts fail off the main thread; the reward must disable them there."""
    out = {}
    worker = threading.Thread(
        target=lambda: out.update(r=math_accuracy_reward(["\\boxed{\\frac{2}{4}}"], ["0.5"]))
    )
    worker.start()
    worker.join()
    assert out["r"] == [1.0]


def test_format_reward():
    completions = ["\\boxed{4}", "4", "Work\nAnswer: 3", "\\boxed{4", chat("\\boxed{x}")]
    assert format_reward(completions) == [1.0, 0.0, 1.0, 0.0, 1.0]


def test_task_reward_scores_with_the_task_and_is_named_and_picklable():
    from trl.trainer.utils import get_callable_name

    reward = task_reward(EchoTask())
    assert reward(["7", chat(" 7 "), "8"], answer=["7", "7", "7"]) == [1.0, 1.0, 0.0]
    assert get_callable_name(reward) == "echo_accuracy"
    assert pickle.loads(pickle.dumps(reward))(["3"], answer=["3"]) == [1.0]


def test_task_reward_with_the_registered_tasks():
    from alpharl_trainer import tasks

    for name in tasks.TASKS:
        task = tasks.get_task(name)
        problems = task.problems("heldout", 5)
        reward = task_reward(task)
        golds = [p.answer for p in problems]
        assert reward([p.solution for p in problems], answer=golds) == [1.0] * 5
        assert reward(["?"] * 5, answer=golds) == [0.0] * 5


def test_overlong_penalty_is_dapo_soft_punishment():
    penalty = overlong_penalty(max_completion_len=10, buffer_len=4)
    lengths = [0, 6, 7, 8, 10, 11]
    assert penalty(None, completion_ids=[[0] * n for n in lengths]) == [0.0, 0.0, -0.25, -0.5, -1.0, -1.0]
    assert penalty.__name__ == "overlong_penalty"


def test_overlong_penalty_tokenizes_text_when_ids_are_missing():
    class CharTokenizer:
        def __call__(self, texts, add_special_tokens=True):
            return {"input_ids": [list(t) for t in texts]}

    penalty = overlong_penalty(10, 4, tokenizer=CharTokenizer())
    assert penalty(["a" * 8, chat("a" * 3)]) == [-0.5, 0.0]
    with pytest.raises(AlphaRLError, match="completion_ids"):
        overlong_penalty(10, 4)(["abc"])
    with pytest.raises(AlphaRLError, match="buffer_len"):
        overlong_penalty(10, 0)


def test_completion_text():
    assert completion_text("x") == "x"
    assert completion_text([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]) == "a"
    assert completion_text([{"role": "assistant", "content": [{"type": "text", "text": "a"}]}]) == "a"
    assert completion_text([]) == ""


def test_multi_part_gold_is_graded_part_by_part_through_the_trl_reward():
    parts = gold_text({"x": 3, "y": "\\frac{1}{2}"})  # a string: it survives a datasets column
    completions = [
        "x = 3\ny = 0.5",
        "y: \\boxed{\\frac12}\nx: \\boxed{3}",
        "\\boxed{3}, \\boxed{2}",
        "Answer: 3",
    ]
    assert math_accuracy_reward(completions, answer=[parts] * 4) == [1.0, 1.0, 0.0, 0.0]
    assert "part 'y'" in grade_math(completions[2], parts).reason
    assert grade_math("\\boxed{\\{1, 2\\}}", "\\{1, 2\\}").reward == 1.0  # LaTeX braces are not parts
