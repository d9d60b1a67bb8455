"""The real-model suite's report: `results.csv` (`real_table`), `results.md`, `outcomes.json` (every model's
per-problem outcomes, so every interval can be recomputed) and `accuracy_vs_step.png`, written into the
suite's `out`.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from pathlib import Path

from alpharl_trainer.atomic import atomic_file
from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.reproduce.real import RealSuite, distinct
from alpharl_trainer.reproduce.real_table import Tables, accuracy, fmt, write_csv
from alpharl_trainer.stats import paired


def _write(path: Path, text: str) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


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
            f"| {share:.0%} (step {end}) | {statistics.mean(map(accuracy, trunc)):.3f} | "
            f"{statistics.mean(map(accuracy, prod)):.3f} | {fmt(c['diff'], sign=True)} ({c['verdict']}) | "
            f"[{fmt(c['seed'][0], sign=True)}, {fmt(c['seed'][1], sign=True)}] | "
            f"[{fmt(c['problem'][0], sign=True)}, {fmt(c['problem'][1], sign=True)}] | "
            f"{shares_t:.0%} / {shares_p:.0%} | {statistics.mean(costs):.1f} of {t.T} "
            f"({statistics.mean(costs) / t.T:.0%}) | {chosen} |"
        )
    full = [t.test(s, f"full@{t.T}") for s in seeds]
    lines.append(
        f"| full run (step {t.T}) | | {statistics.mean(map(accuracy, full)):.3f} | | | | 100% | {t.T} | |"
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
                f"{accuracy(t.test(s, f'full@{e}')):.3f} / {accuracy(t.test(s, f'product@{e}')):.3f} "
                f"({swap['chosen'] or 'W_K'})"
            )
        full = accuracy(t.test(s, f"full@{t.T}"))
        lines.append(f"| {s} | {accuracy(t.base):.3f} | {' | '.join(cells)} | {full:.3f} |")
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
    lines.append(f"| base | {accuracy(base):.3f} | |")
    for e in t.suite.window_steps():
        trunc = [t.scores[f"s{s}/full@{e}"]["off_task"] for s in t.suite.seeds]
        prod = [t.scores[f"s{s}/product@{e}"]["off_task"] for s in t.suite.seeds]
        c = t.compare(list(zip(trunc, prod, strict=True)))
        lines.append(f"| truncated@{e} | {statistics.mean(map(accuracy, trunc)):.3f} | |")
        lines.append(
            f"| product@{e} | {statistics.mean(map(accuracy, prod)):.3f} | {fmt(c['diff'], sign=True)} "
            f"[{fmt(c['seed'][0], sign=True)}, {fmt(c['seed'][1], sign=True)}] |"
        )
    full = [t.scores[f"s{s}/full@{t.T}"]["off_task"] for s in t.suite.seeds]
    lines.append(f"| full@{t.T} | {statistics.mean(map(accuracy, full)):.3f} | |")
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
        f"| base | {accuracy(base):.3f} | 0% | |",
    ]
    for label, name in rows:
        bits = t.test(seed, name)
        d = paired(full, bits)
        lines.append(
            f"| {label} | {accuracy(bits):.3f} | {t.share(seed, bits):.0%} | {fmt(d.diff, sign=True)} "
            f"[{fmt(d.low, sign=True)}, {fmt(d.high, sign=True)}] |"
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
        acc = [accuracy(t.base)] + [accuracy(t.test(s, f"full@{k}")) for k in t.suite.save_steps()]
        ax.plot(steps, acc, "-o", color=color, ms=3, label=f"full run, seed {s}")
        ends = t.suite.window_steps()
        ax.plot([t.cost(s, e) for e in ends], [accuracy(t.test(s, f"product@{e}")) for e in ends], "*",
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
