"""Evaluation of a policy on a synthetic task or a benchmark file: generation, grading, pass@k.

Two generation engines return the same thing (per prompt, a list of completion strings):
`TransformersEngine` (batched `generate`, left padding, works everywhere) and `VLLMEngine` (vLLM,
imported only when chosen). `evaluate` grades a greedy completion and/or `samples` sampled ones per
problem with a grader (a `Task`, or a `Benchmark`: anything with `extract_answer` and `score`), and
reports mean accuracy over samples (avg@n) and the unbiased pass@k estimator of the Codex paper.

`teacher_forced` scores the gold completions of a synthetic task without generating: a problem is
"exact" when the argmax of the model equals the gold token at every completion position, EOS
included, which is exactly when greedy decoding reproduces the gold completion, at the cost of one
forward pass per batch.

Prompts are tokenized as TRL's GRPOTrainer tokenizes them (`tokenizer(prompts)`, default special
tokens; chat prompts rendered with the chat template), so a checkpoint is evaluated on the inputs it
was trained on.
"""

from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import torch

from alpharl_trainer.atomic import atomic_file
from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.tasks.base import Problem
from alpharl_trainer.teacher_forcing import score_references


class Grader(Protocol):
    """What evaluation needs of a task or benchmark."""

    name: str

    def extract_answer(self, completion: str) -> str | None: ...

    def score(self, completion: str, answer: str) -> float: ...


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased estimate of pass@k from `n` samples of which `c` are correct (Chen et al. 2021):
    1 - C(n-c, k) / C(n, k), as a running product to stay exact for large n."""
    if not 0 < k <= n:
        raise AlphaRLError(f"pass@{k} needs 1 <= k <= n samples, got n={n}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def load_folder(path: str | Path, dtype: str = "auto", device: str | None = None):
    """(model, tokenizer) from a Hugging Face checkpoint folder, in eval mode, on `device`
    (default: CUDA when available, else CPU)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    if not (path / "config.json").is_file():
        raise AlphaRLError(f"{path}: not a model checkpoint folder (no config.json)")
    # transformers builds an empty tokenizer from a folder without one, and evaluation then fails deep
    # inside generation: a checkpoint saved without its tokenizer (e.g. a trainer without processing_class)
    tokenizer_files = (
        "tokenizer.json",
        "tokenizer_config.json",
        "tokenizer.model",
        "vocab.json",
        "vocab.txt",
    )
    if not any((path / name).is_file() for name in tokenizer_files):
        raise AlphaRLError(
            f"{path}: no tokenizer files ({', '.join(tokenizer_files)}); copy the base model's tokenizer in"
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    except (OSError, ValueError) as err:
        raise AlphaRLError(f"{path}: cannot load model or tokenizer: {err}") from err
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return model.to(device).eval(), tokenizer


def render_prompts(tokenizer, prompts: list[str], chat: bool) -> list[str]:
    """Prompts as the model sees them: unchanged, or as a one-turn chat with the generation prompt."""
    if not chat:
        return prompts
    if not getattr(tokenizer, "chat_template", None):
        raise AlphaRLError("chat prompts requested but the tokenizer has no chat template")
    return [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True
        )
        for p in prompts
    ]


