import pytest

from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.tasks.answers import extract_final_answer, gold_text


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


def test_only_the_tail_of_a_completion_is_scanned():
    from alpharl_trainer.tasks.answers import SCANNED_CHARS

    assert SCANNED_CHARS >= 4000
    assert extract_final_answer("\\boxed{5}" + " " * SCANNED_CHARS) is None
    assert extract_final_answer("x" * 100_000 + "\\boxed{5}") == "5"
    # the cut never turns the end of a prose line into an 'Answer:' line
    assert extract_final_answer("The final answer: 5" + "\n" * (SCANNED_CHARS - len("answer: 5"))) is None


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


def test_integral_float_golds_beyond_2_53_keep_their_digits(tmp_path):
    from decimal import Decimal

    assert gold_text(Decimal("12345678901234567890.0")) == "12345678901234567890"
    assert gold_text(Decimal("1e20")) == "100000000000000000000"
    assert gold_text(Decimal("27.0")) == "27" and gold_text(Decimal("2.5")) == "2.5"
    assert gold_text(1e20) == "100000000000000000000"  # a float is written exactly
    with pytest.raises(AlphaRLError, match="gold answer inf is not a finite number"):
        gold_text(Decimal("1e999"))


def test_the_space_separators_are_every_unicode_zs_character_but_the_ascii_space():
    import sys
    import unicodedata

    from alpharl_trainer.tasks.answers import UNICODE_SPACES

    zs = {chr(c) for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) == "Zs"}
    assert set(UNICODE_SPACES) == zs - {" "}
