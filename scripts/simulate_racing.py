"""Simulate the racing gate (`trainer/racing.py`) against the full gate (`best_over_bar` on all N prompts).

Model: N held-out prompts with difficulty a_j ~ Normal(0, 1.5); candidate i has effect theta_i, and a prompt's
score is the share of S = 4 samples that succeed with probability sigmoid(a_j + theta_i). Common random
numbers: every model uses the same uniforms u_js (a sample succeeds when u_js < p), as the gate's shared
prompts and seed do. Each repetition draws new prompts and uniforms; theta is calibrated so that each model's
true mean E_a[sigmoid(a + theta)] hits the scenario's target.

The model above makes a candidate with the same theta as `current` score exactly as `current` on every
prompt (same p, same uniforms), so its null is degenerate. `--interaction tau` adds a prompt-by-model effect
e_ij ~ Normal(0, tau) to each model's logit (different weights do not fail the same prompts alike), with
theta calibrated over a + e; a candidate equal to `current` in mean then differs from it prompt by prompt.

Per scenario it prints: agreement of the race's decision with the full gate's on the same data; the rate at
which the race's pick is truly worth less than the full gate's by more than the tolerance (or the margin, if
larger), and the mean of that shortfall (keeping W_K is worth W_K's true mean plus the margin); the rate of
what the stopping rule bounds by alpha (`wrong_early`: an early decision truly worth more than the tolerance
below the best one, or an early swap to a candidate that does not truly beat W_K by the margin, where the
shortlist kept the best); the rate at
which the race dropped the truly best candidate before the last look (by a test or the shortlist); the apply
rates; the share of decisions made before the last look; the cost, model-prompt scorings relative to the
full gate's N (1 + m).

    python scripts/simulate_racing.py                 # the shipped rule, first = 16
    python scripts/simulate_racing.py --interaction 0.5  # the same with per-prompt disagreement
    python scripts/simulate_racing.py --first 4 8 16 32 --tolerance 0 0.01 --reps 1000   # the choice
    python scripts/simulate_racing.py --prompts 1000 --samples 1 --candidates 26 --margin 0 --margin-se 2 \
        --reps 300          # the reproduction suite's gate: 1,000 greedy problems, 26 candidates, 2 SE bar
    python scripts/simulate_racing.py --prompts 1000 --samples 1 --candidates 26 --margin 0 --margin-se 2 \
        --interaction 0.5 --tolerance 0.02 --finalists 2 64 --reps 300   # the suite's shortlist race
    python scripts/simulate_racing.py --samples 0   # exact scoring: each prompt's success probability itself
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _load_racing():
    """`trainer/racing.py` alone: importing it through its package would load the trainer, torch and TRL."""
    spec = importlib.util.spec_from_file_location(
        "racing", REPO / "alpharl_trainer" / "trainer" / "racing.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["racing"] = module
    spec.loader.exec_module(module)
    return module


racing = _load_racing()

N, SAMPLES, SPREAD, MARGIN, MARGIN_SE, CURRENT_MEAN = 64, 4, 1.5, 0.01, 0.0, 0.25
"""The main job's gate (set from the command line): prompts, samples per prompt (0: exact scoring, the
probability itself), the bar's margin and its number of paired SEs; `current`'s true mean."""
FINALISTS = (0, 64)
"""The race's shortlist: k finalists (0: none) at that many prompts."""
RANK_BY_P = False
"""Whether the shortlist ranks by each prompt's success probability p (the gate's gold-completion probability
beside a greedy outcome) instead of the scores."""
NODES, WEIGHTS = np.polynomial.hermite_e.hermegauss(80)  # E over Normal(0, 1): sum(w f(x)) / sqrt(2 pi)


def true_mean(theta: float, tau: float) -> float:
    """E sigmoid(a + e + theta) over a ~ Normal(0, SPREAD), e ~ Normal(0, tau)."""
    spread = np.hypot(SPREAD, tau)
    return float(WEIGHTS @ (1 / (1 + np.exp(-(spread * NODES + theta)))) / np.sqrt(2 * np.pi))


