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
"""

from __future__ import annotations

import functools
import json
import logging
import math
import re
import threading
from dataclasses import dataclass

from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.tasks.base import Task

# "4.5e33": a number in e-notation, not inside a word (minerva.jsonl writes 58 gold answers this way).
_E_NOTATION = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)[eE]([-+]?\d+)(?![\w.])")
# "12\,345", "1{,}000", "1\!000": LaTeX thousands separators between digit groups. math-verify reads
# "12\,345" as 357 and "1\,000\,000" as 0, so they are removed before parsing (a plain "1,1" is untouched).
_THOUSANDS = re.compile(r"(?<=\d)(?:\\,|\{,\}|\\!|\\;|\\ )(?=\d{3}(?!\d))")
_BOX_OPENERS = re.compile(r"\\(?:boxed|fbox)\s*\{")
# A line such as "Answer: 42", "**Final Answer:** $\frac{1}{2}$" (Markdown bold around the label tolerated).
_ANSWER_LINE = re.compile(
    r"^[ \t>*_#]*(?:final\s+)?answer[ \t*_]*:[ \t*_]*(?P<answer>.*?)[ \t]*$", re.I | re.M
)

# math-verify's timeouts use signal.alarm: main thread only (TRL may call rewards from other threads).
_PARSE_TIMEOUT_S = 10
_VERIFY_TIMEOUT_S = 5


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
    if isinstance(answer, float):
        if not math.isfinite(answer):  # JSON's NaN / 1e999: would self-grade as "correct" against itself
            raise AlphaRLError(f"gold answer {answer!r} is not a finite number")
        return str(int(answer)) if answer.is_integer() else repr(answer)
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


def _last_box(text: str) -> tuple[int, str] | None:
    """(start, content) of the last closed `\\boxed{...}` (braces balanced), or None."""
    found = None
    for opener in _BOX_OPENERS.finditer(text):
        depth, i = 1, opener.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth == 0:
            found = (opener.start(), text[opener.end() : i - 1])
    return found


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
        answer = _unwrap_math(match["answer"].rstrip("."))
        if answer:
            found = (match.start(), answer)
    return found


def extract_final_answer(completion: str) -> str | None:
    """The final answer a completion states: the content of its last `\\boxed{}` or of its last
    `Answer:` line, whichever comes later; None when it states neither."""
    candidates = [c for c in (_last_box(completion), _last_answer_line(completion)) if c is not None]
    return max(candidates)[1] if candidates else None


@functools.lru_cache(maxsize=8192)
def _parse(answer: str, in_main_thread: bool) -> tuple:
    """math-verify's parse of an answer span, wrapped as a model would box it (cached: a gold answer
    is graded against every sampled completion of its prompt)."""
    from math_verify import parse

    timeout = _PARSE_TIMEOUT_S if in_main_thread else None
    # math-verify reads "4.5e33" as 4.5*e*33; rewrite it as LaTeX so it equals "4.5 \\times 10^{33}".
    answer = _THOUSANDS.sub("", answer)
    answer = _E_NOTATION.sub(r"\1 \\times 10^{\2}", answer)
    boxed = parse(f"\\boxed{{{answer}}}", parsing_timeout=timeout)
    if any(not isinstance(x, str) for x in boxed):
        return tuple(boxed)
    # Only a string fallback: prose around the answer ("Answer: the total is $5$") defeats the boxed
    # parse, and math-verify's own extraction from the raw text may find the math in it.
    raw = parse(answer, parsing_timeout=timeout)
    return tuple(raw if any(not isinstance(x, str) for x in raw) else boxed)


def _in_main_thread() -> bool:
    in_main = threading.current_thread() is threading.main_thread()
    if not in_main:  # timeouts are disabled there on purpose; silence math-verify's warning about it
        logging.getLogger("math_verify.parser").setLevel(logging.ERROR)
        logging.getLogger("math_verify.grader").setLevel(logging.ERROR)
    return in_main


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


def _stricter_than_math_verify(gold_str: str, gold: object, predicted: str, pred: object) -> str | None:
    """Why an answer math-verify accepts is still wrong, or None. math-verify compares a bare value
    with the right side of any gold equation ("LRMC" for "SRMC=LRMC") and reads "1,1" as the set {1};
    both are right only when the gold names the unknown ("x=5", "f(x)=x^2" accept "5", "x^2") or lists
    distinct items."""
    from sympy import FiniteSet, Symbol
    from sympy.core.function import AppliedUndef
    from sympy.core.relational import Relational

    names_the_unknown = isinstance(gold, Relational) and isinstance(gold.lhs, Symbol | AppliedUndef)
    if isinstance(gold, Relational) and not names_the_unknown and not isinstance(pred, Relational):
        return f"gold {gold_str!r} is a relation, predicted {predicted!r} states one side of it"
    gold_items, pred_items = _listed_items(gold_str), _listed_items(predicted)
    if isinstance(gold, FiniteSet) and gold_items != pred_items:
        return f"gold {gold_str!r} lists {gold_items} items, predicted {predicted!r} lists {pred_items}"
    return None


def _grade_answer(predicted: str | None, gold_str: str, in_main: bool) -> Grade:
    """Grade one extracted answer against one gold answer string."""
    from math_verify import verify

    gold_parsed = _parse(gold_str, in_main)
    if not gold_parsed:
        return Grade(None, predicted, f"gold answer {gold_str!r} cannot be parsed")
    if predicted is None:
        return Grade(0.0, None, "no final answer (no \\boxed{} and no 'Answer:' line)")
    pred_parsed = _parse(predicted, in_main)
    if not pred_parsed:
        return Grade(0.0, predicted, f"predicted answer {predicted!r} cannot be parsed")
    if all(isinstance(x, str) for x in gold_parsed):
        if _text_key(gold_str) == _text_key(predicted):
            return Grade(1.0, predicted, "correct")
        return Grade(0.0, predicted, f"predicted {predicted!r}, gold {gold_str!r} (compared as text)")
    timeout = _VERIFY_TIMEOUT_S if in_main else None
    if verify(list(gold_parsed), list(pred_parsed), timeout_seconds=timeout):
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
    line = re.compile(rf"^[ \t>*_#(-]*{label}[ \t*_)]*[:=][ \t*_]*(?P<answer>.*?)[ \t]*$", re.I | re.M)
    found = None
    for match in line.finditer(completion):
        box = _last_box(match["answer"])
        answer = box[1].strip() if box else _unwrap_math(match["answer"].rstrip("."))
        found = answer or found
    return found


def _ordered_answers(completion: str, count: int) -> list[str] | None:
    """`count` answers in order: the completion's last `count` boxes, else its final answer's `count`
    top-level comma-separated items; None when it states neither."""
    boxes, rest = [], completion
    while (box := _last_box(rest)) is not None:
        boxes.insert(0, box[1].strip())
        rest = rest[: box[0]]
    if len(boxes) >= count:
        return boxes[-count:]
    final = extract_final_answer(completion)
    items = None if final is None else _top_level_items(final)
    return items if items is not None and len(items) == count else None


def _grade_parts(completion: str, parts: dict[str, str], in_main: bool) -> Grade:
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
        grade = _grade_answer(predicted[key], gold, in_main)
        if grade.reward != 1.0:
            return Grade(grade.reward, shown, f"part {key!r}: {grade.reason}")
    return Grade(1.0, shown, "correct")


def grade_math(completion: str, gold: object) -> Grade:
    """Grade one completion against one gold answer with math-verify (a few cases stricter, see
    `_stricter_than_math_verify`); a gold answer math-verify reads only as text is compared as words,
    and a multi-part gold answer (see `gold_text`) is graded part by part."""
    in_main = _in_main_thread()
    gold_str = gold_text(gold)
    parts = gold_parts(gold_str)
    if parts is not None:
        return _grade_parts(completion, parts, in_main)
    return _grade_answer(extract_final_answer(completion), gold_str, in_main)


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
