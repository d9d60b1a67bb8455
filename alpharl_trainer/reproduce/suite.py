"""The suite, end to end: per run, train it, build every method's prediction at every window end, score
them all the same way, and keep the diagnostics; then write the report.

Only what is known at the window end feeds a prediction: the window's checkpoints and trajectory, its
training rewards, and held-out scores. The test split is read only to report. The run's final weights
enter only the diagnostics (oracle rank-1 correction, scan along the true update) and the reference rows.
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
from alpharl_trainer.checkpoints import CheckpointReader
from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.offline.window import build_trajectory, open_window
from alpharl_trainer.reproduce import methods, stats
from alpharl_trainer.reproduce.config import RunSpec, Suite
from alpharl_trainer.reproduce.evaluation import Evaluator
from alpharl_trainer.reproduce.runs import FullRun, finetune, train_full


def log(message: str) -> None:
    print(f"[reproduce {time.strftime('%H:%M:%S')}] {message}", flush=True)


def load_weights(folder: Path) -> methods.Weights:
    reader = CheckpointReader(folder)
    return {name: reader.get(name) for name in reader.names()}


class RunEvaluation:
    """Every prediction of one full run, scored; `rows()` etc. collect what the report needs."""

    def __init__(self, spec: RunSpec, suite: Suite, run: FullRun):
        self.spec, self.suite, self.run = spec, suite, run
        self.evaluator = Evaluator(run.base, spec.task, suite.eval)
        steps = suite.snapshot_steps()
        window = open_window(run.base, [run.checkpoints[s] for s in steps], steps=steps)
        self.trajectory, _ = build_trajectory(window, {"reward": run.reward_covariate(steps)}, progress=False)
        self.base = load_weights(run.base)
        self.final = load_weights(run.checkpoints[suite.steps])
        self.rows: list[dict] = []
        self.scans: list[dict] = []
        self._scored: dict[int, tuple[methods.Weights, dict]] = {}
        self.finetune_seconds = 0.0

    def weights(self, step: int) -> methods.Weights:
        return self.base if step == 0 else load_weights(self.run.checkpoints[step])

    def add(self, end: int, method: str, cost: int, weights: methods.Weights, **extra) -> dict:
        """Score `weights` on the test split (once per weights object: a rollback or the first-update
        prediction repeats an earlier one) and record the row."""
        if id(weights) not in self._scored:  # the weights are kept, so their id is not reused
            self._scored[id(weights)] = (weights, dataclasses.asdict(self.evaluator.test_scores(weights)))
        scores = self._scored[id(weights)][1]
        row = {"window_step": end, "method": method, "cost": cost, **scores, **extra}
        self.rows.append(row)
        return row

    def curve(self) -> list[dict]:
        """Test accuracy of the full run at step 0, every `curve_every` steps, each window end and each
        window end + fine-tune steps (all saved checkpoints)."""
        suite = self.suite
        ends = suite.window_steps()
        wanted = {0, *range(suite.eval.curve_every, suite.steps + 1, suite.eval.curve_every), *ends}
        wanted |= {e + suite.finetune_steps for e in suite.finetune_window_steps()}
        out = []
        for step in sorted(wanted & {0, *suite.save_steps()}):
            acc, logprob = self.evaluator.test_greedy(self.weights(step))
            out.append({"step": step, "greedy": acc, "logprob": logprob})
        return out

    def first_update(self) -> None:
        """Chosen once (it uses step 1 only); reported in every window's rows at its cost of 1 step."""
        first = self.weights(1)
        label, weights, scores = methods.choose(
            {
                f"{c:g}": (lambda c=c: methods.first_update(self.base, first, c))
                for c in self.suite.methods.first_update_factors
            },
            self.evaluator.heldout_accuracy,
        )
        self.first_update_row = (weights, {"choice": f"c={label}", "heldout": scores[label]})

    def window(self, end: int) -> None:
        suite, spec, ev = self.suite, self.suite.methods, self.evaluator
        traj = self.trajectory.window(end)
        last = self.weights(end)
        total = suite.steps
        current = ev.heldout_accuracy(last)
        self.add(end, "truncated", end, last, heldout=current)

        try:  # the paper: PLS of x_t on the reward, inverted at y*, written as its scripts do
            paper = methods.rank1_forecast(
                traj, self.base, last, spec.paper_target, fit="pls", covariate="reward", mode=spec.paper_mode
            )
            self.add(end, "alpharl_paper", end, paper, choice=f"y*={spec.paper_target:g}")
        except AlphaRLError as err:
            log(f"{self.spec.name} window {end}: alpharl_paper failed: {err}")
            self.rows.append({"window_step": end, "method": "alpharl_paper", "cost": end, "error": str(err)})

        # the paper's method done fairly: y* chosen on held-out, W_K kept if no y* helps, rank1_replace
        tuned = {"keep W_K": lambda: last}
        for y in spec.paper_targets:
            tuned[f"y*={y:g}"] = lambda y=y: methods.rank1_forecast(
                traj, self.base, last, y, fit="pls", covariate="reward"
            )
        self._chosen(end, "alpharl_paper_tuned", tuned)

        linear = methods.rank1_forecast(traj, self.base, last, float(total))
        self.add(end, "step_linear", end, linear, choice=f"target={total}")

        factors = sorted({0.0, *spec.expo_factors, total / end - 1})  # a = 0: keep W_K
        self._chosen(
            end, "expo", {f"a={a:.3g}": (lambda a=a: methods.expo(self.base, last, a)) for a in factors}
        )

        window = [(s, self.weights(s)) for s in traj.steps if s <= end]
        relex = {"keep W_K": lambda: last}  # the default's horizons, held-out choice and rollback
        for h in spec.horizons:
            relex[f"{h:g}x"] = lambda h=h: methods.relex(self.base, window, h * end)
        self._chosen(end, "relex", relex)

        recent = {
            f"step {s}": (lambda s=s: self.weights(s)) for s in traj.steps[-spec.recent_k :] if s <= end
        }
        self._chosen(end, "best_recent", recent)

        weights, extra = self.first_update_row
        self.add(end, "first_update", 1, weights, **extra)

        ckpts = [s for s in traj.steps if s <= end][-spec.lawa_k :]
        self.add(end, "lawa", end, methods.lawa([self.weights(s) for s in ckpts]), choice=f"k={len(ckpts)}")

        candidates = {
            f"{h:g}x": (lambda h=h: methods.rank1_forecast(traj, self.base, last, h * end))
            for h in spec.horizons
        }
        label, weights, scores = methods.choose(candidates, ev.heldout_accuracy)
        rolled_back = scores[label] <= current
        if rolled_back:
            label, weights = "rollback", last
        self.add(
            end, "default", end, weights, choice=label, heldout=current if rolled_back else scores[label]
        )

        budget = end + suite.finetune_steps
        if end in suite.finetune_window_steps() and budget <= total:
            truncated_ft = self.weights(budget)
            if rolled_back:  # resuming the unchanged checkpoint is the full run itself
                tuned = truncated_ft
            else:
                start = time.perf_counter()
                tuned = finetune(self.spec, suite, self.run, end, weights)
                self.finetune_seconds += time.perf_counter() - start
            self.add(end, "default+ft", budget, tuned, choice=label)
            self.add(end, "truncated@ft", budget, truncated_ft)

        self.add(end, "oracle_rank1", end, methods.oracle_rank1(traj, last, self.final))
        for direction, target in (("forecast", linear), ("true", self.final)):
            for s in spec.scan_scales:
                acc = current if s == 0 else ev.heldout_accuracy(methods.along(last, target, s))
                self.scans.append({"window_step": end, "direction": direction, "scale": s, "heldout": acc})

    def admission(self, base: list[int]) -> dict:
        """The numbers that admit this run's regime as a headline (`stats.admission`), and the verdict."""
        steps = self.suite.admission_steps()
        outcomes = {
            s: self.evaluator.test_outcomes(self.weights(s)) for group in steps.values() for s in group
        }
        (at_40,), (at_80,) = steps["at_40"], steps["at_80"]
        last_three = [outcomes[s] for s in steps["last_three"]]
        if len(last_three) < 3:  # a run shorter than three checkpoints: its last one, thrice
            last_three += [last_three[-1]] * (3 - len(last_three))
        result = stats.admission(base, outcomes[at_40], outcomes[at_80], last_three)
        return {**dataclasses.asdict(result), "admitted": result.admitted, "steps": steps}

    def _chosen(self, end: int, method: str, candidates: dict) -> None:
        """A baseline chosen on held-out among `candidates` (label -> builder) at the window's cost."""
        try:
            label, weights, scores = methods.choose(candidates, self.evaluator.heldout_accuracy)
        except AlphaRLError as err:
            log(f"{self.spec.name} window {end}: {method} failed: {err}")
            self.rows.append({"window_step": end, "method": method, "cost": end, "error": str(err)})
            return
        self.add(end, method, end, weights, choice=label, heldout=scores[label])

    def r2_and_shares(self) -> tuple[dict, dict]:
        """Per-matrix R^2 of the step-linear fit at each window end, and the rank-1 share over training."""
        from alpharl_trainer.extrapolation import forecast

        ends = self.suite.window_steps()
        names = list(self.trajectory.names)
        values = []
        for end in ends:
            fcs = forecast(self.trajectory.window(end), float(self.suite.steps))
            values.append([fcs[n].fit_r2 for n in names])
        shares = torch.stack(
            [self.trajectory.singular_values(n) / self.trajectory.fro(n).clamp_min(1e-30) for n in names]
        )
        share = {
            "steps": self.trajectory.steps,
            "mean": shares.mean(0).tolist(),
            "min": shares.min(0).values.tolist(),
            "max": shares.max(0).values.tolist(),
        }
        return {"names": names, "windows": ends, "values": values}, share


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
    per_problem = pair_with_truncated(ev.rows)
    admission = ev.admission(base_scores.per_problem)
    return {
        **dataclasses.asdict(spec),
        "run": spec.name,
        "steps": suite.steps,
        "finetune_steps": suite.finetune_steps,
        "test_problems": suite.eval.test_problems,
        "base": dataclasses.asdict(base_scores),
        "full": dataclasses.asdict(full_scores),
        "heldout": {
            "base": ev.evaluator.heldout_accuracy(ev.base),
            "full": ev.evaluator.heldout_accuracy(ev.final),
        },
        "curve": curve,
        "rows": ev.rows,
        "per_problem": per_problem,
        "admission": admission,
        "scans": ev.scans,
        "r2": r2,
        "rank1_share": share,
        "timings": {
            "train": run.seconds,
            "finetune": ev.finetune_seconds,
            "evaluate": time.perf_counter() - start - ev.finetune_seconds,
        },
    }