@dataclass(frozen=True)
class Sampling:
    """How completions are drawn: greedy when `temperature == 0` (then `n` must be 1)."""

    n: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 32
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n < 1 or self.max_new_tokens < 1:
            raise AlphaRLError(f"need n >= 1 and max_new_tokens >= 1, got {self.n} and {self.max_new_tokens}")
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise AlphaRLError(
                f"need temperature >= 0 and 0 < top_p <= 1, got {self.temperature}, {self.top_p}"
            )
        if self.temperature == 0 and self.n != 1:
            raise AlphaRLError(f"greedy decoding gives one completion per prompt, not {self.n}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


class TransformersEngine:
    """Batched `model.generate` with left padding; batches group prompts of similar length."""

    name = "transformers"

    def __init__(self, model, tokenizer, batch_size: int = 64, chat: bool = False, progress: bool = True):
        if tokenizer.pad_token is None:  # as TRL does: batches need a pad token, EOS serves
            if tokenizer.eos_token is None:
                raise AlphaRLError("the tokenizer has neither a pad nor an EOS token; cannot pad batches")
            tokenizer.pad_token = tokenizer.eos_token
        self.model, self.tokenizer = model, tokenizer
        self.batch_size, self.chat, self.progress = batch_size, chat, progress

    @torch.inference_mode()
    def generate(self, prompts: list[str], sampling: Sampling) -> list[list[str]]:
        from tqdm.auto import tqdm
        from transformers import GenerationConfig

        tok = self.tokenizer
        config = GenerationConfig(
            max_new_tokens=sampling.max_new_tokens,
            do_sample=not sampling.greedy,
            temperature=None if sampling.greedy else sampling.temperature,
            top_p=None if sampling.greedy else sampling.top_p,
            top_k=None if sampling.greedy else 0,  # pure nucleus sampling, as vLLM's default top_k=-1
            num_return_sequences=sampling.n,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
        )
        # A rendered chat already holds its special tokens (TRL tokenizes it without adding more).
        encoded = tok(render_prompts(tok, prompts, self.chat), add_special_tokens=not self.chat)["input_ids"]
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        per_batch = max(1, self.batch_size // sampling.n)  # batch_size counts sequences
        results: list[list[str]] = [[] for _ in prompts]
        torch.manual_seed(sampling.seed)
        device = self.model.device
        with tqdm(total=len(prompts), desc="generating", unit="prompt", disable=not self.progress) as bar:
            for start in range(0, len(order), per_batch):
                batch = order[start : start + per_batch]
                padded = tok.pad(
                    {"input_ids": [encoded[i] for i in batch]}, padding_side="left", return_tensors="pt"
                )
                out = self.model.generate(
                    input_ids=padded["input_ids"].to(device),
                    attention_mask=padded["attention_mask"].to(device),
                    generation_config=config,
                )
                texts = tok.batch_decode(out[:, padded["input_ids"].shape[1] :], skip_special_tokens=True)
                for j, i in enumerate(batch):
                    results[i] = texts[j * sampling.n : (j + 1) * sampling.n]
                bar.update(len(batch))
        return results


class VLLMEngine:
    """vLLM offline inference; started once per evaluation (start-up costs ~30 s on CPU).

    `memory_utilization` is vLLM's `gpu_memory_utilization`; on the CPU backend it is the share of
    *system* memory reserved for the KV cache, so without a GPU it defaults to a modest 0.3 instead
    of vLLM's 0.9 (which refuses to start when other processes hold memory).
    """

    name = "vllm"
    CPU_MEMORY_UTILIZATION = 0.3

    def __init__(
        self,
        model_path: str | Path,
        chat: bool = False,
        progress: bool = True,
        dtype: str = "auto",
        memory_utilization: float | None = None,
    ):
        try:
            from vllm import LLM
        except ImportError as err:
            raise AlphaRLError("--engine vllm needs vLLM: `make install-vllm` (extra 'vllm')") from err
        if memory_utilization is None and not torch.cuda.is_available():
            memory_utilization = self.CPU_MEMORY_UTILIZATION
        if (
            dtype == "auto"
        ):  # vLLM's "auto" downcasts float32 to bfloat16; keep the dtype as saved, as HF does
            config = json.loads((Path(model_path) / "config.json").read_text())
            dtype = config.get("dtype") or config.get("torch_dtype") or "auto"
        extra = {} if memory_utilization is None else {"gpu_memory_utilization": memory_utilization}
        self.llm = LLM(model=str(model_path), dtype=dtype, **extra)
        self.chat, self.progress = chat, progress

    def generate(self, prompts: list[str], sampling: Sampling) -> list[list[str]]:
        from vllm import SamplingParams

        params = SamplingParams(
            n=sampling.n,
            temperature=sampling.temperature,
            top_p=sampling.top_p if not sampling.greedy else 1.0,
            max_tokens=sampling.max_new_tokens,
            seed=sampling.seed,
        )
        rendered = render_prompts(self.llm.get_tokenizer(), prompts, self.chat)
        outputs = self.llm.generate(rendered, params, use_tqdm=self.progress)
        return [[choice.text for choice in out.outputs] for out in outputs]


@dataclass(frozen=True)
class EvalSettings:
    """What `evaluate` generates: a greedy completion and/or `samples` sampled ones per problem."""

    greedy: bool = True
    samples: int = 0
    temperature: float = 0.6
    top_p: float = 0.95
    max_new_tokens: int = 32
    pass_k: tuple[int, ...] = (1,)
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.greedy and self.samples == 0:
            raise AlphaRLError("nothing to evaluate: greedy decoding is off and samples is 0")
        if self.samples and any(not 0 < k <= self.samples for k in self.pass_k):
            raise AlphaRLError(
                f"pass@k needs 1 <= k <= samples ({self.samples}), got k = {list(self.pass_k)}"
            )


@dataclass
class EvalResult:
    summary: dict
    records: list[dict] = field(default_factory=list)
    """One per problem: prompt, answer, category, greedy/sampled completions with their grades."""


def _graded(grader: Grader, completion: str, answer: str) -> dict:
    return {
        "completion": completion,
        "extracted": grader.extract_answer(completion),
        "score": grader.score(completion, answer),
    }


def _summarize(records: list[dict], settings: EvalSettings) -> dict:
    """Accuracy (greedy), mean accuracy over samples and pass@k, overall and per category."""

    def stats(rows: list[dict]) -> dict:
        out: dict = {"problems": len(rows)}
        if settings.greedy:
            out["greedy_accuracy"] = sum(r["greedy"]["score"] for r in rows) / len(rows)
        if settings.samples:
            out[f"avg@{settings.samples}"] = sum(r["mean_score"] for r in rows) / len(rows)
            for k in settings.pass_k:
                out[f"pass@{k}"] = sum(r["pass_at_k"][str(k)] for r in rows) / len(rows)
        return out

    by_category = defaultdict(list)
    for record in records:
        by_category[record["category"]].append(record)
    summary = stats(records)
    if len(by_category) > 1:
        summary["per_category"] = {cat: stats(rows) for cat, rows in sorted(by_category.items())}
    return summary


def evaluate(engine, grader: Grader, problems: list[Problem], settings: EvalSettings) -> EvalResult:
    """Generate with `engine`, grade with `grader`; returns per-problem records and a summary."""
    if not problems:
        raise AlphaRLError(f"{grader.name}: no problems to evaluate")
    start = time.time()
    prompts = [p.prompt for p in problems]
    records = [
        {"index": i, "prompt": p.prompt, "answer": p.answer, "category": p.category, "meta": p.meta}
        for i, p in enumerate(problems)
    ]
    if settings.greedy:
        greedy = engine.generate(prompts, Sampling(max_new_tokens=settings.max_new_tokens))
        for record, (completion,) in zip(records, greedy, strict=True):
            record["greedy"] = _graded(grader, completion, record["answer"])
    if settings.samples:
        sampling = Sampling(
            settings.samples, settings.temperature, settings.top_p, settings.max_new_tokens, settings.seed
        )
        for record, completions in zip(records, engine.generate(prompts, sampling), strict=True):
            record["samples"] = [_graded(grader, c, record["answer"]) for c in completions]
            correct = sum(s["score"] == 1.0 for s in record["samples"])
            record["mean_score"] = sum(s["score"] for s in record["samples"]) / settings.samples
            record["pass_at_k"] = {str(k): pass_at_k(settings.samples, correct, k) for k in settings.pass_k}
    summary = {
        "target": grader.name,
        "engine": engine.name,
        **asdict(settings),
        **_summarize(records, settings),
    }
    summary["seconds"] = round(time.time() - start, 2)
    return EvalResult(summary, records)


def teacher_forced(model, tokenizer, problems: list[Problem], batch_size: int = 64) -> dict:
    """Score each problem's gold completion (`solution` + EOS) in one forward pass, no generation.

    Returns `exact` (share of problems whose gold completion is the argmax at every completion token,
    EOS included: equal to greedy decoding reproducing it), `logprob` (mean over problems of the gold
    completion's total log-probability), and both per problem (`exact_per_problem`,
    `logprob_per_problem`).
    """
    eos = tokenizer.eos_token_id
    if eos is None:
        raise AlphaRLError("teacher forcing needs a tokenizer with an EOS token")
    if any(not p.prompt or not p.solution for p in problems):
        raise AlphaRLError("teacher forcing needs problems with a non-empty prompt and solution")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    prompts = tokenizer([p.prompt for p in problems])["input_ids"]
    golds = tokenizer([p.solution for p in problems], add_special_tokens=False)["input_ids"]
    exact, logprob = score_references(model, prompts, golds, [eos], pad, batch_size=batch_size)
    return {
        "exact": sum(exact) / len(exact),
        "logprob": sum(logprob) / len(logprob),
        "exact_per_problem": exact,
        "logprob_per_problem": logprob,
    }


def greedy_exact(
    model,
    tokenizer,
    grader: Grader,
    problems: list[Problem],
    max_new_tokens: int,
    chat: bool,
    batch_size: int = 64,
) -> dict:
    """Greedy accuracy of `model` on `problems` with `grader`, per problem too (`exact_per_problem`): the
    test score of tasks whose completions are free text, where teacher forcing has no gold completion."""
    engine = TransformersEngine(model, tokenizer, batch_size, chat=chat, progress=False)
    completions = engine.generate([p.prompt for p in problems], Sampling(max_new_tokens=max_new_tokens))
    exact = [grader.score(c, p.answer) == 1.0 for (c,), p in zip(completions, problems, strict=True)]
    return {"exact": sum(exact) / len(exact), "exact_per_problem": exact}


def _write_atomic(path: Path, text: str) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_results(result: EvalResult, out_dir: str | Path) -> tuple[Path, Path]:
    """Write `results.jsonl` (one record per problem) then `summary.json` into `out_dir`, each atomically
    (temp file + rename): a reader never sees a half-written file, and the summary, written last,
    always describes a complete results file."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results_path, summary_path = out / "results.jsonl", out / "summary.json"
    _write_atomic(results_path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in result.records))
    _write_atomic(summary_path, json.dumps(result.summary, indent=2) + "\n")
    return results_path, summary_path
