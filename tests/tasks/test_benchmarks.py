import json
import re
from pathlib import Path

import pytest

from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.tasks.benchmarks import (
    PROMPT_SUFFIX,
    benchmark_dataset,
    load_benchmark,
    self_check,
)
from alpharl_trainer.tasks.grading import grade_math

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "benchmarks"
# file -> (rows, question field, answer field), from the folder's README.
EXPECTED = {
    "aime24": (30, "problem", "answer"),
    "aime25": (30, "problem", "answer"),
    "amc": (40, "problem", "answer"),
    "gsm8k": (1319, "problem", "answer"),
    "math500": (500, "problem", "answer"),
    "minerva": (272, "question", "answer"),
    "olympiadbench": (675, "question", "answer"),
}
# (file, line) -> why that gold answer cannot grade correct against itself (checked in both the \boxed{} and
# the 'Answer:' form), or its parse drops part of it (the \boxed{} form only: `self_check`).
SELF_GRADE_ALLOWED: dict[tuple[str, int], str] = {
    (
        "minerva",
        269,
    ): "math-verify reads '\\frac{1}{3} E_{1}+\\frac{2}{3} E_{2}' as 2/3 (the last term's factor)",
}
# (file, line) -> why the gold answer of `line` also grades correct against the gold of the next row,
# although the two strings differ: a genuine mathematical equivalence, not a lenient grader.
CROSS_GRADE_ALLOWED = {
    ("math500", 23): "gold '5' and next gold 'x=5': math-verify equates an assignment with its value"
}
# Rows per file graded against their neighbour (a full pass would cost as much as the self-check).
CROSS_ROWS = 60
E_NOTATION = re.compile(r"(\d+(?:\.\d+)?)e([-+]?\d+)")

shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"no shared benchmark folder at {SHARED}")


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def benchmarks():
    return {name: load_benchmark(SHARED / f"{name}.jsonl") for name in EXPECTED}


@shared
def test_every_shared_file_loads_with_detected_fields(benchmarks):
    assert sorted(p.stem for p in SHARED.glob("*.jsonl")) == sorted(EXPECTED)
    for name, (rows, q_field, a_field) in EXPECTED.items():
        bench = benchmarks[name]
        assert (len(bench.records), bench.question_field, bench.answer_field) == (rows, q_field, a_field)
        assert all(p.prompt.endswith(PROMPT_SUFFIX) and p.answer for p in bench.records)


@shared
def test_every_shared_gold_answer_self_grades(benchmarks):
    failures = {
        (name, problem.meta["line"]): grade.reason
        for name, bench in benchmarks.items()
        for problem, grade in self_check(bench)
    }
    assert failures.keys() == SELF_GRADE_ALLOWED.keys(), failures


@shared
def test_every_shared_gold_answer_self_grades_as_an_answer_line(benchmarks):
    failures = {
        (name, p.meta["line"]): grade.reason
        for name, bench in benchmarks.items()
        for p in bench.records
        if (grade := grade_math(f"Some work.\nAnswer: {p.answer}", p.answer)).reward != 1.0
    }
    assert failures.keys() == {("minerva", 269)} ^ SELF_GRADE_ALLOWED.keys(), failures  # not a parse drop


@shared
def test_gold_answers_do_not_grade_correct_against_other_answers(benchmarks):
    """The self-check means something only if the grader rejects different answers."""
    lenient = {}
    for name, bench in benchmarks.items():
        rows = bench.records[: CROSS_ROWS + 1]
        for here, after in zip(rows, rows[1:], strict=False):
            if here.answer != after.answer and grade_math(f"\\boxed{{{after.answer}}}", here.answer).reward:
                lenient[(name, here.meta["line"])] = (here.answer, after.answer)
    assert lenient.keys() == CROSS_GRADE_ALLOWED.keys(), lenient


@shared
def test_e_notation_gold_answers_grade_against_latex_powers_of_ten(benchmarks):
    """minerva.jsonl writes many answers as '4.5e33'; a model writes '4.5 \\times 10^{33}'."""
    scientific = [p for p in benchmarks["minerva"].records if E_NOTATION.fullmatch(p.answer)]
    assert len(scientific) > 50
    for p in scientific:
        latex = E_NOTATION.sub(r"\\boxed{\1 \\times 10^{\2}}", p.answer)
        assert grade_math(latex, p.answer).reward == 1.0, (p.meta["line"], p.answer, latex)


@shared
def test_amc_float_answers_become_integer_strings(benchmarks):
    first = benchmarks["amc"].records[0]
    assert first.answer == "27" and first.meta["line"] == 1


