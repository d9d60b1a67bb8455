"""results.md's headline sections: per headline cell (task, loss, regime) its accuracies over seeds and each
method's difference to the truncated run over seeds (seed-level beside problem-level intervals), then the
comparisons named in advance with Holm-adjusted p-values, the report's only claims."""

from __future__ import annotations

import statistics
from collections import defaultdict

from alpharl_trainer.reproduce.comparisons import HEADLINE, HEADLINE_COLUMNS, Evidence, best_on_heldout
from alpharl_trainer.reproduce.compute import equal_compute_key
from alpharl_trainer.reproduce.registry import METHODS, reference_of
from alpharl_trainer.reproduce.table import find_row, gain_share


def headline_groups(results: list[dict]) -> dict[tuple, list[dict]]:
    """The headline runs by cell (task, loss, regime): a cell's runs are its seeds."""
    groups = defaultdict(list)
    for res in results:
        if res["headline"]:
            groups[(res["task"], res["loss"], res["regime"])].append(res)
    return dict(groups)


def window_ends(res: dict) -> list[int]:
    return sorted({r["window_step"] for r in res["rows"]})


def _windows(res: dict) -> list[float]:
    return [w / res["steps"] for w in window_ends(res)]


def mean_sd(values: list[float], pct: bool = False) -> str:
    if not values:
        return "-"
    mean = statistics.fmean(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * mean:.0f}±{100 * sd:.0f}%" if pct else f"{mean:.3f}±{sd:.3f}"


def headline_section(results: list[dict], ev: Evidence) -> list[str]:
    lines = []
    for (task, loss, regime), group in headline_groups(results).items():
        seeds = [r["seed"] for r in group]
        lines += [
            f"## Headline: {task} / {loss} / {regime}, seeds {seeds}",
            "",
            "Greedy test accuracy (share of the full run's gain); ± is the standard deviation over seeds "
            "(a description of the spread, not an interval).",
            "",
            f"Base {mean_sd([r['base']['greedy'] for r in group])}, full run "
            f"{mean_sd([r['base']['greedy'] + r['admission']['gain'] for r in group])} (greedy test "
            "accuracy; the mean of its last 3 checkpoints).",
            "",
            "| method | " + " | ".join(f"w={w:.0%}" for w in _windows(group[0])) + " |",
            "|---|" + "---|" * len(_windows(group[0])),
        ]
        for method in METHODS:
            cells = []
            for end in window_ends(group[0]):
                accs, shares, costs = [], [], set()
                for res in group:
                    row = find_row(res["rows"], end, method)
                    if row and "greedy" in row:
                        accs.append(row["greedy"])
                        shares.append(gain_share(row["greedy"], res))
                        costs.add(row["cost"])
                shares = [s for s in shares if s is not None]
                at = "".join(f" @{c}" for c in sorted(costs) if c != end)  # a row costing other steps says so
                cells.append(f"{mean_sd(accs)}{at} ({mean_sd(shares, pct=True)})" if accs else "-")
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        lines += ["", *_over_seeds_table(group, ev), *_equal_compute_table(group, ev)]
    return lines


def _method_table_head(group: list[dict]) -> list[str]:
    """The header of a table with one row per method and one column per window end."""
    windows = _windows(group[0])
    return ["| method | " + " | ".join(f"w={w:.0%}" for w in windows) + " |", "|---|" + "---|" * len(windows)]


