"""results.csv, results.md and the plots of a finished suite, written into one folder atomically.

Measured numbers sit next to the targets of the issue they answer:
- >= 96% of the full run's gain at <= 40% of the steps, >= 98% at <= 25% (best of default / default+ft
  within that budget);
- default never below the truncated run on the test split (and no collapse on the off-task split);
- default >= every baseline at equal step budget.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from collections import defaultdict
from pathlib import Path

from alpharl_trainer.checkpoints import atomic_output_dir
from alpharl_trainer.reproduce import plots, stats
from alpharl_trainer.reproduce.config import Suite

METHODS = (
    "truncated",
    "alpharl_paper",
    "alpharl_paper_tuned",
    "step_linear",
    "expo",
    "relex",
    "best_recent",
    "first_update",
    "lawa",
    "default",
    "default+ft",
    "truncated@ft",
    "oracle_rank1",
)
BASELINES = ("alpharl_paper", "alpharl_paper_tuned", "step_linear", "expo", "relex", "best_recent", "lawa")
"""Baselines that spend exactly the window's steps (first_update spends 1; it is reported, not compared)."""
COLUMNS = (
    "run",
    "task",
    "loss",
    "regime",
    "seed",
    "window",
    "window_step",
    "method",
    "cost",
    "speedup",
    "greedy",
    "gain_share",
    "diff_vs_truncated",
    "diff_ci_low",
    "diff_ci_high",
    "p_mcnemar",
    "sampled",
    "logprob",
    "off_task",
    "choice",
    "heldout",
    "error",
)


def gain_share(acc: float | None, res: dict) -> float | None:
    """(acc - acc_base) / (acc_full - acc_base) on greedy test accuracy; None without a gain to share."""
    gain = res["full"]["greedy"] - res["base"]["greedy"]
    if acc is None or gain == 0:
        return None
    return (acc - res["base"]["greedy"]) / gain


def flat_rows(results: list[dict]) -> list[dict]:
    out = []
    for res in results:
        for row in res["rows"]:
            out.append(
                {
                    **{k: res[k] for k in ("run", "task", "loss", "regime", "seed")},
                    **row,
                    "window": row["window_step"] / res["steps"],
                    "speedup": res["steps"] / row["cost"],
                    "gain_share": gain_share(row.get("greedy"), res),
                }
            )
    return out


def _get(rows: list[dict], window_step: int, method: str) -> dict | None:
    return next((r for r in rows if r["window_step"] == window_step and r["method"] == method), None)


