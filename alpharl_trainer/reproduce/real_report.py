"""The real-model suite's report: `results.csv` (the reproduction suite's columns plus the cost in
training-step equivalents), `results.md`, `outcomes.json` (every model's per-problem outcomes, so every
interval can be recomputed) and `accuracy_vs_step.png`, written into the suite's `out`.

Two intervals per comparison, both 95%: problem-level (a bootstrap over test problems, stratified by seed:
it knows nothing of seed-to-seed variation) and seed-level (a t-interval over the per-seed mean differences:
seeds are the unit). A cell is called better or worse only where the seed-level interval excludes 0.
"""

from __future__ import annotations

import csv
import io
import json
import statistics
from collections import defaultdict
from pathlib import Path

from alpharl_trainer.atomic import atomic_file
from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.reproduce.real import RealSuite, distinct
from alpharl_trainer.stats import paired, pooled, seed_interval

COLUMNS = (
    "run,task,loss,regime,seed,T,window,window_step,method,cost_steps,cost_step_equivalents,speedup,test_n,"
    "greedy,gain_share,diff_vs_truncated,diff_ci_low,diff_ci_high,p_mcnemar,sampled,logprob,off_task,choice,"
    "heldout,error"
).split(",")


def _mean(bits: list[int]) -> float:
    return sum(bits) / len(bits)


def _fmt(x: float | None, digits: int = 3, sign: bool = False) -> str:
    if x is None or x != x:
        return "-"
    return f"{x:+.{digits}f}" if sign else f"{x:.{digits}f}"