def test_explicit_fields_and_answer_types(tmp_path):
    path = write_jsonl(
        tmp_path / "mine.jsonl",
        [{"q": "One?", "a": 1.0}, "", {"q": "Half?", "a": 0.5}, {"q": "Both?", "a": ["1", "2"]}],
    )
    bench = load_benchmark(path, question_field="q", answer_field="a")
    assert bench.name == "mine"
    assert [p.answer for p in bench.records] == ["1", "0.5", "1, 2"]
    assert [p.meta["line"] for p in bench.records] == [1, 3, 4]  # blank lines skipped, numbering kept
    assert bench.records[0].prompt == "One?" + PROMPT_SUFFIX
    assert bench.score("\\boxed{\\frac{1}{2}}", "0.5") == 1.0 and bench.extract_answer("\\boxed{7}") == "7"


@pytest.mark.parametrize(
    ("rows", "kwargs", "message"),
    [
        ([{"q": "x", "a": "1"}], {}, r"cannot tell which field holds the question .*fields found: a, q"),
        ([{"problem": "x", "sol": "1"}], {}, r"answer .*fields found: problem, sol"),
        (
            [{"problem": "x", "answer": "1"}],
            {"answer_field": "gold"},
            r"answer field 'gold' not in the first row",
        ),
        ([{"problem": "x", "answer": "1"}, "{oops"], {}, r"mine.jsonl:2: not valid JSON"),
        ([{"problem": "x", "answer": "1"}, {"answer": "2"}], {}, r"mine.jsonl:2: field 'problem' is missing"),
        (
            [{"problem": "x", "answer": None}],
            {},
            r"mine.jsonl: no gradable rows \(1 skipped; line 1: field 'answer'",
        ),
        ([[1, 2]], {}, r"expected a JSON object"),
        ([], {}, r"no rows"),
    ],
)
def test_bad_files_are_clear_errors(tmp_path, rows, kwargs, message):
    with pytest.raises(AlphaRLError, match=message):
        load_benchmark(write_jsonl(tmp_path / "mine.jsonl", rows), **kwargs)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(AlphaRLError, match="no such benchmark file"):
        load_benchmark(tmp_path / "absent.jsonl")


def test_self_check_reports_rows_that_cannot_grade(tmp_path):
    path = write_jsonl(
        tmp_path / "b.jsonl", [{"problem": "a", "answer": "3"}, {"problem": "b", "answer": "\\frac{"}]
    )
    (problem, grade), *rest = self_check(load_benchmark(path))
    assert not rest and problem.meta["line"] == 2 and grade.reward != 1.0 and grade.reason


def test_dataset_for_grpo_standard_and_conversational(tmp_path):
    from trl.data_utils import is_conversational

    bench = load_benchmark(write_jsonl(tmp_path / "b.jsonl", [{"question": "2+2?", "answer": 4.0}]))
    standard = benchmark_dataset(bench)
    assert standard.column_names == ["prompt", "answer"]
    assert standard[0] == {"prompt": "2+2?" + PROMPT_SUFFIX, "answer": "4"}
    assert not is_conversational(standard[0])
    conversational = benchmark_dataset(bench, conversational=True)
    assert conversational[0]["prompt"] == [{"role": "user", "content": "2+2?" + PROMPT_SUFFIX}]
    assert is_conversational(conversational[0])


def test_integral_float_golds_beyond_2_53_keep_their_digits(tmp_path):
    """A float read as a float loses digits past 2^53 (12345678901234567890.0 became ...7168): the true
    answer then scored 0."""
    rows = [
        '{"problem": "a", "answer": 12345678901234567890.0}',
        '{"problem": "b", "answer": 1e20}',
        '{"problem": "c", "answer": 2.5}',
        '{"problem": "d", "answer": 1e999}',
    ]
    bench = load_benchmark(write_jsonl(tmp_path / "big.jsonl", rows))
    assert [p.answer for p in bench.records] == ["12345678901234567890", "100000000000000000000", "2.5"]
    assert bench.score("\\boxed{12345678901234567890}", bench.records[0].answer) == 1.0
    assert bench.score("\\boxed{12345678901234567168}", bench.records[0].answer) == 0.0
    assert [line for line, _ in bench.skipped] == [4] and "inf is not a finite number" in bench.skipped[0][1]
    assert not self_check(bench)


def test_deeply_nested_or_huge_integer_lines_are_skipped_by_line(tmp_path):
    """A line nested 200,000 deep (RecursionError) or holding a 5,001-digit integer (ValueError: int digit
    limit) used to end the load with a traceback."""
    rows = [
        '{"problem": "a", "answer": "1"}',
        '{"problem": "b", "answer": ' + "[" * 200_000 + "]" * 200_000 + "}",
        '{"problem": "c", "answer": ' + "9" * 5001 + "}",
        '{"problem": "d", "answer": "4"}',
    ]
    bench = load_benchmark(write_jsonl(tmp_path / "deep.jsonl", rows))
    assert [p.meta["line"] for p in bench.records] == [1, 4]
    reasons = dict(bench.skipped)
    assert reasons.keys() == {2, 3}
    assert "nested" in reasons[2] and "5001 digits" in reasons[3]