def _fmt(x, pct: bool = False, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{100 * x:.0f}%" if pct else f"{x:.{digits}f}"


def standard_error(res: dict) -> float:
    """Binomial SE of a test accuracy near the run's accuracies (paired differences are smaller)."""
    p = (res["base"]["greedy"] + res["full"]["greedy"]) / 2
    n = max(1, res["test_problems"])
    return math.sqrt(max(p * (1 - p), 1e-9) / n)


def targets(res: dict, rows: list[dict]) -> dict:
    """The issue's targets for one run, measured."""
    steps = res["steps"]
    ours = [r for r in rows if r["method"] in ("default", "default+ft") and r.get("greedy") is not None]

    def best_within(fraction: float) -> dict | None:
        eligible = [r for r in ours if r["cost"] <= fraction * steps + 1e-9]
        return max(eligible, key=lambda r: r["greedy"], default=None)

    vs_truncated, vs_off, vs_baselines = [], [], []
    for end in sorted({r["window_step"] for r in rows}):
        default, truncated = _get(rows, end, "default"), _get(rows, end, "truncated")
        vs_truncated.append(default["greedy"] - truncated["greedy"])
        vs_off.append(default["off_task"] - truncated["off_task"])
        others = [_get(rows, end, m) for m in BASELINES]
        best = max((o for o in others if o and "greedy" in o), key=lambda o: o["greedy"])
        vs_baselines.append((end, default["greedy"] - best["greedy"], best["method"]))
        ft, tft = _get(rows, end, "default+ft"), _get(rows, end, "truncated@ft")
        if ft and tft:
            vs_baselines.append((end + res["finetune_steps"], ft["greedy"] - tft["greedy"], "truncated@ft"))
    return {
        "at40": best_within(0.4),
        "at25": best_within(0.25),
        "min_vs_truncated": min(vs_truncated),
        "min_off_task_vs_truncated": min(vs_off),
        "vs_baselines": vs_baselines,
    }


def _targets_section(results: list[dict], by_run: dict[str, list[dict]]) -> list[str]:
    lines = [
        "## Targets vs measurements",
        "",
        "Share = (acc - acc_base) / (acc_full - acc_base), greedy test accuracy. `SE` is the binomial "
        "standard error of one accuracy; differences within ~2 SE are noise. Best of default / default+ft "
        "within the step budget.",
        "",
        "| run | gain full-base | SE | >=96% at <=40% | >=98% at <=25% "
        "| default - truncated (min over windows) | off-task: default - truncated (min) "
        "| default - best baseline, equal budget (min) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for res in results:
        t = targets(res, by_run[res["run"]])
        gain, se = res["full"]["greedy"] - res["base"]["greedy"], standard_error(res)
        cells = []
        for key, goal in (("at40", 0.96), ("at25", 0.98)):
            row = t[key]
            if gain <= 2 * se:
                cells.append("n/a: no measurable gain to share")
            elif row is None:
                cells.append("-")
            else:
                share = gain_share(row["greedy"], res)
                verdict = "MET" if share >= goal else "missed"
                cells.append(f"{_fmt(share, pct=True)} ({row['method']}, {row['cost']} steps) {verdict}")
        worst = min(t["vs_baselines"], key=lambda x: x[1])
        lines.append(
            f"| {res['run']} | {gain:+.3f} | {se:.3f} | {cells[0]} | {cells[1]} | "
            f"{t['min_vs_truncated']:+.3f} {_verdict(t['min_vs_truncated'], se)} | "
            f"{t['min_off_task_vs_truncated']:+.3f} | {worst[1]:+.3f} (vs {worst[2]} at {worst[0]} steps) "
            f"{_verdict(worst[1], se)} |"
        )
    return lines


def _verdict(margin: float, se: float) -> str:
    """MET when the margin is >= 0; a shortfall within 2 SE is flagged as such (it may be noise)."""
    if margin >= 0:
        return "MET"
    return "missed (within 2 SE)" if margin > -2 * se else "missed"


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
            f"{_mean_sd([r['full']['greedy'] for r in group])} (greedy test accuracy).",
            "",
            "| method | " + " | ".join(f"w={w:.0%}" for w in _windows(group[0])) + " |",
            "|---|" + "---|" * len(_windows(group[0])),
        ]
        for method in METHODS:
            cells = []
            for end in sorted({r["window_step"] for r in group[0]["rows"]}):
                accs, shares = [], []
                for res in group:
                    row = _get(res["rows"], end, method)
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
        reference = "truncated@ft" if method in ("default+ft", "truncated@ft") else "truncated"
        cells = []
        for end in ends:
            pairs = [
                (res["per_problem"][f"{reference}@{end}"], res["per_problem"][f"{method}@{end}"])
                for res in group
                if f"{method}@{end}" in res["per_problem"] and f"{reference}@{end}" in res["per_problem"]
            ]
            if len(pairs) != len(group):
                cells.append("-")
                continue
            d = stats.pooled(pairs, resamples=2000)
            cells.append(
                f"{d.diff:+.3f} [{d.low:+.3f}, {d.high:+.3f}]"
                + ("" if d.verdict == "tie" else f" {d.verdict}")
            )
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
        f"{res['full']['sampled']:.3f}, off-task {res['full']['off_task']:.3f}). Cell: greedy (share) / "
        "avg@n / off-task [choice].",
        "",
        "| method | " + " | ".join(f"w={e} ({e / res['steps']:.0%})" for e in ends) + " |",
        "|---|" + "---|" * len(ends),
    ]
    for method in METHODS:
        cells = []
        for end in ends:
            row = _get(rows, end, method)
            if row is None:
                cells.append("-")
            elif "error" in row and "greedy" not in row:
                cells.append("failed")
            else:
                choice = f" [{row['choice']}]" if row.get("choice") else ""
                cost = f" @{row['cost']}" if row["cost"] != end else ""
                cells.append(
                    f"{row['greedy']:.3f} ({_fmt(row['gain_share'], pct=True)}) / {row['sampled']:.3f} / "
                    f"{row['off_task']:.3f}{cost}{choice}"
                )
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
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