def _equal_compute_table(group: list[dict], ev: Evidence) -> list[str]:
    """Each method's cost as compute and its paired difference to the truncated run at that compute."""
    ends = window_ends(group[0])
    lines = [
        "Cost as compute (`reproduce.compute`): training-step equivalents by forward passes, mean over "
        "seeds: the steps the weights trained plus every held-out scoring of the method's choice (the "
        "weight sets scored, W_K included, in parentheses) or the product's gate; the forecasts' arithmetic "
        "is left out for every method alike. Then the paired difference to the truncated run at that "
        "compute (each seed's full-run checkpoint at its row's cost, rounded up to a saved checkpoint; "
        "at most T), as in the table above.",
        "",
        *_method_table_head(group),
    ]
    for method in METHODS:
        cells = []
        for end in ends:
            rows = [find_row(res["rows"], end, method) for res in group]
            if not all(r and "compute" in r for r in rows):
                cells.append("-")
                continue
            cost = statistics.fmean(r["compute"] for r in rows)
            scored = statistics.fmean(r.get("scored", 0) for r in rows)
            sets = f" ({scored:.0f})" if scored else ""
            c = ev.compare(group, equal_compute_key(method, end), f"{method}@{end}")
            cells.append(f"{cost:.0f}{sets}: {ev.cell(c)}")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _over_seeds_table(group: list[dict], ev: Evidence) -> list[str]:
    """Each method's paired difference to the truncated run at the same cost over the cell's seeds."""
    if not all("per_problem" in res for res in group):
        return []
    ends = window_ends(group[0])
    lines = [
        f"Paired difference to the truncated run at the same cost over the {len(group)} seed(s): mean "
        "[seed-level 95% t-interval over the per-seed mean differences] ([problem-level 95% bootstrap over "
        "the shared test problems, one common resample for every seed, seeds fixed: conditional on these "
        "trained models]). better/worse only where the seed-level interval excludes 0, unadjusted for the "
        "number of cells: a screen, not a claim (the claims are the headline comparisons below). With one "
        "seed there is no seed-level interval (`-`) and no verdict.",
        "",
        *_method_table_head(group),
    ]
    for method in METHODS:
        cells = [
            ev.cell(ev.compare(group, f"{reference_of(method)}@{end}", f"{method}@{end}")) for end in ends
        ]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def headline_comparisons(results: list[dict], ev: Evidence) -> list[str]:
    """The comparisons named in advance (`comparisons.HEADLINE`) at every window end of every headline cell,
    one family, Holm-adjusted together."""
    labelled = []
    for (task, loss, regime), group in headline_groups(results).items():
        for end in window_ends(group[0]):
            share = f"w={end / group[0]['steps']:.0%} (step {end})"
            truncated = ev.compare(group, f"truncated@{end}", f"default@{end}")
            if truncated is not None:
                labelled.append((f"{task}/{loss}/{regime} {share}: {HEADLINE[0]}", truncated))
            compute = ev.compare(group, equal_compute_key("default", end), f"default@{end}")
            if compute is not None:
                cost = statistics.fmean(find_row(r["rows"], end, "default")["compute"] for r in group)
                label = f"{task}/{loss}/{regime} {share}: {HEADLINE[1]} ({cost:.0f} steps)"
                labelled.append((label, compute))
            best = best_on_heldout(group, end)
            against = None if best is None else ev.compare(group, f"{best}@{end}", f"default@{end}")
            if against is not None:
                labelled.append(
                    (f"{task}/{loss}/{regime} {share}: default - {best} (best on held-out)", against)
                )
    if not labelled:
        return []
    return [
        "## Headline comparisons (named in advance)",
        "",
        "Fixed in the harness (`comparisons.HEADLINE`), not picked from these numbers: in every headline "
        "cell, at every window end, `default` minus the truncated run at the same step, the same minus the "
        "truncated run at the same compute (each seed's full-run checkpoint at its default's cost in "
        "training-step equivalents, gate included, rounded up to a saved checkpoint; the label gives the "
        "mean cost), and `default` minus "
        "the baseline at the same cost with the best mean held-out accuracy over the seeds (chosen on "
        "held-out problems, never on test). Each gets the two-sided "
        "one-sample t-test over the per-seed mean differences (seeds are the unit; df = seeds - 1); the "
        f"{len(labelled)} p-values form one family, adjusted by Holm's step-down method. `better`/`worse` "
        "only where the Holm-adjusted p < 0.05 (equivalently, for one comparison alone, the seed-level "
        "t-interval excluding 0). The two-level bootstrap (seeds resampled, then one common resample of the "
        "shared problems) is shown for reference: with few seeds it is too narrow (3 seeds give 10 distinct "
        "seed resamples), so it decides nothing. Every other difference in this report is descriptive (the "
        "over-seeds tables' better/worse are an unadjusted screen).",
        "",
        *HEADLINE_COLUMNS,
        *ev.headline(labelled),
        "",
    ]
