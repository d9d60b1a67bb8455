"""Reasoning benchmarks from local JSON Lines files: loading, prompting, and a self-check of the gold answers.

Files differ in schema (question in `problem` or `question`, answer a LaTeX string or a float), so the
question and answer fields are detected from the first row, or given explicitly. Each row becomes a
`Problem` whose prompt is the paper's evaluation prompt; gold answers are normalised strings
(`gold_text`). A `Benchmark` also offers `extract_answer` and `score`, the two grading methods of the
`Task` protocol, so evaluation treats synthetic tasks and benchmark files alike.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.tasks.answers import extract_final_answer, gold_parts, gold_text
from alpharl_trainer.tasks.base import Problem
from alpharl_trainer.tasks.grading import Grade, grade_math, math_score, parse_drops

PROMPT_SUFFIX = "\nPlease reason step by step, and put your final answer within \\boxed{}."
QUESTION_FIELDS = ("problem", "question", "prompt")
ANSWER_FIELDS = ("answer", "final_answer", "expected_answer")
# Python's own limit for turning a string of digits into an int (sys.get_int_max_str_digits' default): a
# longer integer in a benchmark line is that line's error, not a traceback.
MAX_INT_DIGITS = 4300


def benchmark_prompt(question: str) -> str:
    """The paper's evaluation prompt for a question."""
    return question + PROMPT_SUFFIX


@dataclass
class Benchmark:
    name: str
    """The file's stem, e.g. 'math500'."""
    path: Path
    question_field: str
    answer_field: str
    records: list[Problem]
    """One per gradable row, in file order; `meta` holds the 1-based `line` and the raw `question`."""
    skipped: list[tuple[int, str]] = field(default_factory=list)
    """(line, why) of rows left out because their gold answer cannot be graded (missing, empty, NaN or
    infinite, nested) or the line cannot be read (nested too deep, an integer of thousands of digits); a
    multi-part answer (a JSON object keyed by sub-question) is kept and graded part by part."""

    def extract_answer(self, completion: str) -> str | None:
        return extract_final_answer(completion)

    def score(self, completion: str, answer: str) -> float:
        return math_score(completion, answer)


def _bounded_int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"an integer of {len(digits.lstrip('-'))} digits (over {MAX_INT_DIGITS})")
    return int(digits)


def _json_row(line: str) -> object:
    """A JSON line, floats read exactly (`Decimal`: an integral gold such as 12345678901234567890.0 keeps its
    digits, see `gold_text`). ValueError for a line that is valid JSON but cannot be read: nested too deep for
    the parser (RecursionError) or an integer over MAX_INT_DIGITS digits."""
    try:
        return json.loads(line, parse_float=Decimal, parse_int=_bounded_int)
    except json.JSONDecodeError:
        raise
    except RecursionError as err:
        raise ValueError("nested too deep to read") from err


def _read_rows(path: Path) -> tuple[list[tuple[int, dict]], list[tuple[int, str]]]:
    """(line, row) of every JSON object of the file, and (line, why) of the lines that are valid JSON but
    cannot be read (too deep, a huge integer): those are skipped like an ungradable row."""
    if not path.is_file():
        raise AlphaRLError(f"{path}: no such benchmark file")
    rows, unreadable = [], []
    with path.open("rb") as handle:  # bytes: a binary or non-UTF-8 file is an error on its line, not a crash
        for line_no, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise AlphaRLError(
                    f"{path}:{line_no}: not UTF-8 text (byte {err.start}): not a JSONL file"
                ) from err
            if not line.strip():
                continue
            try:
                row = _json_row(line)
            except json.JSONDecodeError as err:
                raise AlphaRLError(f"{path}:{line_no}: not valid JSON ({err.msg})") from err
            except ValueError as err:
                unreadable.append((line_no, f"line cannot be read: {err}"))
                continue
            if not isinstance(row, dict):
                raise AlphaRLError(f"{path}:{line_no}: expected a JSON object, got {type(row).__name__}")
            rows.append((line_no, row))
    if not rows:
        raise AlphaRLError(
            f"{path}: no rows" + (f" ({unreadable[0][1]} on line {unreadable[0][0]})" if unreadable else "")
        )
    return rows, unreadable


