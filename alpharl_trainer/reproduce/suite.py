"""The suite, end to end: per run, train it, evaluate it (`reproduce.run_evaluation`: every method's
prediction at every window end, scored the same way, and the diagnostics); then the report reads the results.

Each run's results are saved as JSON beside its checkpoints, so a re-run of the suite resumes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path

import torch

from alpharl_trainer.atomic import atomic_file
from alpharl_trainer.reproduce.categories import with_categories
from alpharl_trainer.reproduce.config import RunSpec, Suite
from alpharl_trainer.reproduce.outcomes import pair_with_truncated, take_outcomes
from alpharl_trainer.reproduce.registry import METHODS
from alpharl_trainer.reproduce.run_evaluation import RunEvaluation, log
from alpharl_trainer.reproduce.runs import RECIPES, FullRun, recipe_settings, train_full


def evaluate_run(spec: RunSpec, suite: Suite, run: FullRun) -> dict:
    start = time.perf_counter()
    ev = RunEvaluation(spec, suite, run)
    base_scores = ev.evaluator.test_scores(ev.base)
    full_scores = ev.evaluator.test_scores(ev.final)
    curve = ev.curve()
    ev.first_update()
    for end in suite.window_steps():
        ev.window(end)
        log(f"{spec.name}: window {end} done ({time.perf_counter() - start:.0f}s)")
    r2, share = ev.r2_and_shares()
    per_problem = {**pair_with_truncated(ev.rows), **ev.checkpoint_outcomes}
    heldout_per_problem = take_outcomes(ev.rows, "heldout_per_problem")
    off_task_per_problem = take_outcomes(ev.rows, "off_task_per_problem")
    regime_admission = ev.admission(base_scores.per_problem)
    return {
        **dataclasses.asdict(spec),
        "run": spec.name,
        "steps": suite.steps,
        "finetune_steps": suite.finetune_steps,
        "test_problems": suite.eval.test_problems,
        "heldout_tokens": ev.evaluator.heldout_tokens,
        "step_tokens": ev.step_tokens,
        "test_categories": [p.category for p in ev.evaluator.test],
        "base": dataclasses.asdict(base_scores),
        "full": dataclasses.asdict(full_scores),
        "heldout": {
            "base": ev.evaluator.heldout_accuracy(ev.base),
            "full": ev.evaluator.heldout_accuracy(ev.final),
        },
        "curve": curve,
        "rows": ev.rows,
        "per_problem": per_problem,
        "heldout_per_problem": heldout_per_problem,
        "off_task_per_problem": off_task_per_problem,
        "admission": regime_admission,
        "decisions": ev.decisions,
        "scans": ev.scans,
        "r2": r2,
        "rank1_share": share,
        "timings": {
            "train": run.seconds,
            "product": ev.product_seconds,
            "evaluate": time.perf_counter() - start - ev.product_seconds,
        },
    }


def fingerprint(suite: Suite, spec: RunSpec, base: Path, *, scoring: bool) -> str:
    """A short hash of what a run's checkpoints depend on (the run folder's name), or with `scoring` also of
    how they are scored (its results file's name): a changed recipe never reuses stale results, and a
    change of evaluation settings reuses the trained checkpoints."""
    settings = {
        k: getattr(suite, k)
        for k in ("steps", "checkpoint_every", "windows", "finetune_steps", "finetune_windows")
    }
    settings["regime"] = suite.regimes[spec.regime]
    # what the run trains with: the algorithm's tiny recipe (its text) and everything the suite sets on it
    settings["recipe"] = recipe_settings(spec, suite, suite.steps)
    settings["recipe_file"] = hashlib.sha256((RECIPES / f"{spec.loss}.yaml").read_bytes()).hexdigest()
    if scoring:  # the rows a run's results hold: a method added to the harness rescores every run
        settings.update(eval=suite.eval, methods=suite.methods, rows=METHODS)
    text = json.dumps([settings, spec, str(base)], sort_keys=True, default=_plain)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def _plain(value):
    return dataclasses.asdict(value) if dataclasses.is_dataclass(value) else str(value)


def run_suite(suite: Suite, base: Path, shard: tuple[int, int] = (0, 1)) -> list[dict]:
    """Every run of the suite (reusing finished ones under `suite.work_dir`), as result dicts; with `shard`
    (i, n) only the runs whose position in the recipe is i modulo n: n processes share the suite's runs."""
    torch.set_num_threads(suite.threads)
    results = []
    index, count = shard
    for i, spec in enumerate(suite.runs):
        if i % count != index:
            continue
        folder = suite.work_dir / f"{spec.name}-{fingerprint(suite, spec, base, scoring=False)}"
        record = folder / f"results-{fingerprint(suite, spec, base, scoring=True)}.json"
        if record.is_file():
            log(f"[{i + 1}/{len(suite.runs)}] {spec.name}: reusing {record}")
            results.append(with_categories(json.loads(record.read_text()), spec, suite))
            continue
        log(f"[{i + 1}/{len(suite.runs)}] {spec.name}: training {suite.steps} steps")
        run = train_full(spec, suite, base, folder)
        log(f"{spec.name}: trained in {run.seconds:.0f}s; evaluating")
        result = evaluate_run(spec, suite, run)
        with atomic_file(record) as tmp:
            tmp.write_text(json.dumps(result) + "\n")
        results.append(result)
    return results
