"""`alpharl eval CHECKPOINT (--task NAME | --benchmark FILE)`: accuracy, avg@n and pass@k of a checkpoint.

Generates a greedy completion and --samples sampled ones per problem of a synthetic task or a benchmark
JSON Lines file (with transformers, or vLLM), grades each extracted answer against the gold one, and
reports greedy accuracy, avg@n over the samples and unbiased pass@k. Writes `results.jsonl` (per problem:
completions, extracted answers, scores) and `summary.json` to `--out` (default
`<checkpoint>/eval/<target>`), and prints the summary.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from alpharl_trainer.atomic import check_output, check_writable_dir
from alpharl_trainer.commands.arg_types import non_negative_float, non_negative_int, positive_int
from alpharl_trainer.errors import AlphaRLError

TASK_MAX_NEW_TOKENS = 32  # the synthetic tasks' completions are a few characters
BENCHMARK_MAX_NEW_TOKENS = 2048


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "checkpoint",
        help="Hugging Face checkpoint folder (model + tokenizer), or a named policy (tiny, smollm2-135m)",
    )
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--task", help="synthetic task name (see alpharl_trainer.tasks.TASKS)")
    target.add_argument("--benchmark", metavar="FILE", help="benchmark JSON Lines file")

    tasks = parser.add_argument_group("synthetic task")
    tasks.add_argument("--task-option", action="append", default=[], metavar="KEY=VALUE", help="e.g. mix=rl")
    tasks.add_argument("--split", default="test", help="task split (default: test)")
    tasks.add_argument(
        "--n-problems", type=positive_int, default=200, help="number of task problems (default: 200)"
    )
    tasks.add_argument("--problem-seed", type=int, default=0, help="seed of the drawn task problems")
    tasks.add_argument(
        "--teacher-forced", action="store_true", help="also report teacher-forced exact match and log-prob"
    )

    bench = parser.add_argument_group("benchmark file")
    bench.add_argument("--question-field", help="field holding the question (default: detected)")
    bench.add_argument("--answer-field", help="field holding the gold answer (default: detected)")
    bench.add_argument("--limit", type=positive_int, help="evaluate only the first N rows")

    gen = parser.add_argument_group("generation")
    gen.add_argument(
        "--samples", type=non_negative_int, default=0, help="sampled completions per problem (default: 0)"
    )
    gen.add_argument("--no-greedy", action="store_true", help="skip the greedy completion")
    gen.add_argument(
        "--temperature", type=non_negative_float, default=0.6, help="sampling temperature (default: 0.6)"
    )
    gen.add_argument("--top-p", type=float, default=0.95, help="nucleus sampling threshold (default: 0.95)")
    gen.add_argument(
        "--pass-k", default="1", help="comma-separated k of pass@k, each <= --samples (default: 1)"
    )
    gen.add_argument(
        "--max-new-tokens",
        type=positive_int,
        help=f"default: {TASK_MAX_NEW_TOKENS} for tasks, {BENCHMARK_MAX_NEW_TOKENS} for benchmarks",
    )
    gen.add_argument(
        "--batch-size", type=positive_int, default=64, help="sequences per generate call (default: 64)"
    )
    gen.add_argument("--seed", type=int, default=0, help="sampling seed")
    gen.add_argument("--engine", choices=("transformers", "vllm"), default="transformers")
    gen.add_argument(
        "--chat",
        action="store_true",
        help="render prompts with the tokenizer's chat template (always, for a chat task)",
    )
    gen.add_argument("--dtype", default="auto", help="model dtype (default: as saved)")
    gen.add_argument(
        "--vllm-memory-utilization",
        type=float,
        help="vLLM gpu_memory_utilization (on CPU: share of RAM for the KV cache; default 0.9 GPU, 0.3 CPU)",
    )

    parser.add_argument("--out", help="output folder (default: <checkpoint>/eval/<target>)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--threads",
        type=positive_int,
        help="CPU threads for torch (default: torch's; 1 is fastest for tiny models)",
    )


def _task_options(pairs: list[str]) -> dict[str, str]:
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise AlphaRLError(f"--task-option expects KEY=VALUE, got {pair!r}")
        options[key] = value
    return options


def _pass_k(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(k) for k in text.split(","))
    except ValueError as err:
        raise AlphaRLError(f"--pass-k expects comma-separated integers, got {text!r}") from err


def _target(args: argparse.Namespace):
    """(grader, problems, default max new tokens) for the chosen task or benchmark."""
    if args.task:
        from alpharl_trainer.tasks import get_task

        task = get_task(args.task, **_task_options(args.task_option))
        return task, task.problems(args.split, args.n_problems, args.problem_seed), TASK_MAX_NEW_TOKENS
    from alpharl_trainer.tasks.benchmarks import load_benchmark

    benchmark = load_benchmark(args.benchmark, args.question_field, args.answer_field)
    if benchmark.skipped:
        lines = ", ".join(str(line) for line, _ in benchmark.skipped)
        print(
            f"{args.benchmark}: {len(benchmark.skipped)} row(s) skipped, their gold answer cannot be graded "
            f"(lines {lines})"
        )
    return benchmark, benchmark.records[: args.limit], BENCHMARK_MAX_NEW_TOKENS


def run(args: argparse.Namespace) -> int:
    from alpharl_trainer.evaluate import (
        EvalSettings,
        TransformersEngine,
        VLLMEngine,
        evaluate,
        load_folder,
        teacher_forced,
        write_results,
    )

    if args.task:
        from alpharl_trainer.tasks import get_task, is_chat

        args.chat = args.chat or is_chat(get_task(args.task, **_task_options(args.task_option)))
    if args.teacher_forced and (not args.task or args.chat):
        raise AlphaRLError(
            "--teacher-forced needs a synthetic task (gold completions) and plain prompts (no --chat)"
        )
    from alpharl_trainer.policies import named_policies, resolve_policy

    if args.checkpoint in named_policies():
        args.checkpoint = str(resolve_policy(args.checkpoint))
    if args.out:  # the default, <checkpoint>/eval/<target>, lies inside the checkpoint and only adds files
        check_output(
            args.out,
            [args.checkpoint, *([args.benchmark] if args.benchmark else [])],
            inside_ok=True,
            cwd_ok=True,
        )
    grader, problems, default_tokens = _target(args)
    out = Path(args.out) if args.out else Path(args.checkpoint) / "eval" / grader.name
    check_writable_dir(out)  # before the evaluation, which can take hours
    settings = EvalSettings(
        greedy=not args.no_greedy,
        samples=args.samples,
        temperature=args.temperature,
        top_p=args.top_p,
        max_new_tokens=args.max_new_tokens or default_tokens,
        pass_k=_pass_k(args.pass_k) if args.samples else (),
        seed=args.seed,
    )
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    model = tokenizer = None
    if args.engine == "transformers" or args.teacher_forced:
        model, tokenizer = load_folder(args.checkpoint, dtype=args.dtype)
    if args.engine == "vllm":
        engine = VLLMEngine(
            args.checkpoint, args.chat, not args.no_progress, args.dtype, args.vllm_memory_utilization
        )
    else:
        engine = TransformersEngine(
            model, tokenizer, args.batch_size, args.chat, progress=not args.no_progress
        )
    result = evaluate(engine, grader, problems, settings)
    result.summary["checkpoint"] = str(args.checkpoint)
    if args.teacher_forced:
        scores = teacher_forced(model, tokenizer, problems, args.batch_size)
        result.summary["teacher_forced"] = {"exact": scores["exact"], "logprob": scores["logprob"]}
    print(json.dumps(result.summary, indent=2), flush=True)  # on screen even if the write fails
    results_path, summary_path = write_results(result, out)
    print(f"wrote {results_path} and {summary_path}")
    return 0
