"""Grading a math completion against its gold answer with math-verify, a few cases stricter, under one
deadline per call.

Gold answers and predicted answers go through the same path (normalised, wrapped as `\\boxed{...}`, then
parsed), so a gold answer written the way a model would write it always grades as correct against itself;
`parse_drops` flags the gold answers whose parse loses some of their numbers. The whole grading call
(extraction, both parses, the comparison) runs under one deadline (`GRADE_TIMEOUT_S`), so a completion that
stalls math-verify or sympy cannot stall a reward call.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import re
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction

from alpharl_trainer.tasks.answers import (
    THOUSANDS_SEPARATORS,
    final_answer,
    gold_parts,
    gold_text,
    labelled_answer,
    normalise_text,
    ordered_answers,
    scanned,
    top_level_items,
)

# "4.5e33": a number in e-notation, not inside a word (minerva.jsonl writes 58 gold answers this way).
_E_NOTATION = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)[eE]([-+]?\d+)(?![\w.])")
# One deadline for a whole grading call: extraction, both parses and the comparison (signal-based, so in the
# main thread only: TRL may call rewards from other threads, where grading runs without one).
GRADE_TIMEOUT_S = 15.0


def _prepared(answer: str) -> str:
    """An answer span as math-verify should see it: LaTeX thousands separators removed, e-notation as LaTeX
    (math-verify reads "4.5e33" as 4.5*e*33; "4.5 \\times 10^{33}" is what a model writes)."""
    answer = THOUSANDS_SEPARATORS.sub("", answer)
    return _E_NOTATION.sub(r"\1 \\times 10^{\2}", answer)


@functools.lru_cache(maxsize=8192)
def _parse(answer: str) -> tuple:
    """math-verify's parse of an answer span, wrapped as a model would box it (cached: a gold answer
    is graded against every sampled completion of its prompt). math-verify's own timeouts are off: the
    whole grading call runs under one deadline (`_deadline`)."""
    from math_verify import parse

    answer = _prepared(answer)
    boxed = parse(f"\\boxed{{{answer}}}", parsing_timeout=None)
    if any(not isinstance(x, str) for x in boxed):
        return tuple(boxed)
    # Only a string fallback: prose around the answer ("Answer: the total is $5$") defeats the boxed
    # parse, and math-verify's own extraction from the raw text may find the math in it.
    raw = parse(answer, parsing_timeout=None)
    return tuple(raw if any(not isinstance(x, str) for x in raw) else boxed)


class _GradingTimeout(BaseException):
    """Raised by the deadline's alarm: a BaseException, so the `except Exception` blocks of math-verify and
    sympy do not swallow it."""


@contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    """Raise `_GradingTimeout` in the block after `seconds` (SIGALRM: main thread only, else no deadline)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum, frame):
        raise _GradingTimeout

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@dataclass(frozen=True)
class Grade:
    """A graded completion: `reward` is 1.0/0.0, or None when the gold answer cannot be parsed."""

    reward: float | None
    predicted: str | None
    """The extracted final answer (before math parsing), None when the completion states none."""
    reason: str
    """Why the reward is what it is, for reports ('correct', 'no final answer', ...)."""


def _text_key(answer: str) -> str:
    """A text answer compared as words: `\\text{}`-style wrappers, `$` and case dropped, whitespace
    collapsed ("North  East" == "\\text{north east}")."""
    answer = re.sub(r"\\(?:text|textbf|mathrm|mbox)\s*\{([^{}]*)\}", r"\1", answer).replace("$", "")
    return " ".join(answer.split()).casefold()


def _listed_items(answer: str) -> int:
    """How many items an answer lists: sympy collapses the set "1,1" to {1}, so the count is what tells
    "1" from "1,1"."""
    return len(top_level_items(answer))


def _names_the_unknown(expr: object) -> bool:
    """A relation whose left side is a symbol or an unknown function: "x=5", "f(x)=x^2" (an assignment)."""
    from sympy import Symbol
    from sympy.core.function import AppliedUndef
    from sympy.core.relational import Relational

    return isinstance(expr, Relational) and isinstance(expr.lhs, Symbol | AppliedUndef)


