import pytest

from alpharl_trainer.tasks.answers import extract_final_answer, gold_text
from alpharl_trainer.tasks.grading import grade_math


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


def test_the_whole_grading_call_runs_under_one_timeout(monkeypatch):
    """Extraction, both parses and the comparison share one deadline (math-verify used to time its parse and
    its comparison separately, and extraction ran outside any timeout)."""
    import time

    from alpharl_trainer.tasks import grading

    monkeypatch.setattr(grading, "GRADE_TIMEOUT_S", 0.2)
    monkeypatch.setattr(grading, "final_answer", lambda text: time.sleep(5))  # extraction stalls
    start = time.perf_counter()
    grade = grade_math("\\boxed{7}", "7")
    assert time.perf_counter() - start < 2.0
    assert grade.reward == 0.0 and "timed out" in grade.reason