def _field(path: Path, row: dict, given: str | None, candidates: tuple[str, ...], role: str) -> str:
    if given is not None:
        if given not in row:
            raise AlphaRLError(f"{path}: {role} field {given!r} not in the first row (fields: {sorted(row)})")
        return given
    found = next((name for name in candidates if name in row), None)
    if found is None:
        raise AlphaRLError(
            f"{path}: cannot tell which field holds the {role} (looked for {', '.join(candidates)}; "
            f"fields found: {', '.join(sorted(row))}); name it with {role}_field / --{role}-field"
        )
    return found


def load_benchmark(
    path: str | Path, question_field: str | None = None, answer_field: str | None = None
) -> Benchmark:
    """Read a JSONL benchmark file; fields detected from the first row unless given."""
    path = Path(path)
    rows, skipped = _read_rows(path)
    first = rows[0][1]
    q_field = _field(path, first, question_field, QUESTION_FIELDS, "question")
    a_field = _field(path, first, answer_field, ANSWER_FIELDS, "answer")
    records = []
    for line_no, row in rows:
        question, answer = row.get(q_field), row.get(a_field)
        if not isinstance(question, str) or not question.strip():
            raise AlphaRLError(f"{path}:{line_no}: field {q_field!r} is missing or not a non-empty string")
        try:
            gold = gold_text(answer)
        except AlphaRLError as err:  # one bad row is reported, not the whole file
            skipped.append((line_no, f"field {a_field!r}: {err}"))
            continue
        records.append(
            Problem(
                prompt=benchmark_prompt(question),
                answer=gold,
                solution="",
                meta={"line": line_no, "question": question},
            )
        )
    skipped.sort()
    if not records:
        line, why = skipped[0]
        raise AlphaRLError(f"{path}: no gradable rows ({len(skipped)} skipped; line {line}: {why})")
    return Benchmark(path.stem, path, q_field, a_field, records, skipped)


def benchmark_dataset(benchmark: Benchmark, conversational: bool = False):
    """The benchmark as a `datasets.Dataset` for GRPO: columns `prompt` and `answer`.

    `conversational=True` makes each prompt a one-message chat (`[{"role": "user", "content": ...}]`),
    which TRL renders with the tokenizer's chat template; otherwise prompts are plain strings.
    """
    import datasets  # heavy; only callers that build datasets pay for it

    prompts = [p.prompt for p in benchmark.records]
    if conversational:
        prompts = [[{"role": "user", "content": prompt}] for prompt in prompts]
    return datasets.Dataset.from_dict({"prompt": prompts, "answer": [p.answer for p in benchmark.records]})


def self_check(benchmark: Benchmark) -> list[tuple[Problem, Grade]]:
    """Grade every gold answer against itself, written as a model would (`... \\boxed{<gold>}`).

    Returns the rows that do not grade as correct, with the grade saying why: a gold answer the
    grader cannot reproduce would silently cap every model's score on that row. So is a gold whose parse
    drops some of its numbers (`parse_drops`: "1 000" read as 1*0 grades as correct against itself, and the
    true answer would score 0).
    """
    failures = []
    for problem in benchmark.records:
        parts = gold_parts(problem.answer)
        if parts is None:
            completion = f"Reasoning omitted. The final answer is \\boxed{{{problem.answer}}}."
        else:  # one labelled line per part
            completion = "Reasoning omitted.\n" + "\n".join(
                f"{key}: \\boxed{{{v}}}" for key, v in parts.items()
            )
        grade = grade_math(completion, problem.answer)
        if grade.reward == 1.0:
            drops = [(key, d) for key, v in (parts or {"": problem.answer}).items() if (d := parse_drops(v))]
            if drops:
                key, why = drops[0]
                grade = Grade(None, grade.predicted, f"{'part ' + repr(key) + ': ' if key else ''}{why}")
        if grade.reward != 1.0:
            failures.append((problem, grade))
    return failures
