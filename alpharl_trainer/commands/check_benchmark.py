"""`alpharl check-benchmark FILE...`: load benchmark files and self-grade their gold answers.

Run it on a benchmark file before `alpharl eval --benchmark FILE`: a gold answer that does not grade as
correct against itself means the detected fields or the answer grader do not fit the file, and the
accuracy eval reports would be wrong.

Per file: the detected question/answer fields, the row count, how many gold answers grade as correct
against themselves, and each row that does not, with the reason. A file that cannot be loaded is
reported and makes the exit status non-zero (after the other files are checked).
"""

from __future__ import annotations

import argparse

from alpharl_trainer.errors import AlphaRLError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE", help="benchmark JSON Lines files")
    parser.add_argument("--question-field", help="field holding the question (default: detected)")
    parser.add_argument("--answer-field", help="field holding the gold answer (default: detected)")
    parser.add_argument(
        "--strict", action="store_true", help="also fail when a gold answer does not grade as correct"
    )


def run(args: argparse.Namespace) -> int:
    from alpharl_trainer.tasks.benchmarks import load_benchmark, self_check

    unreadable, ungraded = [], 0
    for path in args.files:
        try:
            benchmark = load_benchmark(path, args.question_field, args.answer_field)
        except AlphaRLError as err:
            print(err)  # the message starts with the path
            unreadable.append(path)
            continue
        failures = self_check(benchmark)
        rows = len(benchmark.records)
        print(
            f"{path}: question field {benchmark.question_field!r}, answer field {benchmark.answer_field!r}, "
            f"{rows} rows, {rows - len(failures)}/{rows} gold answers self-grade correct"
        )
        for problem, grade in failures:
            print(f"  line {problem.meta['line']}: gold {problem.answer!r}: {grade.reason}")
        if benchmark.skipped:
            print(f"  {len(benchmark.skipped)} row(s) skipped:")
            for line, why in benchmark.skipped:
                print(f"  line {line}: {why}")
        ungraded += len(failures) + len(benchmark.skipped)
    if unreadable:
        raise AlphaRLError(f"{len(unreadable)} file(s) could not be loaded: {', '.join(unreadable)}")
    if args.strict and ungraded:
        raise AlphaRLError(
            f"{ungraded} gold answer(s) do not grade as correct against themselves or cannot be graded"
        )
    return 0
