"""Reading a math answer as text: the final answer a completion states, gold answers as strings, and the
normalisation both sides go through before math-verify parses them.

The final answer of a completion is its last `\\boxed{...}` or its last `Answer: ...` line (the DAPO prompt's
format), whichever comes later; a multi-part answer is found part by part, by label or in order. Benchmark
files hold LaTeX strings, plain numbers and floats (`27.0`), all written as strings by `gold_text`.

Both sides are read as text a web scrape or a model may produce: invisible format characters are dropped,
Unicode spaces between digit groups ("1 000" with a no-break space) removed, NFKC applied and every Unicode
decimal digit read as its ASCII digit (`normalise_text`). A completion is searched on its last
`SCANNED_CHARS` characters, in one linear pass, so a degenerate completion (thousands of unclosed boxes, a
huge whitespace run) cannot stall a reward call.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from decimal import Decimal

from alpharl_trainer.errors import AlphaRLError

# "12\,345", "1{,}000", "1\!000": LaTeX thousands separators between digit groups. math-verify reads
# "12\,345" as 357 and "1\,000\,000" as 0, so they are removed before parsing (a plain "1,1" is untouched).
THOUSANDS_SEPARATORS = re.compile(r"(?<=\d)(?:\\,|\{,\}|\\!|\\;|\\ )(?=\d{3}(?!\d))")
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

# The Unicode space separators (category Zs) other than the ASCII space: web-scraped benchmarks and models
# write "1 000" with a no-break (U+00A0), narrow no-break (U+202F) or thin (U+2009) space between digit
# groups, which math-verify reads as 0. Between digit groups they are removed (before NFKC, which would turn
# them into ASCII spaces).
UNICODE_SPACES = (
    "\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000"
)
_SPACED_GROUPS = re.compile(rf"(?<=\d)[{UNICODE_SPACES}](?=\d{{3}}(?!\d))")


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


def scanned(text: str) -> str:
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
    return final_answer(scanned(completion))


def final_answer(completion: str) -> str | None:
    """`extract_final_answer` of a text already cut to its last SCANNED_CHARS characters (`scanned`)."""
    candidates = [c for c in (_last_box(completion), _last_answer_line(completion)) if c is not None]
    return max(candidates)[1] if candidates else None


def top_level_items(answer: str) -> list[str]:
    """The comma-separated items an answer lists at its top level, inside an optional outer `\\{...\\}`
    (thousands separators removed first)."""
    answer = THOUSANDS_SEPARATORS.sub("", answer.strip())
    answer = re.sub(r"^\\left\s*\\\{(.*)\\right\s*\\\}$|^\\\{(.*)\\\}$", r"\1\2", answer, flags=re.S)
    depth, items, start = 0, [], 0
    for i, char in enumerate(answer):
        depth += {"(": 1, "[": 1, "{": 1, ")": -1, "]": -1, "}": -1}.get(char, 0)
        if char == "," and depth == 0:
            items.append(answer[start:i].strip())
            start = i + 1
    return [*items, answer[start:].strip()]


def labelled_answer(completion: str, key: str) -> str | None:
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


def ordered_answers(completion: str, count: int) -> list[str] | None:
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
    items = None if final is None else top_level_items(final)
    return items if items is not None and len(items) == count else None
