"""The real-model suite's numbers: `Tables` (per-problem outcomes turned into shares, costs and paired
comparisons) and `results.csv` (the reproduction suite's columns plus the cost in training-step equivalents).

Two intervals per comparison, both 95%: problem-level (a bootstrap over the test problems the seeds share,
one common resample for every seed, the seeds fixed: it knows nothing of seed-to-seed variation) and
seed-level (a t-interval over the per-seed mean differences: seeds are the unit). A cell is called better
or worse only where the seed-level interval excludes 0.
"""

from __future__ import annotations

import csv
import io
import statistics

from alpharl_trainer.reproduce.real import RealSuite
from alpharl_trainer.stats import paired, problem_level, seed_interval

COLUMNS = (
    "run,task,loss,regime,seed,T,window,window_step,method,cost_steps,cost_step_equivalents,speedup,test_n,"
    "greedy,gain_share,diff_vs_truncated,diff_ci_low,diff_ci_high,p_mcnemar,sampled,logprob,off_task,choice,"
    "heldout,error"
).split(",")


def accuracy(bits: list[int]) -> float:
    return sum(bits) / len(bits)


def fmt(x: float | None, digits: int = 3, sign: bool = False) -> str:
    if x is None or x != x:
        return "-"
    return f"{x:+.{digits}f}" if sign else f"{x:.{digits}f}"


class Tables:
    """The suite's numbers, computed once from the per-problem outcomes."""

    def __init__(self, suite: RealSuite, runs: dict, products: dict, scores: dict):
        self.suite, self.runs, self.products, self.scores = suite, runs, products, scores
        self.T = suite.steps()
        self.base = scores["base"]["test"]

    def test(self, seed: int, name: str) -> list[int]:
        return self.scores[f"s{seed}/{name}"]["test"]

    def step_seconds(self, seed: int) -> float:
        times = list(self.runs[seed]["step_seconds"].values())
        return statistics.mean(times) if times else self.runs[seed]["seconds"] / self.runs[seed]["steps"]

    def cost(self, seed: int, end: int) -> float:
        """The product run's compute in training steps: its K steps plus the swap (forecast and gate) in
        units of the full run's mean step time."""
        return end + self.products[seed, end]["summary"]["swap"]["seconds"] / self.step_seconds(seed)

    def share(self, seed: int, bits: list[int]) -> float:
        full = accuracy(self.test(seed, f"full@{self.T}"))
        gain = full - accuracy(self.base)
        return (accuracy(bits) - accuracy(self.base)) / gain if gain else float("nan")

    def compare(self, pairs: list[tuple[list[int], list[int]]]) -> dict:
        """b - a over seeds: the problem-level pooled interval and the seed-level t-interval."""
        problem = problem_level([a for a, _ in pairs], [b for _, b in pairs])
        per_seed = [accuracy(b) - accuracy(a) for a, b in pairs]
        mean, low, high = seed_interval(per_seed)
        verdict = "better" if low > 0 else "worse" if high < 0 else "no significant difference"
        return {"diff": mean, "problem": (problem.low, problem.high), "p": problem.p_mcnemar,
                "seed": (low, high), "per_seed": per_seed, "verdict": verdict}  # fmt: skip


def _csv_row(t: Tables, seed: int, window, end: int, method: str, score: dict, **extra) -> dict:
    """One results.csv row; `reference` (the truncated run's outcomes) adds the paired difference to it."""
    recipe, bits = t.suite._recipe(), score["test"]
    reference, cost = extra.pop("reference", None), extra.pop("cost", end)
    diff = paired(reference, bits) if reference is not None else None
    return {
        "run": f"real-{recipe['task']}-{recipe['trainer']}-s{seed}",
        "task": recipe["task"],
        "loss": recipe.get("loss_type", ""),
        "regime": "real",
        "seed": seed,
        "T": t.T,
        "window": window,
        "window_step": end,
        "method": method,
        "cost_steps": end,
        "cost_step_equivalents": fmt(cost, 2),
        "speedup": fmt(t.T / cost, 2) if cost else "",
        "test_n": len(bits),
        "greedy": fmt(accuracy(bits), 4),
        "gain_share": fmt(t.share(seed, bits), 4),
        "diff_vs_truncated": fmt(diff.diff, 4) if diff else "",
        "diff_ci_low": fmt(diff.low, 4) if diff else "",
        "diff_ci_high": fmt(diff.high, 4) if diff else "",
        "p_mcnemar": f"{diff.p_mcnemar:.3g}" if diff else "",
        "sampled": "",
        "logprob": "",
        "off_task": fmt(accuracy(score["off_task"]), 4),
        "error": "",
        **extra,
    }


def write_csv(t: Tables) -> str:
    rows = []
    for seed in t.suite.seeds:
        rows.append(_csv_row(t, seed, "", 0, "base", t.scores["base"]))
        rows.append(_csv_row(t, seed, 1.0, t.T, "full", t.scores[f"s{seed}/full@{t.T}"]))
        for share, end in zip(t.suite.windows, t.suite.window_steps(), strict=True):
            trunc = t.scores[f"s{seed}/full@{end}"]
            rows.append(_csv_row(t, seed, share, end, "truncated", trunc, reference=trunc["test"]))
            swap = t.products[seed, end]["summary"]["swap"]
            chosen = swap["chosen"] or "current"
            rows.append(
                _csv_row(
                    t,
                    seed,
                    share,
                    end,
                    "default",
                    t.scores[f"s{seed}/product@{end}"],
                    reference=trunc["test"],
                    cost=t.cost(seed, end),
                    choice=swap["chosen"] or "W_K",
                    heldout=fmt(swap["scores"].get(chosen), 4),
                )  # fmt: skip
            )
    out = io.StringIO()
    writer = csv.DictWriter(out, COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()