PAIRED_RESAMPLES = 2000


def pair_with_truncated(rows: list[dict]) -> dict[str, list[int]]:
    """Give every scored row its paired difference to the truncated run at the same cost (the window end's
    checkpoint, or the full run's checkpoint at the fine-tune's budget), with a 95% bootstrap interval and
    McNemar's p; move the per-problem outcomes out of the rows into `{method@window: outcomes}`."""
    outcomes = {f"{r['method']}@{r['window_step']}": r.pop("per_problem") for r in rows if "per_problem" in r}
    for row in rows:
        key = f"{row['method']}@{row['window_step']}"
        reference = "truncated@ft" if row["method"] in ("default+ft", "truncated@ft") else "truncated"
        ref = outcomes.get(f"{reference}@{row['window_step']}")
        if key not in outcomes or ref is None:
            continue
        diff = stats.paired(ref, outcomes[key], resamples=PAIRED_RESAMPLES)
        row.update(
            diff_vs_truncated=diff.diff,
            diff_ci_low=diff.low,
            diff_ci_high=diff.high,
            p_mcnemar=diff.p_mcnemar,
        )
    return outcomes


def fingerprint(suite: Suite, spec: RunSpec, base: Path, *, scoring: bool) -> str:
    """A short hash of what a run's checkpoints depend on (the run folder's name), or with `scoring` also of
    how they are scored (its results file's name): a changed recipe never reuses stale results, and a
    change of evaluation settings reuses the trained checkpoints."""
    settings = {
        k: getattr(suite, k)
        for k in ("steps", "checkpoint_every", "windows", "finetune_steps", "finetune_windows")
    }
    settings["regime"] = suite.regimes[spec.regime]
    if scoring:
        settings.update(eval=suite.eval, methods=suite.methods)
    text = json.dumps([settings, spec, str(base)], sort_keys=True, default=_plain)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def _plain(value):
    return dataclasses.asdict(value) if dataclasses.is_dataclass(value) else str(value)


def run_suite(suite: Suite, base: Path) -> list[dict]:
    """Every run of the suite (reusing finished ones under `suite.work_dir`), as result dicts."""
    torch.set_num_threads(suite.threads)
    results = []
    for i, spec in enumerate(suite.runs):
        folder = suite.work_dir / f"{spec.name}-{fingerprint(suite, spec, base, scoring=False)}"
        record = folder / f"results-{fingerprint(suite, spec, base, scoring=True)}.json"
        if record.is_file():
            log(f"[{i + 1}/{len(suite.runs)}] {spec.name}: reusing {record}")
            results.append(json.loads(record.read_text()))
            continue
        log(f"[{i + 1}/{len(suite.runs)}] {spec.name}: training {suite.steps} steps")
        run = train_full(spec, suite, base, folder)
        log(f"{spec.name}: trained in {run.seconds:.0f}s; evaluating")
        result = evaluate_run(spec, suite, run)
        with atomic_file(record) as tmp:
            tmp.write_text(json.dumps(result) + "\n")
        results.append(result)
    return results
