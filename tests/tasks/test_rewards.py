import pickle
import threading
from dataclasses import dataclass, field

import pytest

from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.tasks.base import Problem
from alpharl_trainer.tasks.rewards import (
    completion_text,
    extract_final_answer,
    format_reward,
    gold_text,
    grade_math,
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


@pytest.mark.parametrize(
    ("completion", "expected"),
    [
        ("so \\boxed{3} then \\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),  # the last box
        ("\\boxed{\\sqrt{\\frac{a}{b}}}", "\\sqrt{\\frac{a}{b}}"),  # nested braces
        ("\\boxed{4} and then \\boxed{5", "4"),  # an unclosed (truncated) box is no answer
        ("Work.\nAnswer: 42", "42"),
        ("Work.\n**Final Answer:** $\\frac{1}{3}$.", "\\frac{1}{3}"),
        ("Answer: the total is $18$ dollars", "18"),
        ("Answer: $18", "$18"),  # DAPO's literal 'Answer: $Answer' with a stray dollar
        ("\\boxed{18} hmm, no.\nAnswer: 17", "17"),  # the later statement wins
        ("Answer: 17\nActually \\boxed{18}", "18"),
        ("The answer is 42.", None),
        ("The answer: 42", None),  # only a line starting with 'Answer:' counts
    ],
)
def test_extract_final_answer(completion, expected):
    assert extract_final_answer(completion) == expected


@pytest.mark.parametrize(
    ("gold", "completion"),
    [
        ("\\frac{1}{2}", "\\boxed{0.5}"),
        ("0.5", "Answer: \\frac12"),
        ("\\frac43", "\\boxed{\\frac{4}{3}}"),
        ("x^2+1", "\\boxed{1+x^{2}}"),
        (27.0, "\\boxed{27}"),  # amc.jsonl stores answers as floats
        (27, "Answer: 27"),
        ("\\text{(C)}", "\\boxed{C}"),
        ("3", "\\boxed{3 \\text{ apples}}"),
        ("(1,2)", "\\boxed{(1, 2)}"),
        ("4.5e33", "\\boxed{4.5 \\times 10^{33}}"),  # minerva.jsonl's e-notation
        ("1e-5", "Answer: $0.00001$"),
        ("12\\,345", "\\boxed{12345}"),  # LaTeX thousands separators (math-verify alone reads 357)
        ("1\\,950", "Answer: 1950"),
        ("1\\,000\\,000", "\\boxed{1000000}"),
        ("12345", "\\boxed{12\\,345}"),
        ("1{,}000", "\\boxed{1000}"),
        ("x=5", "\\boxed{5}"),  # a gold equation that names the unknown accepts its value
        ("f(x)=x^2", "\\boxed{x^2}"),
        ("SRMC=LRMC", "\\boxed{SRMC = LRMC}"),
        ("1,1", "\\boxed{1, 1}"),
        ("North East", "\\boxed{\\text{north  east}}"),  # text-only gold: compared as words
    ],
)
def test_grade_math_accepts_equivalent_forms(gold, completion):
    grade = grade_math(completion, gold)
    assert grade.reward == 1.0, grade.reason


@pytest.mark.parametrize(
    ("gold", "completion", "reason_part"),
    [
        ("27", "\\boxed{26}", "predicted '26'"),
        ("\\frac{1}{2}", "\\boxed{\\frac{1}{3}}", "gold"),
        ("27", "I am fairly sure it is 27", "no final answer"),
        ("x^2+1", "\\boxed{x^2-1}", "predicted"),
        ("3e6", "\\boxed{3 \\times 10^{7}}", "predicted"),
        ("12\\,345", "\\boxed{357}", "predicted"),  # what the separator used to be read as
        ("1\\,950", "\\boxed{951}", "predicted"),
        ("1\\,000\\,000", "\\boxed{0}", "predicted"),
        ("(1,1)", "\\boxed{11}", "predicted"),  # a plain comma is not a separator
        ("SRMC=LRMC", "\\boxed{LRMC}", "relation"),  # math-verify compares one side of the equation
        ("1,1", "\\boxed{1}", "lists 2 items"),  # math-verify reads "1,1" as the set {1}
        ("\\{1,1\\}", "Answer: 1", "lists 2 items"),
        ("North East", "\\boxed{Northeast}", "compared as text"),
    ],
)
def test_grade_math_rejects_wrong_or_missing_answers(gold, completion, reason_part):
    grade = grade_math(completion, gold)
    assert grade.reward == 0.0
    assert reason_part in grade.reason


def test_unparsable_gold_gives_none_like_trl():
    grade = grade_math("\\boxed{1}", "")
    assert grade.reward is None and "cannot be parsed" in grade.reason
    assert math_accuracy_reward(["\\boxed{1}"], answer=[""]) == [None]


def test_math_accuracy_reward_standard_and_conversational():
    completions = ["\\boxed{4}", "\\boxed{5}", "Answer: 4"]
    assert math_accuracy_reward(completions, answer=["4"] * 3) == [1.0, 0.0, 1.0]
    assert math_accuracy_reward([chat(c) for c in completions], answer=["4"] * 3) == [1.0, 0.0, 1.0]


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
    with pytest.raises(AlphaRLError, match="'answer' column"):
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


def test_gold_text_normalises_every_answer_format():
    assert gold_text(27.0) == "27"
    assert gold_text(2.5) == "2.5"
    assert gold_text(7) == "7"
    assert gold_text(" \\frac{1}{2} ") == "\\frac{1}{2}"
    assert gold_text(["$5$", 3.0]) == "$5$, 3"
    assert gold_text({"integer": 42, "square_of": [8, 4.0]}) == '{"integer": "42", "square_of": "8, 4"}'
    for bad in (None, True, {"a": {"b": 1}}, {}, float("nan"), float("inf"), [], [[1, 2]]):
        with pytest.raises(AlphaRLError):
            gold_text(bad)


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


@pytest.mark.parametrize(
    ("gold", "completion"),
    [
        ("1\u00a0000", "\\boxed{1000}"),  # a no-break space between digit groups used to parse as 0
        ("1000", "\\boxed{1\u202f000}"),  # narrow no-break space
        ("1000000", "Answer: 1\u2009000\u2009000"),  # thin spaces
        ("12", "\\boxed{1\u200b2}"),  # zero-width space (category Cf) used to parse as 1
        ("12", "\\boxed{\u20601\ufeff2}"),  # word joiner, byte-order mark
        ("12", "\\boxed{\uff11\uff12}"),  # full-width digits
        ("12", "\\boxed{\u0661\u0662}"),  # Arabic-Indic digits
        ("\u0661\u00a0\u0660\u0660\u0660", "\\boxed{1000}"),
        ("\\frac{1}{2}", "\uff21nswer: 0.5"),  # full-width label
    ],
)
def test_unicode_spacing_invisible_characters_and_digits_are_normalised(gold, completion):
    grade = grade_math(completion, gold)
    assert grade.reward == 1.0, grade.reason


def test_unicode_digit_groups_are_not_read_as_other_numbers():
    assert grade_math("\\boxed{0}", "1\u00a0000").reward == 0.0
    assert grade_math("\\boxed{1}", "1\u200b2").reward == 0.0
    assert grade_math("\\boxed{1\u00a000}", "100").reward == 0.0  # not a group of three digits


def test_the_space_separators_are_every_unicode_zs_character_but_the_ascii_space():
    import sys
    import unicodedata

    from alpharl_trainer.tasks.rewards import UNICODE_SPACES

    zs = {chr(c) for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) == "Zs"}
    assert set(UNICODE_SPACES) == zs - {" "}


@pytest.mark.parametrize("completion", ["\\boxed{3 = 7}", "Answer: $3=7$", "\\boxed{2+5 = 7}"])
def test_a_relation_in_the_box_is_not_the_bare_value(completion):
    """math-verify compares the right-hand side of a predicted relation with a bare gold value: `3 = 7`
    used to score as 7."""
    grade = grade_math(completion, "7")
    assert grade.reward == 0.0, grade.reason


def test_a_relation_is_still_right_when_the_gold_is_one_or_it_names_the_unknown():
    assert "is a relation" in grade_math("\\boxed{3 = 7}", "7").reason
    assert grade_math("\\boxed{3 = 7}", "3=7").reward == 1.0
    assert grade_math("\\boxed{x = 7}", "7").reward == 1.0


@pytest.mark.parametrize(
    "completion",
    [
        "\\boxed{" * 6000,  # a degenerate policy repeating an opener (quadratic: 28 s)
        "Answer: 1" + " " * 100_000 + "2",  # a long whitespace run on an answer line (quadratic: ~30 s)
        "\\boxed{1}" * 20_000,  # many closed boxes
        "x: " + " " * 100_000 + "y",
    ],
    ids=["unclosed-boxes", "answer-line-spaces", "closed-boxes", "label-spaces"],
)
def test_grading_a_degenerate_completion_is_fast(completion):
    import time

    start = time.perf_counter()
    grade_math(completion, "7")
    grade_math(completion, gold_text({"x": 1, "y": 2}))
    extract_final_answer(completion)
    assert time.perf_counter() - start < 2.0


def test_only_the_tail_of_a_completion_is_scanned():
    from alpharl_trainer.tasks.rewards import SCANNED_CHARS

    assert SCANNED_CHARS >= 4000
    assert extract_final_answer("\\boxed{5}" + " " * SCANNED_CHARS) is None
    assert extract_final_answer("x" * 100_000 + "\\boxed{5}") == "5"
    # the cut never turns the end of a prose line into an 'Answer:' line
    assert extract_final_answer("The final answer: 5" + "\n" * (SCANNED_CHARS - len("answer: 5"))) is None


def test_the_whole_grading_call_runs_under_one_timeout(monkeypatch):
    """Extraction, both parses and the comparison share one deadline (math-verify used to time its parse and
    its comparison separately, and extraction ran outside any timeout)."""
    import time

    from alpharl_trainer.tasks import rewards

    monkeypatch.setattr(rewards, "GRADE_TIMEOUT_S", 0.2)
    monkeypatch.setattr(rewards, "_final_answer", lambda text: time.sleep(5))  # extraction stalls
    start = time.perf_counter()
    grade = grade_math("\\boxed{7}", "7")
    assert time.perf_counter() - start < 2.0
    assert grade.reward == 0.0 and "timed out" in grade.reason


def test_integral_float_golds_beyond_2_53_keep_their_digits(tmp_path):
    from decimal import Decimal

    assert gold_text(Decimal("12345678901234567890.0")) == "12345678901234567890"
    assert gold_text(Decimal("1e20")) == "100000000000000000000"
    assert gold_text(Decimal("27.0")) == "27" and gold_text(Decimal("2.5")) == "2.5"
    assert gold_text(1e20) == "100000000000000000000"  # a float is written exactly
    with pytest.raises(AlphaRLError, match="gold answer inf is not a finite number"):
        gold_text(Decimal("1e999"))
