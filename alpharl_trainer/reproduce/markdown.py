"""results.md: the suite's settings and methods, the targets against the measurements, the headline cells
over their seeds, each run's admission, and per run its cells, the product's gate decisions and the
diagnostics."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict

from alpharl_trainer import stats
from alpharl_trainer.reproduce.admission import pooled_admission
from alpharl_trainer.reproduce.config import Suite
from alpharl_trainer.reproduce.registry import METHODS
from alpharl_trainer.reproduce.table import find_row, flat_rows, gain_share
from alpharl_trainer.reproduce.verdicts import pooled_difference, targets
from alpharl_trainer.trainer.candidates import describe, short


def _fmt(x, pct: bool = False, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{100 * x:.0f}%" if pct else f"{x:.{digits}f}"


def _ci(d: stats.Paired | None) -> str:
    """A paired difference as `+0.040 [+0.010, +0.070] better` (the verdict only where the interval
    excludes 0), or "-" when there is none."""
    if d is None:
        return "-"
    verdict = "" if d.verdict == "tie" else f" {d.verdict}"
    return f"{d.diff:+.3f} [{d.low:+.3f}, {d.high:+.3f}]{verdict}"


def _targets_section(results: list[dict], by_run: dict[str, list[dict]]) -> list[str]:
    lines = [
        "## Targets vs measurements",
        "",
        "Share = (acc - acc_base) / (acc_full - acc_base), greedy test accuracy; best of default / "
        "default+ft / default+jumps within the step budget. Differences are paired over the test problems: "
        "mean [95% bootstrap interval], `better`/`worse` only where the interval excludes 0. `gain` is the "
        "full run (mean of its last 3 checkpoints) minus the base.",
        "",
        "| run | gain (paired SE) | >=96% at <=40% | >=98% at <=25% "
        "| default - truncated (worst window) | off-task: default - truncated (min) "
        "| default - best baseline, equal budget (worst) |",
        "|---|---|---|---|---|---|---|",
    ]
    for res in results:
        t = targets(res, by_run[res["run"]])
        adm = res["admission"]
        gain, measurable = adm["gain"], adm["gain_in_se"] >= 2
        cells = []
        for key, goal in (("at40", 0.96), ("at25", 0.98)):
            row = t[key]
            if not measurable:
                cells.append("n/a: no measurable gain to share")
            elif row is None:
                cells.append("-")
            else:
                share = gain_share(row["greedy"], res)
                verdict = "MET" if share >= goal else "missed"
                cells.append(f"{_fmt(share, pct=True)} ({row['method']}, {row['cost']} steps) {verdict}")
        worst = min(t["vs_baselines"], key=lambda x: x[1].diff, default=None)
        against = "-" if worst is None else f"{_ci(worst[1])} (vs {worst[2]} at {worst[0]} steps)"
        lines.append(
            f"| {res['run']} | {gain:+.3f} ({adm['gain_in_se']:.0f}) | {cells[0]} | {cells[1]} | "
            f"{_ci(t['worst_vs_truncated'])} | {t['min_off_task_vs_truncated']:+.3f} | {against} |"
        )
    return lines


def _headline_section(results: list[dict]) -> list[str]:
    groups = defaultdict(list)
    for res in results:
        if res["headline"]:
            groups[(res["task"], res["loss"], res["regime"])].append(res)
    lines = []
    for (task, loss, regime), group in groups.items():
        seeds = [r["seed"] for r in group]
        lines += [
            f"## Headline: {task} / {loss} / {regime}, seeds {seeds}",
            "",
            "Greedy test accuracy (share of the full run's gain); ± is the standard deviation over seeds.",
            "",
            f"Base {_mean_sd([r['base']['greedy'] for r in group])}, full run "
            f"{_mean_sd([r['base']['greedy'] + r['admission']['gain'] for r in group])} (greedy test "
            "accuracy; the mean of its last 3 checkpoints).",
            "",
            "| method | " + " | ".join(f"w={w:.0%}" for w in _windows(group[0])) + " |",
            "|---|" + "---|" * len(_windows(group[0])),
        ]
        for method in METHODS:
            cells = []
            for end in sorted({r["window_step"] for r in group[0]["rows"]}):
                accs, shares = [], []
                for res in group:
                    row = find_row(res["rows"], end, method)
                    if row and "greedy" in row:
                        accs.append(row["greedy"])
                        shares.append(gain_share(row["greedy"], res))
                shares = [s for s in shares if s is not None]
                cells.append(f"{_mean_sd(accs)} ({_mean_sd(shares, pct=True)})" if accs else "-")
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        lines += ["", *_pooled_table(group)]
    return lines


def _pooled_table(group: list[dict]) -> list[str]:
    """Each method's paired difference to the truncated run at the same cost, pooled over the seeds: the mean
    of the per-seed differences with a 95% stratified bootstrap interval (problems resampled per seed)."""
    if not all("per_problem" in res for res in group):
        return []
    ends = sorted({r["window_step"] for r in group[0]["rows"]})
    lines = [
        "Paired difference to the truncated run at the same cost, pooled over seeds: mean [95% stratified "
        "bootstrap interval]; better/worse only where the interval excludes 0.",
        "",
        "| method | " + " | ".join(f"w={w:.0%}" for w in _windows(group[0])) + " |",
        "|---|" + "---|" * len(ends),
    ]
    for method in METHODS:
        cells = [_ci(pooled_difference(group, method, end)) for end in ends]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _windows(res: dict) -> list[float]:
    return [w / res["steps"] for w in sorted({r["window_step"] for r in res["rows"]})]


def _mean_sd(values: list[float], pct: bool = False) -> str:
    if not values:
        return "-"
    mean = statistics.fmean(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * mean:.0f}±{100 * sd:.0f}%" if pct else f"{mean:.3f}±{sd:.3f}"


def _run_section(res: dict, rows: list[dict]) -> list[str]:
    ends = sorted({r["window_step"] for r in rows})
    lines = [
        f"### {res['run']}",
        "",
        f"Base {res['base']['greedy']:.3f} (avg@n {res['base']['sampled']:.3f}, off-task "
        f"{res['base']['off_task']:.3f}); full run ({res['steps']} steps) {res['full']['greedy']:.3f} (avg@n "
        f"{res['full']['sampled']:.3f}, off-task {res['full']['off_task']:.3f}). Cell: greedy test accuracy, "
        "its paired difference to the truncated run at the same cost [95% bootstrap interval], off-task "
        "accuracy, [choice]; avg@n in results.csv.",
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
                diff = (
                    f"{row['diff_vs_truncated']:+.3f} [{row['diff_ci_low']:+.3f}, {row['diff_ci_high']:+.3f}]"
                    if "diff_vs_truncated" in row
                    else "-"
                )
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


def render_markdown(suite: Suite, results: list[dict], seconds: float) -> str:
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
        f"budget {suite.budget_minutes:g} min; CPU, {suite.threads} torch threads. "
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
        f"same with y* chosen among {', '.join(f'{y:g}' for y in suite.methods.paper_targets)}, written "
        "`rank1_replace`; `step_linear` straight line in the step to T, W_K + (a_hat - a_K) v^T (no choice); "
        "`expo` W_K + a (W_K - W_0), a chosen (grid incl. T/w - 1); `relex` rank-1 in time of the flattened "
        "whole-model deltas, extrapolated linearly to the product's candidate steps; `best_recent` the best "
        f"of the window's last {suite.methods.recent_k} checkpoints; `first_update` W_0 + c (W_1 - W_0) "
        f"(costs 1 step); `lawa` mean of the last {suite.methods.lawa_k} window checkpoints; `default` "
        f"{_product_methods(suite)} `oracle_rank1` (diagnostic) W_K + ((W_T - W_K) v_K) v_K^T.",
        "",
        *_targets_section(results, by_run),
        "",
        *_headline_section(results),
        *_admission_section(results),
        "## Per run",
        "",
    ]
    for res in results:
        lines += _run_section(res, by_run[res["run"]])
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