# A number as a gold answer writes it, its digit groups joined: "2,125" and "10,\!080" (thousands), and
# "1 000" or "2 3", which math-verify reads as 1*0 and 5.
_WRITTEN_NUMBER = re.compile(r"(?<![\w.])\d+(?:[ \t]+\d+|,(?:\\!)?[ \t]*\d{3}(?!\d))*(?:\.\d+)?")
# Digits that are no number of the answer: subscripts (a base, `4210_{5}`; an index, `E_{0}`) and text
# with its exponent (a unit, `\mbox{ cm}^2`).
_NOT_NUMBERS = re.compile(
    r"_(?:\{[^{}]*\}|\d)|\\(?:text|textbf|mbox|mathrm)\s*\{[^{}]*\}(?:\^(?:\{\d+\}|\d))?"
)
# `\frac43`, `\frac 59`: a fraction of two one-digit arguments without braces.
_BARE_FRACTION = re.compile(r"\\[dt]?frac\s*(\d)\s*(\d)")
_MIXED_NUMBER = re.compile(r"(?<![\w.])(\d+)\s*\\[dt]?frac\{(\d+)\}\{(\d+)\}")
_LATEX_COMMAND = re.compile(r"\\[A-Za-z]+")


def _parsed_numbers(expr: object) -> set[Fraction]:
    """Every number in a parsed answer, by absolute value: each numeric atom, the numerator and denominator
    of a fraction, and the digit runs of symbol names (`x_1`)."""
    from sympy import Float, Number, Rational, Symbol, preorder_traversal

    numbers: set[Fraction] = set()
    for node in preorder_traversal(expr):
        if isinstance(node, Rational):
            numbers.update(
                {abs(Fraction(int(node.p), int(node.q))), Fraction(abs(int(node.p))), Fraction(int(node.q))}
            )
        elif isinstance(node, Float) and node.is_finite:
            numbers.add(abs(Fraction(repr(float(node)))))
        elif isinstance(node, Symbol):
            numbers.update(Fraction(run) for run in re.findall(r"\d+", node.name))
        elif isinstance(node, Number) and node.is_finite and node.is_real:
            numbers.add(abs(Fraction(str(float(node)))))
    return numbers


def _mixed(match: re.Match) -> Fraction:
    whole, numerator, denominator = (int(group) for group in match.groups())
    return Fraction(whole) + Fraction(numerator, denominator or 1)


def _listed(written: str, found: set[Fraction]) -> bool:
    """A written number with commas read as a list ("2,251,252" as (2, 251, 252)): each item is found."""
    items = written.replace("\\!", "").split(",")
    return len(items) > 1 and all(Fraction(re.sub(r"\s+", "", item)) in found for item in items)


def parse_drops(gold: str) -> str | None:
    """What of a gold answer its parse leaves out, or None. Every number the gold writes must be a number
    of its parse, or with another written number the fraction the parse reduced them to (`\\frac{10}{4}`
    is 5/2): a gold whose parse drops digits ("1 000" read as 1*0) self-grades as correct against itself,
    yet the true answer scores 0. Text-only golds (compared as words) and LaTeX command names are not
    checked."""
    gold = normalise_text(gold)
    parsed = _parse(gold)
    if not parsed or all(isinstance(x, str) for x in parsed):
        return None
    found = _parsed_numbers(parsed[0])
    text = _BARE_FRACTION.sub(r"\\frac{\1}{\2}", _NOT_NUMBERS.sub("|", _prepared(gold)))
    text = _MIXED_NUMBER.sub(lambda m: "|" if _mixed(m) in found else m[0], text)  # 1\frac{4}{5} is 9/5
    # LaTeX commands become a separator: "2 \\times 3" writes two numbers, not "2 3"
    written = [m[0] for m in _WRITTEN_NUMBER.finditer(_LATEX_COMMAND.sub("|", text))]
    values = [Fraction(re.sub(r"[\s,\\!]+", "", w)) for w in written]
    missing = {i for i, value in enumerate(values) if value not in found and not _listed(written[i], found)}
    fractions = {n for n in found if n.denominator > 1}
    for i, j in itertools.permutations(sorted(missing), 2):
        if {i, j} <= missing and values[j] and values[i] / values[j] in fractions:
            missing -= {i, j}
    if not missing:
        return None
    dropped = ", ".join(repr(written[i]) for i in sorted(missing))
    return f"its parse {parsed[0]} drops {dropped} of the gold"


