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
from alpharl_trainer.extrapolation.saturation import MIN_POINTS as SATURATION_POINTS
from alpharl_trainer.offline.checkpoint_window import build_trajectory, open_window
from alpharl_trainer.reproduce import methods
from alpharl_trainer.reproduce.admission import admission
from alpharl_trainer.reproduce.categories import with_categories
from alpharl_trainer.reproduce.config import RunSpec, Suite
from alpharl_trainer.reproduce.evaluation import Evaluator
from alpharl_trainer.reproduce.outcomes import pair_with_truncated, take_outcomes
from alpharl_trainer.reproduce.registry import BASELINES, METHODS
from alpharl_trainer.reproduce.runs import RECIPES, FullRun, product_run, recipe_settings, train_full
from alpharl_trainer.trainer.candidates import describe, short
from alpharl_trainer.trainer.schedule import target_steps


def log(message: str) -> None:
    print(f"[reproduce {time.strftime('%H:%M:%S')}] {message}", flush=True)


def load_weights(folder: Path) -> methods.Weights:
    reader = CheckpointReader(folder)
    return {name: reader.get(name) for name in reader.names()}


class RunEvaluation:
    """Every prediction of one full run, scored; `rows()` etc. collect what the report needs."""

    def __init__(self, spec: RunSpec, suite: Suite, run: FullRun):
        self.spec, self.suite, self.run = spec, suite, run
        regime = suite.regimes[spec.regime]
        self.evaluator = Evaluator(run.base, spec.task, suite.eval, mix=regime.mix, heldout_seed=spec.seed)
        steps = suite.snapshot_steps()
        window = open_window(run.base, [run.checkpoints[s] for s in steps], steps=steps)
        self.trajectory, _ = build_trajectory(window, {"reward": run.reward_covariate(steps)}, progress=False)
        self.base = load_weights(run.base)
        self.final = load_weights(run.checkpoints[suite.steps])
        self.rows: list[dict] = []
        self.scans: list[dict] = []
        self._scored: dict[int, tuple[methods.Weights, dict]] = {}
        self.product_seconds = 0.0
        self.decisions: list[dict] = []
        self._heldout_cache: dict[int, tuple[methods.Weights, list[int]]] = {}

    def weights(self, step: int) -> methods.Weights:
        return self.base if step == 0 else load_weights(self.run.checkpoints[step])

    def add(self, end: int, method: str, cost: int, weights: methods.Weights, **extra) -> dict:
        """Score `weights` on the test split (once per weights object: a rollback or the first-update
        prediction repeats an earlier one) and record the row; a row at the window's cost that a headline
        comparison may choose (`truncated`, `default`, a baseline) keeps its held-out outcomes too."""
        if id(weights) not in self._scored:  # the weights are kept, so their id is not reused
            self._scored[id(weights)] = (weights, dataclasses.asdict(self.evaluator.test_scores(weights)))
        scores = self._scored[id(weights)][1]
        row = {"window_step": end, "method": method, "cost": cost, **scores, **extra}
        if method in ("truncated", "default", *BASELINES):
            row["heldout_per_problem"] = held = self._heldout(weights)
            row.setdefault("heldout", sum(held) / len(held))
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
                f"c={c:g}": (lambda c=c: methods.first_update(self.base, first, c))
                for c in self.suite.methods.first_update_factors
            },
            self._heldout,
            ("c=1", first),
            self.suite.methods.margin_se,
        )
        self.first_update_row = (weights, {"choice": label, "heldout": scores[label]})

    def window(self, end: int) -> None:
        suite, spec, ev = self.suite, self.suite.methods, self.evaluator
        traj = self.trajectory.window(end)
        last = self.weights(end)
        total = suite.steps
        held = self._heldout(last)
        current = sum(held) / len(held)
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
        tuned = {}
        for y in spec.paper_targets:
            tuned[f"y*={y:g}"] = lambda y=y: methods.rank1_forecast(
                traj, self.base, last, y, fit="pls", covariate="reward"
            )
        self._chosen(end, "alpharl_paper_tuned", tuned, last)

        linear = methods.rank1_forecast(traj, self.base, last, float(total))
        self.add(end, "step_linear", end, linear, choice=f"target={total}")

        factors = sorted({*spec.expo_factors, total / end - 1})  # a = 0 is W_K, the kept option
        expo = {f"a={a:.3g}": (lambda a=a: methods.expo(self.base, last, a)) for a in factors}
        self._chosen(end, "expo", expo, last)

        window = [(s, self.weights(s)) for s in traj.steps if s <= end]
        targets = target_steps(spec.horizons, end)  # the product's
        relex = {}  # the product's candidate steps, the same choice and the same option to keep W_K
        for target in targets:
            relex[f"step {target}"] = lambda t=target: methods.relex(self.base, window, t)
        self._chosen(end, "relex", relex, last)

        fixed = {}
        for profile in ("linear", "saturating"):  # fixed basis, shared (denoised) time profile
            fixed[profile] = {}
            for k in spec.fixed_basis_ranks:
                for target in targets:
                    fixed[profile][f"k={k} step {target}"] = lambda k=k, t=target, p=profile: (
                        methods.fixed_basis(self.base, window, traj.names, t, k, p)
                    )
            self._chosen(end, f"fixed_basis_{profile}", fixed[profile], last)

        # the gated portfolio: one choice, by the same rule, among the rank-1 line at the product's
        # candidate steps, ExPO, RELEX and the saturating fixed-basis forecast (or W_K); a window too short
        # for the saturating profile leaves that family out, as the product's portfolio does
        portfolio = {
            f"rank-1 step {t}": (lambda t=t: methods.rank1_forecast(traj, self.base, last, float(t)))
            for t in targets
        }
        families = [("expo", expo), ("relex", relex)]
        if len(window) >= SATURATION_POINTS:
            families.append(("fixed-basis", fixed["saturating"]))
        for family, candidates in families:
            portfolio.update({f"{family} {label}": build for label, build in candidates.items()})
        self._chosen(end, "portfolio", portfolio, last)

        recent = {  # W_K (the window's last checkpoint) is the kept option
            f"step {s}": (lambda s=s: self.weights(s)) for s in traj.steps[-spec.recent_k :] if s < end
        }
        self._chosen(end, "best_recent", recent, last)

        weights, extra = self.first_update_row
        self.add(end, "first_update", 1, weights, **extra)

        ckpts = [s for s in traj.steps if s <= end][-spec.lawa_k :]
        self.add(end, "lawa", end, methods.lawa([self.weights(s) for s in ckpts]), choice=f"k={len(ckpts)}")

        self.product(end, last, current)

        self.add(end, "oracle_rank1", end, methods.oracle_rank1(traj, last, self.final))
        for direction, target in (("forecast", linear), ("true", self.final)):
            for s in spec.scan_scales:
                acc = current if s == 0 else ev.heldout_accuracy(methods.along(last, target, s))
                self.scans.append({"window_step": end, "direction": direction, "scale": s, "heldout": acc})

    def admission(self, base: list[int]) -> dict:
        """The numbers that admit this run's regime as a headline (`reproduce.admission`), and the verdict."""
        steps = self.suite.admission_steps()
        outcomes = {
            s: self.evaluator.test_outcomes(self.weights(s)) for group in steps.values() for s in group
        }
        (at_40,), (at_80,) = steps["at_40"], steps["at_80"]
        last_three = [outcomes[s] for s in steps["last_three"]]
        if len(last_three) < 3:  # a run shorter than three checkpoints: its last one, thrice
            last_three += [last_three[-1]] * (3 - len(last_three))
        result = admission(base, outcomes[at_40], outcomes[at_80], last_three)
        return {**dataclasses.asdict(result), "admitted": result.admitted, "steps": steps}

    def _heldout(self, weights: methods.Weights) -> list[int]:
        """Held-out outcomes of `weights`, each weights object scored once (W_K is every choice's option)."""
        key = id(weights)
        if key not in self._heldout_cache:
            self._heldout_cache[key] = (weights, self.evaluator.heldout_outcomes(weights))
        return self._heldout_cache[key][1]

    def product(self, end: int, last: methods.Weights, current: float) -> None:
        """The `default` cell: `alpharl train` on the suite's recipe with AlphaRL deciding at `end` (its own
        gate and candidates), and `default+ft` after its fine-tune, paired with the full run at that
        budget."""
        suite = self.suite
        budget = end + suite.finetune_steps
        finetune = suite.finetune_steps if end in suite.finetune_window_steps() else 0
        made = product_run(self.spec, suite, self.run, end, finetune)
        self.product_seconds += made.seconds
        swap = made.swap
        chosen = swap["chosen"]
        label = "keep W_K" if chosen is None else short(chosen)
        gate_current = swap["scores"].get("current")
        self.decisions.append(
            {
                "window_step": end,
                "chosen": chosen,
                "scores": swap["scores"],
                "paired_se": swap.get("paired_se", {}),
                "gate_engine": swap.get("gate_engine"),
                "scoring": swap.get("scoring"),
                "margin_se": swap.get("margin_se"),
                "gate_current": gate_current,
                "suite_current": current,
                "seconds": made.seconds,
                "cost": swap.get("cost", {}),
            }
        )
        accuracy_only = made.rewards == ["task"]  # else the gate's reward is not the suite's accuracy
        self.decisions[-1]["gate_reward_is_accuracy"] = accuracy_only
        mismatch = (
            gate_current is not None and abs(gate_current - current) > 0.5 / suite.eval.heldout_problems
        )
        if accuracy_only and mismatch:
            log(
                f"{self.spec.name} window {end}: the product run's gate scored W_K {gate_current:.4f}, the "
                f"suite {current:.4f}: its window-end weights differ from the full run's checkpoint"
            )
        window = last if chosen is None else made.window
        heldout = gate_current if chosen is None else swap["scores"].get(chosen)
        self.add(end, "default", end, window, choice=label, heldout=heldout)
        if finetune:
            self.add(end, "default+ft", budget, made.finetuned, choice=label)
            self.add(end, "truncated@ft", budget, self.weights(budget))
        if end in suite.jumps_window_steps():
            self.jumps(end)

    def jumps(self, end: int) -> None:
        """`default+jumps`: `alpharl train` with `alpharl_jumps` windows of `end` steps, each jump gated,
        stopped at the last one; paired with the full run's checkpoint there (`truncated@jumps`)."""
        jumps = self.suite.methods.jumps
        made = product_run(self.spec, self.suite, self.run, end, 0, jumps=jumps)
        self.product_seconds += made.seconds
        choice = "; ".join(
            f"{s['step']}: " + ("keep" if s["chosen"] is None else describe(s["chosen"]).removeprefix("the "))
            for s in made.swaps
        )
        self.add(end, "default+jumps", jumps * end, made.finetuned, choice=choice)
        self.add(end, "truncated@jumps", jumps * end, self.weights(jumps * end))

    def _chosen(self, end: int, method: str, candidates: dict, last: methods.Weights) -> None:
        """A baseline chosen on held-out among `candidates` (label -> builder) at the window's cost, by the
        gate's rule, with the option to keep `last` (W_K)."""
        try:
            label, weights, scores = methods.choose(
                candidates, self._heldout, ("keep W_K", last), self.suite.methods.margin_se
            )
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
    heldout_per_problem = take_outcomes(ev.rows, "heldout_per_problem")
    off_task_per_problem = take_outcomes(ev.rows, "off_task_per_problem")
    regime_admission = ev.admission(base_scores.per_problem)
    return {
        **dataclasses.asdict(spec),
        "run": spec.name,
        "steps": suite.steps,
        "finetune_steps": suite.finetune_steps,
        "test_problems": suite.eval.test_problems,
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


def run_suite(suite: Suite, base: Path) -> list[dict]:
    """Every run of the suite (reusing finished ones under `suite.work_dir`), as result dicts."""
    torch.set_num_threads(suite.threads)
    results = []
    for i, spec in enumerate(suite.runs):
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