def theta_for(mean: float, tau: float) -> float:
    """The effect whose true mean is `mean` (bisection: the mean rises with theta)."""
    low, high = -10.0, 10.0
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if true_mean(mid, tau) < mean else (low, mid)
    return (low + high) / 2


def scenarios(m: int = 20, tolerance: float = 0.0) -> dict[str, list[float]]:
    """The candidates' true means in each scenario, for `m` candidates (the main job's window has 20); the
    last two sit where the tolerance's tests err most: every candidate exactly at the bar plus the tolerance
    (none may be dropped as below it), and a best candidate exactly the tolerance above a crowd."""
    half = m // 2
    edge = CURRENT_MEAN + MARGIN + tolerance
    return {
        "a main (0.19..0.37)": list(np.linspace(0.19, 0.37, m)),
        "b null (all = current)": [CURRENT_MEAN] * m,
        "c one +0.02, rest worse": [
            *np.linspace(0.19, 0.24, half),
            CURRENT_MEAN + 0.02,
            *np.linspace(0.19, 0.24, m - half - 1),
        ],
        "d near tie at the top": [0.33, 0.325, *np.linspace(0.19, 0.30, m - 2)],
        "e all at bar + tolerance": [edge] * m,
        "f best tolerance above": [
            0.33 + tolerance,
            *[0.33] * (m // 4),
            *np.linspace(0.19, 0.30, m - 1 - m // 4),
        ],
    }


def run_race(
    scores: np.ndarray, labels: list[str], first: int, tolerance: float, ranking: np.ndarray | None
) -> tuple:
    """The race on one repetition's scores (row 0 = current), its shortlist ranked by `ranking` (rows as
    `scores`) when given: its decision, what it dropped early, cost."""
    race = racing.Race(
        labels, N, MARGIN, MARGIN_SE, first=first, tolerance=tolerance, finalists=FINALISTS[0],
        finalists_at=FINALISTS[1],
    )  # fmt: skip
    names = ["current", *labels]
    ranks = None if ranking is None else dict(zip(names, ranking, strict=True))
    racing.drive(race, dict(zip(names, scores, strict=True)), ranks)
    return (
        race.decision(),
        race.dropped(),
        race.scored(),
        race.looks()[-1] > len(race.per_prompt()["current"]),
    )


def simulate(
    means: list[float], reps: int, first: int, tolerance: float, tau: float, seed: int
) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    m = len(means)
    labels = [f"c{i}" for i in range(m)]
    thetas = np.array([theta_for(CURRENT_MEAN, tau)] + [theta_for(x, tau) for x in means])
    truth = {"current": true_mean(thetas[0], tau), None: true_mean(thetas[0], tau)}
    truth.update({label: true_mean(t, tau) for label, t in zip(labels, thetas[1:], strict=True)})
    top = max(truth[label] for label in labels)
    best = {label for label in labels if truth[label] > top - 1e-12}
    utility = {k: v for k, v in truth.items() if k not in ("current", None)}
    utility[None] = truth["current"] + MARGIN  # keeping W_K is worth W_K plus the margin a swap must clear
    best_utility = max(utility.values())
    count = dict.fromkeys(
        [
            "agree",
            "regret",
            "mean_regret",
            "wrong_early",
            "best_dropped",
            "race_apply",
            "full_apply",
            "early",
            "cost",
        ],
        0.0,
    )
    for _ in range(reps):
        a = rng.normal(0.0, SPREAD, N)
        u = rng.random((N, max(SAMPLES, 1)))
        e = rng.normal(0.0, tau, (m + 1, N)) if tau > 0 else 0.0
        p = 1 / (1 + np.exp(-(a[None, :] + thetas[:, None] + e)))
        scores = p if SAMPLES == 0 else (u[None] < p[..., None]).mean(axis=-1)
        means_n = {
            "current": float(scores[0].mean()),
            **{k: float(scores[i + 1].mean()) for i, k in enumerate(labels)},
        }
        per_prompt = {k: scores[i].tolist() for i, k in enumerate(["current", *labels])}
        full = racing.best_over_bar(means_n, labels, MARGIN, per_prompt=per_prompt, margin_se=MARGIN_SE)
        race, dropped, cost, early = run_race(scores, labels, first, tolerance, p if RANK_BY_P else None)
        count["agree"] += race == full
        # what the stopping rule bounds by alpha: an early decision worth more than the tolerance below the
        # best one, or an early swap to a candidate that does not truly beat W_K by the margin
        below_bar = race is not None and truth[race] <= truth["current"] + MARGIN
        # ... given that the truly best candidate was not left off the shortlist (the cut is not a test)
        cut = any("finalists" in dropped.get(label, "") for label in best)
        wrong = utility[race] < best_utility - tolerance - 1e-12 or below_bar
        count["wrong_early"] += early and wrong and not cut
        count["regret"] += utility[race] < utility[full] - max(MARGIN, tolerance) - 1e-12
        count["mean_regret"] += max(0.0, utility[full] - utility[race])
        count["best_dropped"] += bool(best & set(dropped))
        count["race_apply"] += race is not None
        count["full_apply"] += full is not None
        count["early"] += early
        count["cost"] += cost / (N * (1 + m))
    return {k: v / reps for k, v in count.items()}


def main() -> None:
    global N, SAMPLES, MARGIN, MARGIN_SE, FINALISTS, RANK_BY_P
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=2000)
    p.add_argument("--first", type=int, nargs="+", default=[16])
    p.add_argument("--tolerance", type=float, nargs="+", default=[0.0], help="the race's tolerance")
    p.add_argument("--interaction", type=float, default=0.0, help="tau: prompt-by-model logit noise")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--prompts", type=int, default=N, help="held-out prompts N")
    p.add_argument("--samples", type=int, default=SAMPLES, help="samples per prompt; 0 = exact scoring")
    p.add_argument("--candidates", type=int, default=20)
    p.add_argument("--margin", type=float, default=MARGIN)
    p.add_argument("--margin-se", type=float, default=MARGIN_SE)
    p.add_argument("--finalists", type=int, nargs=2, default=FINALISTS, metavar=("K", "AT"))
    p.add_argument("--rank-by-probability", action="store_true", help="the shortlist ranks by p")
    args = p.parse_args()
    FINALISTS, RANK_BY_P = tuple(args.finalists), args.rank_by_probability
    N, SAMPLES, MARGIN, MARGIN_SE = args.prompts, args.samples, args.margin, args.margin_se
    head = f"{'scenario':<26} {'first':>5} {'tol':>6} {'agree':>6} {'regret>tol':>10} {'mean_regret':>11}"
    head += f" {'wrong_early':>11}"
    head += f" {'best_drop':>9}"
    print(
        f"N={N}, {SAMPLES or 'exact (no)'} samples, {args.candidates} candidates, margin {MARGIN} + "
        f"{MARGIN_SE:g} SE, alpha 0.05, interaction tau {args.interaction}, {args.reps} repetitions per row, "
        f"{FINALISTS[0] or 'no'} finalists at {FINALISTS[1]} prompts"
        + (" ranked by p" if RANK_BY_P and FINALISTS[0] else "")
    )
    print(head + f" {'race_apply':>10} {'full_apply':>10} {'early':>6} {'cost':>6}")
    start = time.time()
    for first in args.first:
        for tolerance in args.tolerance:
            for i, (name, means) in enumerate(scenarios(args.candidates, tolerance).items()):
                r = simulate(means, args.reps, first, tolerance, args.interaction, args.seed + i)
                print(
                    f"{name:<26} {first:>5} {tolerance:>6g} {r['agree']:>6.3f} {r['regret']:>10.3f} "
                    f"{r['mean_regret']:>11.4f} "
                    f"{r['wrong_early']:>11.3f} {r['best_dropped']:>9.3f} {r['race_apply']:>10.3f} "
                    f"{r['full_apply']:>10.3f} {r['early']:>6.3f} {r['cost']:>6.3f}"
                )
    print(f"({time.time() - start:.0f} s)")


if __name__ == "__main__":
    main()
