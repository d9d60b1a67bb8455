"""Reward functions, usable directly as TRL `reward_funcs`, and the math grader behind them.

TRL calls a reward function as `f(prompts=..., completions=..., completion_ids=..., **columns)`,
where completions are strings ("standard" datasets) or lists of `{"role", "content"}` messages
("conversational" ones), every other dataset column arrives as a keyword list (here: `answer`), and
`None` means "no reward for this row" (TRL turns it into NaN and ignores it). The factories return
callable class instances rather than closures: TRL's async rollout worker pickles reward functions,
and TRL logs each one under its `__name__`.

Math answers are graded with math-verify. The final answer of a completion is its last `\\boxed{...}`
or its last `Answer: ...` line (the DAPO prompt's format), whichever comes later. Gold answers and
predicted answers go through the same path (wrapped as `\\boxed{...}`, then parsed), so a gold answer
written the way a model would write it always grades as correct against itself; benchmark files hold
LaTeX strings, plain numbers and floats (`27.0`), all normalised by `gold_text` first.

Both sides are read as text a web scrape or a model may produce: invisible format characters are dropped,
Unicode spaces between digit groups ("1 000" with a no-break space) removed, NFKC applied and every Unicode
decimal digit read as its ASCII digit (`normalise_text`). A completion is graded on its last `SCANNED_CHARS`
characters, found in one linear pass, and the whole grading call runs under one deadline (`GRADE_TIMEOUT_S`),
so a degenerate completion (thousands of unclosed boxes, a huge whitespace run) cannot stall a reward call.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import math
import re
import signal
import threading
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.tasks.base import Task

# "4.5e33": a number in e-notation, not inside a word (minerva.jsonl writes 58 gold answers this way).
_E_NOTATION = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)[eE]([-+]?\d+)(?![\w.])")
# "12\,345", "1{,}000", "1\!000": LaTeX thousands separators between digit groups. math-verify reads
# "12\,345" as 357 and "1\,000\,000" as 0, so they are removed before parsing (a plain "1,1" is untouched).
_THOUSANDS = re.compile(r"(?<=\d)(?:\\,|\{,\}|\\!|\\;|\\ )(?=\d{3}(?!\d))")
# A box opener, or a brace: the tokens of the one-pass brace matching in `_closed_boxes`.
_BOX_TOKENS = re.compile(r"\\(?:boxed|fbox)\s*\{|[{}]")
# A line such as "Answer: 42", "**Final Answer:** $\frac{1}{2}$" (Markdown bold around the label tolerated).
# The answer runs to the end of the line and is stripped in Python: a lazy `.*?` before `[ \t]*$` made a long
# whitespace run quadratic.
_ANSWER_LINE = re.compile(r"^[ \t>*_#]*(?:final\s+)?answer[ \t*_]*:[ \t*_]*(?P<answer>[^\n]*)", re.I | re.M)

# Only the last SCANNED_CHARS characters of a completion are searched for its final answer: the final answer
# of a recipe's completion (a box or an `Answer:` line, tens of characters, a few hundred for a long LaTeX
# expression) sits at its end, while a degenerate one repeats for up to 20,480 tokens (the paper recipes).
SCANNED_CHARS = 4000
_CUT = "\u2026"  # put before a cut tail: its partial first line cannot read as an `Answer:` or labelled line
# One deadline for a whole grading call: extraction, both parses and the comparison (signal-based, so in the
# main thread only: TRL may call rewards from other threads, where grading runs without one).
GRADE_TIMEOUT_S = 15.0

# The Unicode space separators (category Zs) other than the ASCII space: web-scraped benchmarks and models
# write "1 000" with a no-break (U+00A0), narrow no-break (U+202F) or thin (U+2009) space between digit
# groups, which math-verify reads as 0. Between digit groups they are removed (before NFKC, which would turn
# them into ASCII spaces).
UNICODE_SPACES = (
    "\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000"
)
_SPACED_GROUPS = re.compile(rf"(?<=\d)[{UNICODE_SPACES}](?=\d{{3}}(?!\d))")


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


def gold_text(answer: object) -> str:
    """A gold answer as a string: floats holding integers lose their `.0` (amc.jsonl stores `27.0`),
    lists (several accepted parts, e.g. OlympiadBench's `final_answer`) are joined with commas, and a
    multi-part answer (a JSON object keyed by sub-question) becomes a JSON object of part strings, which
    `grade_math` grades part by part. Strings stay strings through TRL datasets, whatever the row's shape."""
    if isinstance(answer, bool) or answer is None:
        raise AlphaRLError(f"gold answer {answer!r} is neither a string nor a number")
    if isinstance(answer, Decimal):  # a JSON float read exactly (`load_benchmark`)
        return _decimal_text(answer)
    if isinstance(answer, float):
        if not math.isfinite(answer):  # JSON's NaN / 1e999: would self-grade as "correct" against itself
            raise AlphaRLError(f"gold answer {answer!r} is not a finite number")
        return str(int(answer)) if answer.is_integer() else repr(answer)  # int(): exact, beyond 2^53 too
    if isinstance(answer, int):
        return str(answer)
    if isinstance(answer, list | tuple):
        if not answer or any(isinstance(part, list | tuple | dict) for part in answer):
            raise AlphaRLError(f"gold answer {answer!r}: a list must hold one or more plain values")
        return ", ".join(gold_text(part) for part in answer)
    if isinstance(answer, dict):
        if not answer or any(isinstance(part, dict) for part in answer.values()):
            raise AlphaRLError(f"gold answer {answer!r}: a multi-part answer must map keys to plain values")
        return json.dumps({str(key): gold_text(part) for key, part in answer.items()})
    if isinstance(answer, str):
        return answer.strip()
    raise AlphaRLError(f"gold answer {answer!r} has unsupported type {type(answer).__name__}")


def _decimal_text(answer: Decimal) -> str:
    """A number written as a JSON float, read exactly: an integral one keeps every digit it was written
    with (as a Python float, 12345678901234567890.0 is 12345678901234567168); a fractional one reads as
    a float does ("2.5", "1e-05"); beyond float range it is refused as `inf` is."""
    if not answer.is_finite() or answer.adjusted() > 308:
        raise AlphaRLError(f"gold answer {float(answer)!r} is not a finite number")
    if answer == answer.to_integral_value():
        return str(int(answer))
    return gold_text(float(answer))


def gold_parts(gold: str) -> dict[str, str] | None:
    """The parts of a multi-part gold answer (a JSON object of strings, as `gold_text` writes it), or None."""
    if not (gold.startswith("{") and gold.endswith("}")):
        return None
    try:
        parts = json.loads(gold)
    except ValueError:  # LaTeX such as "{1, 2}"
        return None
    if isinstance(parts, dict) and parts and all(isinstance(v, str) for v in parts.values()):
        return parts
    return None


class _AsciiDigits(dict):
    """A `str.translate` table mapping every Unicode decimal digit to its ASCII digit (NFKC maps full-width
    digits, not Arabic-Indic, Devanagari, ... ones); other characters map to themselves. Filled as met."""

    def __missing__(self, code: int) -> int | str:
        digit = unicodedata.decimal(chr(code), None)
        self[code] = code if digit is None else str(digit)
        return self[code]


_ASCII_DIGITS = _AsciiDigits()


def normalise_text(text: str) -> str:
    """Text as a grader of web-scraped answers must read it: invisible format characters (category Cf:
    zero-width space, word joiner, byte-order mark, ...) dropped, Unicode spaces between digit groups removed,
    NFKC (full-width letters and digits, compatibility forms) and every Unicode decimal digit as ASCII."""
    if text.isascii():
        return text
    text = "".join(char for char in text if unicodedata.category(char) != "Cf")
    text = unicodedata.normalize("NFKC", _SPACED_GROUPS.sub("", text))
    return text.translate(_ASCII_DIGITS)


def _scanned(text: str) -> str:
    """The part of a completion searched for its answer: its last SCANNED_CHARS characters."""
    return text if len(text) <= SCANNED_CHARS else _CUT + text[-SCANNED_CHARS:]


def _closed_boxes(text: str) -> list[tuple[int, int, int]]:
    """(start, content start, end) of every closed `\\boxed{...}`/`\\fbox{...}` (braces balanced), in one
    pass with a stack of open braces: linear, where a scan from every opener was quadratic in the number
    of unclosed ones."""
    stack: list[tuple[int, int] | None] = []  # per open brace: (start, content start) of a box, else None
    boxes = []
    for token in _BOX_TOKENS.finditer(text):
        if token[0] == "}":
            if stack and (opener := stack.pop()) is not None:
                boxes.append((*opener, token.end()))
        else:
            stack.append(None if token[0] == "{" else (token.start(), token.end()))
    return boxes


def _last_box(text: str) -> tuple[int, str] | None:
    """(start, content) of the last closed `\\boxed{...}` (the one opened last), or None."""
    boxes = _closed_boxes(text)
    if not boxes:
        return None
    start, content, end = max(boxes)
    return start, text[content : end - 1]


def _unwrap_math(text: str) -> str:
    """The math of an answer line: `$x$`, `$$x$$`, `\\(x\\)` -> `x` (boxing adds its own delimiters);
    with prose around it ("the total is $18$"), the last `$...$` segment."""
    text = text.strip()
    for left, right in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if text.startswith(left) and text.endswith(right) and len(text) > len(left) + len(right):
            return text[len(left) : -len(right)].strip()
    parts = text.split("$")
    segments = [part.strip() for part in parts[1:-1:2] if part.strip()]  # between a `$` and its closing `$`
    return segments[-1] if segments else text


def _last_answer_line(text: str) -> tuple[int, str] | None:
    found = None
    for match in _ANSWER_LINE.finditer(text):
        answer = _unwrap_math(match["answer"].rstrip(" \t").rstrip("."))
        if answer:
            found = (match.start(), answer)
    return found


def extract_final_answer(completion: str) -> str | None:
    """The final answer a completion states: the content of its last `\\boxed{}` or of its last
    `Answer:` line, whichever comes later, within its last SCANNED_CHARS characters; None when it states
    neither."""
    return _final_answer(_scanned(completion))


def _final_answer(completion: str) -> str | None:
    candidates = [c for c in (_last_box(completion), _last_answer_line(completion)) if c is not None]
    return max(candidates)[1] if candidates else None


def _prepared(answer: str) -> str:
    """An answer span as math-verify should see it: LaTeX thousands separators removed, e-notation as LaTeX
    (math-verify reads "4.5e33" as 4.5*e*33; "4.5 \\times 10^{33}" is what a model writes)."""
    answer = _THOUSANDS.sub("", answer)
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


def _top_level_items(answer: str) -> list[str]:
    """The comma-separated items an answer lists at its top level, inside an optional outer `\\{...\\}`
    (thousands separators removed first)."""
    answer = _THOUSANDS.sub("", answer.strip())
    answer = re.sub(r"^\\left\s*\\\{(.*)\\right\s*\\\}$|^\\\{(.*)\\\}$", r"\1\2", answer, flags=re.S)
    depth, items, start = 0, [], 0
    for i, char in enumerate(answer):
        depth += {"(": 1, "[": 1, "{": 1, ")": -1, "]": -1, "}": -1}.get(char, 0)
        if char == "," and depth == 0:
            items.append(answer[start:i].strip())
            start = i + 1
    return [*items, answer[start:].strip()]


def _listed_items(answer: str) -> int:
    """How many items an answer lists: sympy collapses the set "1,1" to {1}, so the count is what tells
    "1" from "1,1"."""
    return len(_top_level_items(answer))


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


def _labelled_answer(completion: str, key: str) -> str | None:
    """The answer a completion gives on its last line labelled `key` ("square_of: 84", "Square of = $84$",
    "**(integer)**: \\boxed{42}"); a box on that line wins over the rest of it."""
    label = r"[ _\-]?".join(re.escape(word) for word in re.split(r"[ _\-]+", key))
    line = re.compile(rf"^[ \t>*_#(-]*{label}[ \t*_)]*[:=][ \t*_]*(?P<answer>[^\n]*)", re.I | re.M)
    found = None
    for match in line.finditer(completion):
        box = _last_box(match["answer"])
        answer = box[1].strip() if box else _unwrap_math(match["answer"].rstrip(" \t").rstrip("."))
        found = answer or found
    return found


def _ordered_answers(completion: str, count: int) -> list[str] | None:
    """`count` answers in order: the completion's last `count` boxes, else its final answer's `count`
    top-level comma-separated items; None when it states neither. Boxes are taken from the end, each
    closed before the next one opens."""
    boxes, before = [], len(completion)
    for start, content, end in sorted(_closed_boxes(completion), reverse=True):
        if end <= before and len(boxes) < count:
            boxes.insert(0, completion[content : end - 1].strip())
            before = start
    if len(boxes) == count:
        return boxes
    final = extract_final_answer(completion)
    items = None if final is None else _top_level_items(final)
    return items if items is not None and len(items) == count else None


def _grade_parts(completion: str, parts: dict[str, str]) -> Grade:
    """A multi-part answer: every part must be right. The completion's parts are found by their key
    (a labelled line), or else in order (its last boxes, or the items of its final answer)."""
    predicted = {key: _labelled_answer(completion, key) for key in parts}
    if any(answer is None for answer in predicted.values()):
        ordered = _ordered_answers(completion, len(parts))
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
            completion = normalise_text(_scanned(completion))
            parts = gold_parts(gold_str)
            if parts is not None:
                return _grade_parts(completion, parts)
            return _grade_answer(_final_answer(completion), gold_str)
    except _GradingTimeout:
        return Grade(0.0, None, f"grading timed out (over {GRADE_TIMEOUT_S:g} s)")


def math_score(completion: str, answer: object) -> float:
    """1.0 when the completion's final answer equals `answer` mathematically, else 0.0 (also for an
    unparsable gold answer: evaluation counts it as unsolved rather than dropping it)."""
    return grade_math(completion, answer).reward or 0.0


def _answers(answer: list | None, completions: list, reward_name: str) -> list:
    if answer is None:
        raise AlphaRLError(f"reward {reward_name!r} needs an 'answer' column in the dataset")
    if len(answer) != len(completions):
        raise AlphaRLError(
            f"reward {reward_name!r}: {len(completions)} completions but {len(answer)} answers"
        )
    return answer


def math_accuracy_reward(completions: list, answer: list | None = None, **kwargs) -> list[float | None]:
    """1.0 when the final answer (last `\\boxed{}` / `Answer:` line) equals the gold `answer` under
    math-verify, 0.0 otherwise, None when the gold answer cannot be parsed (as TRL's `accuracy_reward`)."""
    answers = _answers(answer, completions, "math_accuracy_reward")
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
