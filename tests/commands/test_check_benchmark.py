import json
from pathlib import Path

import pytest

from alpharl_trainer.cli import main

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "benchmarks"


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.skipif(not (SHARED / "amc.jsonl").is_file(), reason=f"no shared benchmarks at {SHARED}")
def test_reports_fields_rows_and_self_grades_of_a_shared_file(capsys):
    assert main(["check-benchmark", str(SHARED / "amc.jsonl"), str(SHARED / "aime25.jsonl")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith(
        "question field 'problem', answer field 'answer', 40 rows, 40/40 gold answers self-grade correct"
    )
    assert "30/30 gold answers self-grade correct" in out[1]


def test_lists_rows_that_do_not_self_grade_and_strict_fails(tmp_path, capsys):
    path = write_jsonl(
        tmp_path / "mine.jsonl",
        [{"q": "one", "a": "1"}, {"q": "two", "a": "\\frac{"}, {"q": "three", "a": 3.0}],
    )
    args = ["check-benchmark", str(path), "--question-field", "q", "--answer-field", "a"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "3 rows, 2/3 gold answers self-grade correct" in out
    assert "line 2: gold '\\\\frac{'" in out
    assert main([*args, "--strict"]) == 2
    assert "1 gold answer(s) do not grade" in capsys.readouterr().err


def test_unloadable_file_fails_after_checking_the_others(tmp_path, capsys):
    good = write_jsonl(tmp_path / "good.jsonl", [{"problem": "p", "answer": "2"}])
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"text": "p", "label": "2"}])
    assert main(["check-benchmark", str(bad), str(good), str(tmp_path / "missing.jsonl")]) == 2
    captured = capsys.readouterr()
    assert "fields found: label, text" in captured.out
    assert "good.jsonl: question field 'problem'" in captured.out and "1/1 gold answers" in captured.out
    assert "missing.jsonl: no such benchmark file" in captured.out
    assert "2 file(s) could not be loaded" in captured.err


def test_binary_or_non_utf8_file_is_reported_and_the_next_file_checked(tmp_path, capsys):
    """A binary file used to end check-benchmark with a UnicodeDecodeError traceback."""
    binary = tmp_path / "binary.jsonl"
    binary.write_bytes(b'{"problem": "p", "answer": "2"}\n\xc3\x28\x00\xff garbage\n')
    good = write_jsonl(tmp_path / "good.jsonl", [{"problem": "p", "answer": "2"}])
    assert main(["check-benchmark", str(binary), str(good)]) == 2
    captured = capsys.readouterr()
    assert f"{binary}:2: not UTF-8 text" in captured.out
    assert "good.jsonl: question field 'problem'" in captured.out
    assert "1 file(s) could not be loaded" in captured.err and "Traceback" not in captured.err


def test_multi_part_answers_are_graded_part_by_part_and_bad_golds_skipped_by_line(tmp_path, capsys):
    """A gold answer stored as a JSON object (sub-questions) used to make the loader reject the whole file;
    NaN, 1e999 and nested lists used to self-grade as correct against themselves."""
    from alpharl_trainer.tasks.benchmarks import load_benchmark

    rows = [
        '{"problem": "p1", "answer": "2"}',
        '{"problem": "p2", "answer": {"integer": 42, "square_of": 84}}',
        '{"problem": "p3", "answer": NaN}',
        '{"problem": "p4", "answer": 1e999}',
        '{"problem": "p5", "answer": [[1, 2], 3]}',
        '{"problem": "p6", "answer": []}',
        '{"problem": "p7", "answer": 3.0}',
    ]
    path = tmp_path / "parts.jsonl"
    path.write_text("\n".join(rows) + "\n")
    benchmark = load_benchmark(path)
    assert [p.meta["line"] for p in benchmark.records] == [1, 2, 7]
    parts = benchmark.records[1].answer
    assert benchmark.score("integer: 42\nsquare_of: $84$", parts) == 1.0
    assert benchmark.score("\\boxed{42} then \\boxed{84}", parts) == 1.0  # in order, without labels
    assert benchmark.score("integer: 42\nsquare_of: 48", parts) == 0.0  # every part must be right
    assert benchmark.score("\\boxed{42}", parts) == 0.0
    assert [(line, why.removeprefix("field 'answer': ")) for line, why in benchmark.skipped] == [
        (3, "gold answer nan is not a finite number"),
        (4, "gold answer inf is not a finite number"),
        (5, "gold answer [[1, 2], 3]: a list must hold one or more plain values"),
        (6, "gold answer []: a list must hold one or more plain values"),
    ]
    assert main(["check-benchmark", str(path)]) == 0
    out = capsys.readouterr().out
    assert "3 rows, 3/3 gold answers self-grade correct" in out and "4 row(s) skipped" in out
    assert "line 3: field 'answer': gold answer nan is not a finite number" in out
    assert main(["check-benchmark", "--strict", str(path)]) == 2  # --strict counts skipped rows
    only_bad = tmp_path / "only.jsonl"
    only_bad.write_text(rows[2] + "\n")
    assert main(["check-benchmark", str(only_bad)]) == 2
    assert "no gradable rows (1 skipped; line 1: field 'answer': gold answer nan" in capsys.readouterr().out


def test_strict_flags_golds_whose_parse_drops_characters(tmp_path, capsys):
    """'1 000' parses as 1*0 and so self-grades correct against itself, yet a model answering 1000 scores 0:
    the self-check must flag it. A no-break space between digit groups is normalised and is clean."""
    rows = [
        {"problem": "a", "answer": "1 000"},
        {"problem": "b", "answer": "1\u00a0000"},
        {"problem": "c", "answer": "\\frac{1}{2}"},
        {"problem": "d", "answer": "0.5"},
        {"problem": "e", "answer": "4.5e33"},
        {"problem": "f", "answer": "3 \\text{ apples}"},
        {"problem": "g", "answer": "x^2+1"},
    ]
    path = write_jsonl(tmp_path / "spaced.jsonl", rows)
    assert main(["check-benchmark", str(path)]) == 0
    out = capsys.readouterr().out
    assert "7 rows, 6/7 gold answers self-grade correct" in out
    assert "line 1: gold '1 000': " in out and "drops" in out
    assert main(["check-benchmark", "--strict", str(path)]) == 2
    assert "1 gold answer(s) do not grade" in capsys.readouterr().err