def render_markdown(suite: Suite, results: list[dict], seconds: float) -> str:
    by_run = defaultdict(list)
    for row in flat_rows(results):
        by_run[row["run"]].append(row)
    spec = suite.eval
    compute = sum(sum(res["timings"].values()) for res in results)
    lines = [
        f"# alpharl reproduce: suite `{suite.name}`",
        "",
        f"Time: {compute / 60:.1f} min summed over the runs (training + fine-tunes + evaluation), "
        f"{seconds / 60:.1f} min wall for the invocation that wrote this report (finished runs are reused); "
        f"budget {suite.budget_minutes:g} min; CPU, {suite.threads} torch threads, shared 2-core machine. "
        f"T = {suite.steps} RL steps per run, windows "
        f"{', '.join(f'{w:.0%}' for w in suite.windows)}, fine-tune {suite.finetune_steps} steps. "
        f"Test: {spec.test_problems} problems greedy (teacher-forced exact match), {spec.sampled_problems} x "
        f"{spec.samples} samples at T={spec.temperature:g} (avg@{spec.samples}); held-out: "
        f"{spec.heldout_problems} problems (every choice); off-task: {spec.off_task_problems} problems of "
        "the other task.",
        "",
        "Methods (same window, same evaluation): `truncated` W_K; `alpharl_paper` PLS of s1 u1 on the "
        f"mean training reward, target y* = {suite.methods.paper_target:g} (the paper's text), written "
        f"`{suite.methods.paper_mode}` (W_K + x_hat v^T, its current scripts); `step_linear` straight line "
        "in the step to T, W_K + (a_hat - a_K) v^T (RELEX-style, no choice); `expo` W_K + a (W_K - W_0), "
        "a on held-out (grid incl. T/w - 1); `first_update` W_0 + c (W_1 - W_0), c on held-out "
        "(costs 1 step); "
        f"`lawa` mean of the last {suite.methods.lawa_k} window checkpoints; `default` step-linear forecast "
        f"to a horizon chosen on held-out among {', '.join(f'{h:g}' for h in suite.methods.horizons)} x w, "
        "rollback when none beats W_K; `default+ft` resumes the window-end trainer state (Adam, RNG, data) "
        "with the default's weights and trains the fine-tune steps (the in-run callback's path); "
        "`truncated@ft` the full run at the same budget; `oracle_rank1` (diagnostic) W_K + ((W_T - W_K) v_K) "
        "v_K^T.",
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
    lines += ["## Timings (s)", "", "| run | train | fine-tunes | evaluation |", "|---|---|---|---|"]
    for res in results:
        t = res["timings"]
        lines.append(f"| {res['run']} | {t['train']:.0f} | {t['finetune']:.0f} | {t['evaluate']:.0f} |")
    lines += ["", "Plots: accuracy_vs_step.png, r2_heatmap.png, rank1_share.png, scans.png.", ""]
    return "\n".join(lines)


def _admission_section(results: list[dict]) -> list[str]:
    """Whether each run's regime could be a headline: it must keep climbing (reproduction v2's rule)."""
    lines = [
        "## Admission of each run's regime as a headline",
        "",
        "Rule: full-run gain >= 10 paired SE of the test split, the truncated run at 40% of T holding "
        "0.6-0.9 of it, the last 20% of T adding >= 10% of it (full run = mean of its last 3 checkpoints).",
        "",
        "| run | gain | in paired SE | held at 40% of T | added by the last 20% | admitted |",
        "|---|---|---|---|---|---|",
    ]
    for res in results:
        a = res.get("admission")
        if a:
            lines.append(
                f"| {res['run']} | {a['gain']:+.3f} | {a['gain_in_se']:.1f} | {a['held_at_40']:.2f} | "
                f"{a['added_by_last_20']:.2f} | {'yes' if a['admitted'] else 'no'} |"
            )
    return [*lines, ""]


def render_csv(results: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in flat_rows(results):
        writer.writerow({k: (f"{v:.5g}" if isinstance(v, float) else v) for k, v in row.items()})
    return buffer.getvalue()


def write_report(suite: Suite, results: list[dict], seconds: float, out: Path) -> Path:
    """results.md, results.csv and the PNGs into `out` (replaced as a whole, never half-written)."""
    with atomic_output_dir(out, overwrite=True) as tmp:
        (tmp / "results.md").write_text(render_markdown(suite, results, seconds))
        (tmp / "results.csv").write_text(render_csv(results))
        plots.write_all(results, tmp)
    return out