def _stricter_than_math_verify(gold_str: str, gold: object, predicted: str, pred: object) -> str | None:
    """Why an answer math-verify accepts is still wrong, or None. math-verify compares a bare value
    with the right side of any gold equation ("LRMC" for "SRMC=LRMC") and reads "1,1" as the set {1};
    both are right only when the gold names the unknown ("x=5", "f(x)=x^2" accept "5", "x^2") or lists
    distinct items."""
    from sympy import FiniteSet
    from sympy.core.relational import Relational

    if isinstance(gold, Relational) and not _names_the_unknown(gold) and not isinstance(pred, Relational):
        return f"gold {gold_str!r} is a relation, predicted {predicted!r} states one side of it"
    # The converse: math-verify compares the right side of a predicted relation ("3 = 7") with a bare value.
    if isinstance(pred, Relational) and not isinstance(gold, Relational) and not _names_the_unknown(pred):
        return f"predicted {predicted!r} is a relation, gold {gold_str!r} is a value"
    gold_items, pred_items = _listed_items(gold_str), _listed_items(predicted)
    if isinstance(gold, FiniteSet) and gold_items != pred_items:
        return f"gold {gold_str!r} lists {gold_items} items, predicted {predicted!r} lists {pred_items}"
    return None


def _grade_answer(predicted: str | None, gold_str: str) -> Grade:
    """Grade one extracted answer against one gold answer string."""
    from math_verify import verify

    gold_str = normalise_text(gold_str)
    gold_parsed = _parse(gold_str)
    if not gold_parsed:
        return Grade(None, predicted, f"gold answer {gold_str!r} cannot be parsed")
    if predicted is None:
        return Grade(0.0, None, "no final answer (no \\boxed{} and no 'Answer:' line)")
    predicted = normalise_text(predicted)
    pred_parsed = _parse(predicted)
    if not pred_parsed:
        return Grade(0.0, predicted, f"predicted answer {predicted!r} cannot be parsed")
    if all(isinstance(x, str) for x in gold_parsed):
        if _text_key(gold_str) == _text_key(predicted):
            return Grade(1.0, predicted, "correct")
        return Grade(0.0, predicted, f"predicted {predicted!r}, gold {gold_str!r} (compared as text)")
    if verify(list(gold_parsed), list(pred_parsed), timeout_seconds=None):
        wrong = _stricter_than_math_verify(gold_str, gold_parsed[0], predicted, pred_parsed[0])
        return Grade(0.0, predicted, wrong) if wrong else Grade(1.0, predicted, "correct")
    mismatch = (
        f"predicted {predicted!r} (parsed {pred_parsed[0]}), gold {gold_str!r} (parsed {gold_parsed[0]})"
    )
    return Grade(0.0, predicted, mismatch)


def _grade_parts(completion: str, parts: dict[str, str]) -> Grade:
    """A multi-part answer: every part must be right. The completion's parts are found by their key
    (a labelled line), or else in order (its last boxes, or the items of its final answer)."""
    predicted = {key: labelled_answer(completion, key) for key in parts}
    if any(answer is None for answer in predicted.values()):
        ordered = ordered_answers(completion, len(parts))
        if ordered is None:
            missing = ", ".join(key for key, answer in predicted.items() if answer is None)
            return Grade(0.0, None, f"no answer for part(s) {missing} (by label or in order)")
        predicted = dict(zip(parts, ordered, strict=True))
    shown = json.dumps(predicted)
    for key, gold in parts.items():
        grade = _grade_answer(predicted[key], gold)
        if grade.reward != 1.0:
            return Grade(grade.reward, shown, f"part {key!r}: {grade.reason}")
    return Grade(1.0, shown, "correct")


def grade_math(completion: str, gold: object) -> Grade:
    """Grade one completion against one gold answer with math-verify (a few cases stricter, see
    `_stricter_than_math_verify`); a gold answer math-verify reads only as text is compared as words,
    and a multi-part gold answer (see `gold_text`) is graded part by part. The whole call runs under one
    deadline, GRADE_TIMEOUT_S (main thread only): past it, the completion scores 0."""
    # math-verify's own timeouts are off on purpose (one deadline covers the call): silence its warning
    logging.getLogger("math_verify.parser").setLevel(logging.ERROR)
    logging.getLogger("math_verify.grader").setLevel(logging.ERROR)
    gold_str = gold_text(gold)
    try:
        with _deadline(GRADE_TIMEOUT_S):
            completion = normalise_text(scanned(completion))
            parts = gold_parts(gold_str)
            if parts is not None:
                return _grade_parts(completion, parts)
            return _grade_answer(final_answer(completion), gold_str)
    except _GradingTimeout:
        return Grade(0.0, None, f"grading timed out (over {GRADE_TIMEOUT_S:g} s)")


def math_score(completion: str, answer: object) -> float:
    """1.0 when the completion's final answer equals `answer` mathematically, else 0.0 (also for an
    unparsable gold answer: evaluation counts it as unsolved rather than dropping it)."""
    return grade_math(completion, answer).reward or 0.0