def _write(path: Path, text: str) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


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
        full = _mean(self.test(seed, f"full@{self.T}"))
        gain = full - _mean(self.base)
        return (_mean(bits) - _mean(self.base)) / gain if gain else float("nan")

    def compare(self, pairs: list[tuple[list[int], list[int]]]) -> dict:
        """b - a over seeds: the problem-level pooled interval and the seed-level t-interval."""
        problem = pooled(pairs)
        per_seed = [_mean(b) - _mean(a) for a, b in pairs]
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
        "cost_step_equivalents": _fmt(cost, 2),
        "speedup": _fmt(t.T / cost, 2) if cost else "",
        "test_n": len(bits),
        "greedy": _fmt(_mean(bits), 4),
        "gain_share": _fmt(t.share(seed, bits), 4),
        "diff_vs_truncated": _fmt(diff.diff, 4) if diff else "",
        "diff_ci_low": _fmt(diff.low, 4) if diff else "",
        "diff_ci_high": _fmt(diff.high, 4) if diff else "",
        "p_mcnemar": f"{diff.p_mcnemar:.3g}" if diff else "",
        "sampled": "",
        "logprob": "",
        "off_task": _fmt(_mean(score["off_task"]), 4),
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
                    heldout=_fmt(swap["scores"].get(chosen), 4),
                )  # fmt: skip
            )
    out = io.StringIO()
    writer = csv.DictWriter(out, COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def headline(t: Tables) -> list[str]:
    seeds = t.suite.seeds
    lines = [
        "| window | truncated | AlphaRL (product) | product - truncated | seed-level 95% | "
        "problem-level 95% | "
        "share of the full run's gain: truncated / product | product cost (steps + gate) | decisions |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for share, end in zip(t.suite.windows, t.suite.window_steps(), strict=True):
        trunc = [t.test(s, f"full@{end}") for s in seeds]
        prod = [t.test(s, f"product@{end}") for s in seeds]
        c = t.compare(list(zip(trunc, prod, strict=True)))
        costs = [t.cost(s, end) for s in seeds]
        shares_t = statistics.mean(t.share(s, b) for s, b in zip(seeds, trunc, strict=True))
        shares_p = statistics.mean(t.share(s, b) for s, b in zip(seeds, prod, strict=True))
        chosen = ", ".join(t.products[s, end]["summary"]["swap"]["chosen"] or "W_K" for s in seeds)
        lines.append(
            f"| {share:.0%} (step {end}) | {statistics.mean(map(_mean, trunc)):.3f} | "
            f"{statistics.mean(map(_mean, prod)):.3f} | {_fmt(c['diff'], sign=True)} ({c['verdict']}) | "
            f"[{_fmt(c['seed'][0], sign=True)}, {_fmt(c['seed'][1], sign=True)}] | "
            f"[{_fmt(c['problem'][0], sign=True)}, {_fmt(c['problem'][1], sign=True)}] | "
            f"{shares_t:.0%} / {shares_p:.0%} | {statistics.mean(costs):.1f} of {t.T} "
            f"({statistics.mean(costs) / t.T:.0%}) | {chosen} |"
        )
    full = [t.test(s, f"full@{t.T}") for s in seeds]
    lines.append(
        f"| full run (step {t.T}) | | {statistics.mean(map(_mean, full)):.3f} | | | | 100% | {t.T} | |"
    )
    return lines


def per_seed(t: Tables) -> list[str]:
    ends = t.suite.window_steps()
    head = " | ".join(f"trunc@{e} / product@{e} (decision)" for e in ends)
    lines = [f"| seed | base | {head} | full@{t.T} |", "|---|---|" + "---|" * len(ends) + "---|"]
    for s in t.suite.seeds:
        cells = []
        for e in ends:
            swap = t.products[s, e]["summary"]["swap"]
            cells.append(
                f"{_mean(t.test(s, f'full@{e}')):.3f} / {_mean(t.test(s, f'product@{e}')):.3f} "
                f"({swap['chosen'] or 'W_K'})"
            )
        lines.append(
            f"| {s} | {_mean(t.base):.3f} | {' | '.join(cells)} | {_mean(t.test(s, f'full@{t.T}')):.3f} |"
        )
    return lines


def categories(t: Tables, problems: list) -> list[str]:
    cats = sorted({p.category for p in problems})
    ends = t.suite.window_steps()
    names = ["base", *(f"full@{e}" for e in ends), *(f"product@{e}" for e in ends), f"full@{t.T}"]
    counts = " | ".join(f"{c} (n={sum(p.category == c for p in problems)})" for c in cats)
    lines = [f"| model | {counts} |", "|---|" + "---|" * len(cats)]
    for name in names:
        cells = []
        for c in cats:
            idx = [i for i, p in enumerate(problems) if p.category == c]
            bits = [t.base] if name == "base" else [t.test(s, name) for s in t.suite.seeds]
            cells.append(f"{statistics.mean(sum(b[i] for i in idx) / len(idx) for b in bits):.3f}")
        label = name.replace("full@", "truncated@") if name != f"full@{t.T}" else f"full run @{t.T}"
        lines.append(f"| {label} | {' | '.join(cells)} |")
    return lines


def costs(t: Tables) -> list[str]:
    """Where the time went, per seed: what `make real` costs and what a step costs on this machine."""
    lines = [
        "| seed | full run (T steps) | mean step | product runs, wall (load, window, swap) | swaps | "
        "scoring of this seed's models |",
        "|---|---|---|---|---|---|",
    ]
    for s in t.suite.seeds:
        ends = t.suite.window_steps()
        walls = ", ".join(f"{t.products[s, e]['seconds']:.0f}" for e in ends)
        swaps = ", ".join(f"{t.products[s, e]['summary']['swap']['seconds']:.0f}" for e in ends)
        scored = sum(v.get("seconds", 0.0) for k, v in t.scores.items() if k.startswith(f"s{s}/"))
        lines.append(
            f"| {s} | {t.runs[s]['seconds'] / 60:.1f} min | {t.step_seconds(s):.1f} s | {walls} s "
            f"(windows {', '.join(map(str, ends))}) | {swaps} s | {scored / 60:.1f} min |"
        )
    return lines


def off_task(t: Tables) -> list[str]:
    lines = [
        "| model | off-task accuracy (mean over seeds) | vs truncated, seed-level 95% |",
        "|---|---|---|",
    ]
    base = t.scores["base"]["off_task"]
    lines.append(f"| base | {_mean(base):.3f} | |")
    for e in t.suite.window_steps():
        trunc = [t.scores[f"s{s}/full@{e}"]["off_task"] for s in t.suite.seeds]
        prod = [t.scores[f"s{s}/product@{e}"]["off_task"] for s in t.suite.seeds]
        c = t.compare(list(zip(trunc, prod, strict=True)))
        lines.append(f"| truncated@{e} | {statistics.mean(map(_mean, trunc)):.3f} | |")
        lines.append(
            f"| product@{e} | {statistics.mean(map(_mean, prod)):.3f} | {_fmt(c['diff'], sign=True)} "
            f"[{_fmt(c['seed'][0], sign=True)}, {_fmt(c['seed'][1], sign=True)}] |"
        )
    full = [t.scores[f"s{s}/full@{t.T}"]["off_task"] for s in t.suite.seeds]
    lines.append(f"| full@{t.T} | {statistics.mean(map(_mean, full)):.3f} | |")
    return lines


def diagnostics_lines(t: Tables, analysis: dict) -> list[str]:
    seed, T = t.suite.diagnostics_seed, t.T
    steps = analysis["steps"]
    mats = analysis["matrices"].values()

    def med(values):
        values = [v for v in values if v is not None]
        return statistics.median(values) if values else float("nan")

    lines = [
        "| step | median energy share s1^2/‖dW‖_F^2 | median s1/‖dW‖_F | median s1/s2 | median ‖dW‖_F |",
        "|---|---|---|---|---|",
    ]
    for k, step in enumerate(steps):
        share = [m["rank1_share"][k] for m in mats]
        lines.append(
            f"| {step} | {med([s * s for s in share if s is not None]):.3f} | {med(share):.3f} | "
            f"{med([m['s1_over_s2'][k] for m in mats]):.2f} | {med([m['fro'][k] for m in mats]):.2e} |"
        )
    r2 = [m["r2_linear"] for m in mats]
    cos = [c for m in mats for c in m["u_cosine"]]
    lines += [
        "",
        f"Linearity of the rank-1 state `a_t = s1 u1` in the step over the {len(steps)} "
        "checkpoints: median R^2 "
        f"{med(r2):.3f} (mean {analysis['summary']['mean_r2_linear']:.3f}); stability of the top direction: "
        f"median |cos| of consecutive aligned u {med([abs(c) for c in cos]):.3f}.",
        "",
    ]
    full, base = t.test(seed, f"full@{T}"), t.base
    rows = [("full run", f"full@{T}"), ("rank-1 of every tracked matrix's update only", f"rank1-only@{T}"),
            ("random rank-1 of the same s1 per matrix (control)", f"random-rank1@{T}")]  # fmt: skip
    window = max(t.suite.window_steps())
    rows.append(
        (f"`alpharl predict` from the checkpoints up to step {window} to step {T}", f"predict@{window}->{T}")
    )
    lines += [
        f"| model (seed {seed}, step {T}) | test accuracy | share of the gain | vs full run, "
        "problem-level 95% |",
        "|---|---|---|---|",
        f"| base | {_mean(base):.3f} | 0% | |",
    ]
    for label, name in rows:
        bits = t.test(seed, name)
        d = paired(full, bits)
        lines.append(
            f"| {label} | {_mean(bits):.3f} | {t.share(seed, bits):.0%} | {_fmt(d.diff, sign=True)} "
            f"[{_fmt(d.low, sign=True)}, {_fmt(d.high, sign=True)}] |"
        )
    return lines


def plot_curve(t: Tables, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for i, s in enumerate(t.suite.seeds):
        color = f"C{i}"
        steps = [0, *t.suite.save_steps()]
        acc = [_mean(t.base)] + [_mean(t.test(s, f"full@{k}")) for k in t.suite.save_steps()]
        ax.plot(steps, acc, "-o", color=color, ms=3, label=f"full run, seed {s}")
        ends = t.suite.window_steps()
        ax.plot([t.cost(s, e) for e in ends], [_mean(t.test(s, f"product@{e}")) for e in ends], "*",
                color=color, ms=11, label=f"AlphaRL at cost (steps + gate), seed {s}")  # fmt: skip
    ax.set_xlabel("training steps (AlphaRL: at its cost in training-step equivalents)")
    ax.set_ylabel("greedy test accuracy")
    ax.set_title("SmolLM2-135M-Instruct, GRPO on chat arithmetic")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def write_report(
    suite: RealSuite, runs: dict, products: dict, scores: dict, checks: dict, analysis: dict, seconds: float
) -> None:
    from alpharl_trainer.tasks import get_task

    recipe = suite._recipe()
    t = Tables(suite, runs, products, scores)
    out = suite.out
    out.mkdir(parents=True, exist_ok=True)
    task = get_task(recipe["task"], mix=recipe.get("task_mix", "rl"))
    problems = distinct(task.problems("test", suite.test_problems, 0))
    wrong = [k for k, v in scores.items() if len(v["test"]) != len(problems)]
    if wrong:
        raise AlphaRLError(
            f"scores of {', '.join(wrong[:3])} are not on the suite's {len(problems)} test problems: "
            f"remove {suite.work_dir / 'scores'} to score them again"
        )
    outcomes = {
        "problems": [{"prompt": p.prompt, "answer": p.answer, "category": p.category} for p in problems],
        "test": {k: "".join(map(str, v["test"])) for k, v in scores.items()},
        "off_task": {k: "".join(map(str, v["off_task"])) for k, v in scores.items()},
    }
    _write(out / "outcomes.json", json.dumps(outcomes, indent=0) + "\n")
    _write(out / "results.csv", write_csv(t))
    plot_curve(t, out / "accuracy_vs_step.png")
    by_seed = defaultdict(list)
    for key, c in checks.items():
        by_seed[key.split("@")[0]].append(c)
    swaps = [products[k]["summary"]["swap"]["seconds"] for k in products]
    step_s = [t.step_seconds(s) for s in suite.seeds]
    md = [
        "# The product on a real pretrained model: SmolLM2-135M-Instruct, GRPO, CPU",
        "",
        "Written by `make real` (`alpharl reproduce-real`) in "
        f"{seconds / 60:.1f} min of wall "
        f"time for this invocation (cached runs are reused). Recipe `{suite.recipe}` (T = {t.T} "
        "steps), seeds "
        f"{list(suite.seeds)}, {len(t.base)} distinct test problems (test split), "
        f"{len(scores['base']['off_task'])}"
        " off-task word problems. Every model scored greedily, per problem.",
        "",
        "Intervals are 95%: **seed-level** is a t-interval over the per-seed mean differences (seeds are the "
        f"unit; with {len(suite.seeds)} seeds it is wide), **problem-level** a bootstrap over test problems "
        "stratified by seed (it ignores seed-to-seed variation). A cell is called better or worse "
        "only where the "
        "seed-level interval excludes 0. The truncated run is the full run's checkpoint at the "
        "window end (same "
        "seed, data and constant schedule). The product's cost counts its training steps plus the "
        "swap (forecast "
        f"and gate) in units of the full run's mean step ({statistics.mean(step_s):.1f} s; swaps took "
        f"{min(swaps):.0f}-{max(swaps):.0f} s).",
        "",
        "## AlphaRL (`alpharl train`) against the truncated and the full run",
        "",
        *headline(t),
        "",
        "## Per seed",
        "",
        *per_seed(t),
        "",
        "## Per category (mean over seeds)",
        "",
        *categories(t, problems),
        "",
        "## Off-task (word problems, never trained)",
        "",
        *off_task(t),
        "",
        "## The paper's diagnostics (from `alpharl analyze` on the full run's checkpoints)",
        "",
        *diagnostics_lines(t, analysis),
        "",
        "## Cost on this machine (2 cores)",
        "",
        *costs(t),
        "",
        "## Checks",
        "",
        "The product run trains the full run's weights until its window end: the gate's greedy "
        "score of W_K on its "
        "held-out prompts against the suite's score of the full run's checkpoint on the same prompts:",
        "",
        *[f"- {k}: gate {c['gate_current']:.4f}, suite {c['suite_heldout']:.4f}" for k, c in checks.items()],
        "",
    ]
    _write(out / "results.md", "\n".join(md))
