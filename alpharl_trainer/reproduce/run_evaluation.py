"""One run's evaluation: every method's prediction at every window end, scored the same way
(`RunEvaluation`); `reproduce.suite` drives it over the suite's runs.

Only what is known at the window end feeds a prediction: the window's checkpoints and trajectory, its
training rewards, and held-out scores. The test split is read only to report. The run's final weights
enter only the diagnostics (oracle rank-1 correction, scan along the true update) and the reference rows.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import torch

from alpharl_trainer.checkpoints import CheckpointReader
from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.extrapolation.saturation import MIN_POINTS as SATURATION_POINTS
from alpharl_trainer.offline.checkpoint_window import build_trajectory, open_window
from alpharl_trainer.reproduce import compute, methods
from alpharl_trainer.reproduce.admission import admission
from alpharl_trainer.reproduce.config import RunSpec, Suite
from alpharl_trainer.reproduce.evaluation import Evaluator
from alpharl_trainer.reproduce.registry import BASELINES
from alpharl_trainer.reproduce.runs import FullRun, product_run
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
        self._built: dict[tuple[int, str], methods.Weights] = {}
        self.gates: dict[str, float | None] = {}
        self.step_tokens: float | None = None
        self.checkpoint_outcomes: dict[str, list[int]] = {}

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
        self.first_update_row = (weights, {"choice": label, "heldout": scores[label], "scored": len(scores)})

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
        reward = traj.covariates["reward"][-1]  # the window end's mean training reward; 1 is the tasks' best
        levels = {*spec.paper_targets, *(reward + f * (1.0 - reward) for f in spec.paper_target_fractions)}
        for y in sorted(levels):
            tuned[f"y*={y:.3g}"] = lambda y=y: methods.rank1_forecast(
                traj, self.base, last, y, fit="pls", covariate="reward"
            )
        self._chosen(end, "alpharl_paper_tuned", tuned, last)

        linear = methods.rank1_forecast(traj, self.base, last, float(total))
        self.add(end, "step_linear", end, linear, choice=f"target={total}")

        factors = sorted({*spec.expo_factors, total / end - 1})  # a = 0 is W_K, the kept option
        expo = {
            f"a={a:.3g}": self._once(end, f"expo a={a}", lambda a=a: methods.expo(self.base, last, a))
            for a in factors
        }
        self._chosen(end, "expo", expo, last)
        expo_matrices = {  # the same on the product's tracked matrices only: what its `expo` candidate moves
            label: self._once(
                end, f"expo_matrices {label}", lambda a=a: methods.expo(self.base, last, a, traj.names)
            )
            for a, label in zip(factors, expo, strict=True)
        }
        self._chosen(end, "expo_matrices", expo_matrices, last)

        window = [(s, self.weights(s)) for s in traj.steps if s <= end]
        targets = target_steps(spec.horizons, end)  # the product's
        relex = {}  # the product's candidate steps, the same choice and the same option to keep W_K
        for target in targets:
            relex[f"step {target}"] = self._once(
                end, f"relex {target}", lambda t=target: methods.relex(self.base, window, t)
            )
        self._chosen(end, "relex", relex, last)

        fixed = {}
        for profile in ("linear", "saturating"):  # fixed basis, shared (denoised) time profile
            fixed[profile] = {}
            for k in spec.fixed_basis_ranks:
                for target in targets:
                    fixed[profile][f"k={k} step {target}"] = self._once(
                        end,
                        f"{profile} {k} {target}",
                        lambda k=k, t=target, p=profile: methods.fixed_basis(
                            self.base, window, traj.names, t, k, p
                        ),
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
        self.equal_compute(end)
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

    def _once(self, end: int, key: str, build):
        """`build`, memoized for the window: the portfolio offers the families' own candidates, and the same
        weights object is scored on held-out once."""

        def built() -> methods.Weights:
            if (end, key) not in self._built:
                self._built[(end, key)] = build()
            return self._built[(end, key)]

        return built

    def equal_compute(self, end: int) -> None:
        """Price the window's rows as compute (`reproduce.compute`) and score, on the test split, the full
        run's checkpoint at each row's compute (`checkpoint@<step>`): the truncated run at equal compute."""
        rows = [r for r in self.rows if r["window_step"] == end]
        compute.price(rows, self.evaluator.heldout_tokens, self.step_tokens, self.gates)
        truncated = next(r for r in rows if r["method"] == "truncated")  # W_K: scored already
        self.checkpoint_outcomes.setdefault(f"checkpoint@{end}", truncated["per_problem"])
        for row in rows:
            if "compute" not in row:
                continue
            step = compute.checkpoint_at(row["compute"], self.suite.checkpoint_every, self.suite.steps)
            row["compute_step"] = step
            if f"checkpoint@{step}" not in self.checkpoint_outcomes:
                self.checkpoint_outcomes[f"checkpoint@{step}"] = self.evaluator.test_outcomes(
                    self.weights(step)
                )

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
        self.step_tokens = swap.get("cost", {}).get("step_tokens") or self.step_tokens
        self.gates["default"] = self.gates["default+ft"] = compute.gate_steps([swap])
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
        self.gates["default+jumps"] = compute.gate_steps(made.swaps)
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
        self.add(end, method, end, weights, choice=label, heldout=scores[label], scored=len(scores))

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
