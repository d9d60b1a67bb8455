"""results.md: the suite's settings and methods, what every interval is, the targets against the
measurements, the headline cells over their seeds and the comparisons named in advance, the scores per
test-problem category (`categories`, descriptive), each run's admission, and per run its cells, the
product's gate decisions and the diagnostics. Every interval printed is recorded in an `Evidence` ledger
(`comparisons`), so that it can be recomputed from the kept outcomes."""

from __future__ import annotations

import math
from collections import defaultdict

from alpharl_trainer.reproduce.admission import pooled_admission
from alpharl_trainer.reproduce.categories import category_section
from alpharl_trainer.reproduce.comparisons import Evidence, problem_text
from alpharl_trainer.reproduce.config import Suite
from alpharl_trainer.reproduce.headline import headline_comparisons, headline_section
from alpharl_trainer.reproduce.registry import METHODS, reference_of
from alpharl_trainer.reproduce.table import find_row, flat_rows, gain_share
from alpharl_trainer.reproduce.verdicts import targets
from alpharl_trainer.trainer.candidates import describe, short


def _fmt(x, pct: bool = False, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{100 * x:.0f}%" if pct else f"{x:.{digits}f}"


INTERVALS = (
    "What the numbers are. Every difference is paired: the same test problems scored by both models, the "
    "mean of the per-problem differences of greedy correctness. `[a, b]` in a run's own cells (the targets "
    "table, the per-run sections) is a 95% percentile bootstrap over the test problems: conditional on that "
    "run's seed (the trained weights), blind to seed-to-seed variation, and printed without a verdict. Over "
    "several seeds of a cell, the first `[a, b]` is seed-level (a 95% t-interval over the per-seed mean "
    "differences, seeds the unit: what new seeds would do on these same test problems) and "
    "the one in parentheses problem-level (bootstrap over the shared test "
    "problems, one common resample for every seed, seeds fixed). `better`/`worse` appear only where a "
    "seed-level interval excludes 0, and the claims are the headline comparisons, Holm-adjusted. `±` is the "
    "standard deviation over seeds. All bootstraps: 2,000 resamples, seed 0; outcomes.npz keeps every "
    "outcome they use (`scripts/recompute_intervals.py` recomputes each interval from it)."
)


def _targets_section(
    results: list[dict], by_run: dict[str, list[dict]], ev: Evidence | None = None
) -> list[str]:
    ev = ev or Evidence()
    lines = [
        "## Targets vs measurements",
        "",
        "Share = (acc - acc_base) / (acc_full - acc_base), greedy test accuracy; best of default / "
        "default+ft / default+jumps within the budget: of RL steps, or of compute (training-step "
        "equivalents, the gate included: `reproduce.compute`). Differences are one run's, paired over the "
        "test problems: mean [95% bootstrap interval over problems], conditional on the run's seed and "
        "descriptive (no verdict). `gain` is the full run (mean of its last 3 checkpoints) minus the base; "
        "the best baseline here is the best on test (a description, not a choice).",
        "",
        "| run | gain (paired SE) | >=96% at <=40% of the steps | >=98% at <=25% of the steps "
        "| >=96% at <=40% of the compute | >=98% at <=25% of the compute "
        "| default - truncated (worst window) | off-task: ours - truncated (min) "
        "| default - best baseline, equal budget (worst) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for res in results:
        t = targets(res, by_run[res["run"]])
        adm = res["admission"]
        gain, measurable = adm["gain"], adm["gain_in_se"] >= 2
        cells = []
        for key, goal in (("at40", 0.96), ("at25", 0.98), ("at40_compute", 0.96), ("at25_compute", 0.98)):
            row = t[key]
            if not measurable:
                cells.append("n/a: no measurable gain to share")
            elif row is None:
                cells.append("-")
            else:
                share = gain_share(row["greedy"], res)
                verdict = "MET" if share >= goal else "missed"
                by_compute = f", {row['compute']:.0f} by compute" if "compute" in row else ""
                spent = f"{row['cost']} steps{by_compute}"
                cells.append(f"{_fmt(share, pct=True)} ({row['method']}, {spent}) {verdict}")
        worst = min(t["vs_baselines"], key=lambda x: x[1].diff, default=None)
        against = "-" if worst is None else f"{ev.problem(worst[1])} (vs {worst[2]} at {worst[0]} steps)"
        lines.append(
            f"| {res['run']} | {gain:+.3f} ({adm['gain_in_se']:.0f}) | {' | '.join(cells)} | "
            f"{ev.problem(t['worst_vs_truncated'])} | {t['min_off_task_vs_truncated']:+.3f} | {against} |"
        )
    return lines


def _run_section(res: dict, rows: list[dict], ev: Evidence) -> list[str]:
    ends = sorted({r["window_step"] for r in rows})
    lines = [
        f"### {res['run']}",
        "",
        f"Base {res['base']['greedy']:.3f} (avg@n {res['base']['sampled']:.3f}, off-task "
        f"{res['base']['off_task']:.3f}); full run ({res['steps']} steps) {res['full']['greedy']:.3f} (avg@n "
        f"{res['full']['sampled']:.3f}, off-task {res['full']['off_task']:.3f}). Cell: greedy test accuracy, "
        "its paired difference to the truncated run at the same cost [95% bootstrap interval over problems: "
        "conditional on this run's seed, descriptive], off-task accuracy, [choice]; avg@n in results.csv.",
        "",
        "| method | " + " | ".join(f"w={e} ({e / res['steps']:.0%})" for e in ends) + " |",
        "|---|" + "---|" * len(ends),
    ]
    for method in METHODS:
        cells = []
        for end in ends:
            row = find_row(rows, end, method)
            if row is None:
                cells.append("-")
            elif "error" in row and "greedy" not in row:
                cells.append("failed")
            else:
                choice = f" [{row['choice']}]" if row.get("choice") else ""
                cost = f" @{row['cost']}" if row["cost"] != end else ""
                diff = "-"
                if "diff_vs_truncated" in row:
                    text = problem_text(row["diff_vs_truncated"], row["diff_ci_low"], row["diff_ci_high"])
                    reference = f"{reference_of(method)}@{end}"
                    diff = ev.record("problem", [res["run"]], reference, f"{method}@{end}", text)
                cells.append(f"{row['greedy']:.3f}{cost} {diff} / {row['off_task']:.3f}{choice}")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    lines += ["", *_decisions(res)]
    lines += [
        "",
        "Diagnostics (held-out accuracy; scan from W_K along the forecast to T / the true update "
        "to W_T, peak scale):",
        "",
    ]
    for end in ends:
        scan = {
            d: [s for s in res["scans"] if s["window_step"] == end and s["direction"] == d]
            for d in ("forecast", "true")
        }
        peaks = {d: max(pts, key=lambda s: s["heldout"]) for d, pts in scan.items() if pts}
        text = "; ".join(f"{d} peak {p['heldout']:.3f} at s={p['scale']:g}" for d, p in peaks.items())
        r2 = res["r2"]["values"][res["r2"]["windows"].index(end)]
        lines.append(f"- w={end}: {text}; mean R^2 of the step-linear fit {sum(r2) / len(r2):.2f}")
    lines.append("")
    return lines


def _decisions(res: dict) -> list[str]:
    """What the product run's gate saw and did at each window end."""
    lines = [
        "The product run's gate (`alpharl train`, greedy on the held-out problems): W_K's held-out score as "
        "the gate measured it (the recipe's mean reward) and as the suite did on the full run's checkpoint "
        "(accuracy; equal when the reward is the task's alone: one training run), the best candidate, its "
        "margin over W_K in paired SE, the decision, and the swap's cost (forecast and gate) in training "
        "steps: by tokens, by forward passes (a trained token ~4), by time against the run's mean step.",
        "",
        "| window | W_K (gate / suite) | best candidate | over W_K / paired SE | decision | swap cost "
        "(steps: tokens / FLOPs / time) | run time |",
        "|---|---|---|---|---|---|---|",
    ]
    for d in res.get("decisions", []):
        scores = {k: v for k, v in d["scores"].items() if k != "current"}
        if not scores:
            continue
        key = max(scores, key=scores.get)
        se = d["paired_se"].get(key) or math.nan
        over = scores[key] - d["gate_current"]
        chosen = d["chosen"]
        decision = "kept W_K" if chosen is None else f"swapped in {describe(chosen)}"
        note = "" if d.get("gate_reward_is_accuracy", True) else " (reward, not accuracy)"
        cost = d.get("cost") or {}
        units = ("steps_by_tokens", "steps_by_flops", "steps_by_seconds")
        steps = " / ".join("-" if cost.get(k) is None else f"{cost[k]:.1f}" for k in units)
        lines.append(
            f"| {d['window_step']} | {d['gate_current']:.3f} / {d['suite_current']:.3f}{note} | "
            f"{short(key)}: "
            f"{scores[key]:.3f} | {over:+.3f} / {over / se if se > 0 else math.nan:.1f} | {decision} | "
            f"{steps if cost else '-'} | {d['seconds']:.0f}s |"
        )
    return [*lines, ""]


def _product_methods(suite: Suite) -> str:
    """What the `default*` rows are, for the report's methods paragraph."""
    methods = suite.methods
    text = (
        "`alpharl train` on the suite's recipe with AlphaRL on (a subprocess: its callback snapshots in-run; "
        f"at the window end its gate scores the portfolio {', '.join(methods.candidates)}, forecasting to "
        f"{', '.join(f'{h:g}' for h in methods.horizons)} x w, and swaps in the best or keeps W_K); "
        "`default+ft` the same run after its fine-tune steps; `truncated@ft` the full run at that budget;"
    )
    if methods.jumps > 1:
        text += (
            f" `default+jumps` the product with {methods.jumps} gated jumps, one every w steps, each fitted "
            "on the snapshots since the previous one, stopped at the last; `truncated@jumps` the full run "
            "there;"
        )
    return text


def render_markdown(suite: Suite, results: list[dict], seconds: float, ev: Evidence | None = None) -> str:
    """results.md's text; `ev` (filled) records every interval it prints."""
    ev = ev or Evidence()
    by_run = defaultdict(list)
    for row in flat_rows(results):
        by_run[row["run"]].append(row)
    spec = suite.eval
    compute = sum(sum(res["timings"].values()) for res in results)
    lines = [
        f"# alpharl reproduce: suite `{suite.name}`",
        "",
        f"Time: {compute / 60:.1f} min summed over the runs (full runs + product runs + evaluation), "
        f"{seconds / 60:.1f} min wall for the invocation that wrote this report (finished runs are reused); "
        f"budget {suite.budget_minutes:g} min; CPU, {suite.threads} torch thread(s) per process. "
        f"T = {suite.steps} RL steps per run, windows "
        f"{', '.join(f'{w:.0%}' for w in suite.windows)}, fine-tune {suite.finetune_steps} steps. "
        f"Test: {spec.test_problems} problems greedy (teacher-forced exact match), {spec.sampled_problems} x "
        f"{spec.samples} samples at T={spec.temperature:g} (avg@{spec.samples}); held-out: "
        f"{spec.heldout_problems} problems (every choice, the product's gate included); off-task: "
        f"{spec.off_task_problems} problems of the other task.",
        "",
        "Every choice below is made on held-out problems by the gate's rule: the best candidate replaces W_K "
        f"only if it beats W_K by more than {suite.methods.margin_se:g} paired SE (else W_K is kept). "
        "Methods (same window, same evaluation): `truncated` W_K; `alpharl_paper` PLS of s1 u1 on the "
        f"mean training reward, target y* = {suite.methods.paper_target:g} (the paper's text), written "
        f"`{suite.methods.paper_mode}` (W_K + x_hat v^T, its current scripts); `alpharl_paper_tuned` the "
        f"same with y* chosen among {', '.join(f'{y:g}' for y in suite.methods.paper_targets)} and, inside "
        "the run's own reward range, r_K + f (1 - r_K) for f in "
        f"{', '.join(f'{f:g}' for f in suite.methods.paper_target_fractions)} (r_K the window end's mean "
        "training reward), written `rank1_replace`; `step_linear` straight line in the step to T, "
        "W_K + (a_hat - a_K) v^T (no choice); `expo` W_K + a (W_K - W_0) on every parameter, a chosen (grid "
        "incl. T/w - 1); `expo_matrices` the same on the product's tracked matrices only (what its `expo` "
        "candidate moves; LAWA and RELEX move every parameter); `relex` rank-1 in time of the flattened "
        "whole-model deltas, extrapolated linearly to the product's candidate steps; `best_recent` the best "
        f"of the window's last {suite.methods.recent_k} checkpoints; `first_update` W_0 + c (W_1 - W_0) "
        f"(costs 1 step); `lawa` mean of the last {suite.methods.lawa_k} window checkpoints; `default` "
        f"{_product_methods(suite)} `oracle_rank1` (diagnostic) W_K + ((W_T - W_K) v_K) v_K^T.",
        "",
        INTERVALS,
        "",
        *_targets_section(results, by_run, ev),
        "",
        *headline_section(results, ev),
        *headline_comparisons(results, ev),
        *category_section(results, ev),
        *_admission_section(results),
        "## Per run",
        "",
    ]
    for res in results:
        lines += _run_section(res, by_run[res["run"]], ev)
    lines += ["## Timings (s)", "", "| run | full run | product runs | evaluation |", "|---|---|---|---|"]
    for res in results:
        t = res["timings"]
        lines.append(f"| {res['run']} | {t['train']:.0f} | {t['product']:.0f} | {t['evaluate']:.0f} |")
    lines += [
        "",
        "Plots: accuracy_vs_step.png, paired_differences.png, r2_heatmap.png, rank1_share.png, scans.png.",
        "",
    ]
    return "\n".join(lines)


def _admission_section(results: list[dict]) -> list[str]:
    """Whether each run's regime could be a headline: it must keep climbing (reproduction v2's rule)."""
    lines = [
        "## Admission of each run's regime as a headline",
        "",
        "Rule: full-run gain >= 10 paired SE of the test split, the truncated run at 40% of T holding "
        "0.6-0.9 of it, the last 20% of T adding >= 10% of it (full run = mean of its last 3 checkpoints). "
        "A regime run with several seeds is also judged pooled (mean gain over its SE, mean shares).",
        "",
        "| run | gain | in paired SE | held at 40% of T | added by the last 20% | admitted |",
        "|---|---|---|---|---|---|",
    ]
    cells = defaultdict(list)
    for res in results:
        a = res.get("admission")
        if a:
            cells[(res["task"], res["loss"], res["regime"])].append(a)
            lines.append(
                f"| {res['run']} | {a['gain']:+.3f} | {a['gain_in_se']:.1f} | {a['held_at_40']:.3f} | "
                f"{a['added_by_last_20']:.3f} | {'yes' if a['admitted'] else 'no'} |"
            )
    for (task, loss, regime), group in cells.items():
        if len(group) > 1:
            a = pooled_admission(group)
            lines.append(
                f"| **{task}-{loss}-{regime}, {len(group)} seeds pooled** | {a.gain:+.3f} | "
                f"{a.gain_in_se:.1f} | {a.held_at_40:.3f} | {a.added_by_last_20:.3f} | "
                f"{'yes' if a.admitted else 'no'} |"
            )
    return [*lines, ""]
