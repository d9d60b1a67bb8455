"""Replay the race (`trainer/racing.py`) on the full gate's recorded outcomes: choose its knobs on development
windows without training again.

A full-gate run of `scripts/gate_study.py` keeps every candidate's score on every held-out prompt
(`heldout_per_prompt`, the swap record's `per_prompt`). The suite's gate scores teacher-forced greedy
(`exact_greedy`): deterministic, so a candidate's score on a prompt does not depend on which look scored it,
and driving a `Race` with slices of the recorded matrix makes exactly the decisions, and scores exactly the
model-prompt pairs, that the product's race would make in the same run (`swap.WindowSwap._race`: `current`
and every survivor on each look's prompts). Only the gate's knobs change; the candidates are the run's.

For each knob setting (`--tolerance`, `--first`, `--alpha`, a grid) it prints, over the records:
- agreement: windows where the race makes the full gate's decision (the same candidate, or both keep W_K);
- within the tolerance: windows where it does not but its pick's score on all N held-out prompts is within the
  tolerance of the full gate's pick (keeping W_K scores W_K's held-out mean plus the margin); within the full
  gate's bar: the gap is at most `--margin-se` paired SEs of the two picks' per-prompt difference, so the full
  gate's own rule could not tell them apart;
- cost: model-prompt scorings (the full gate's are N (1 + m)), the full gate's over the race's, per window.
With `--test`, for each setting: the race's pick against the full gate's pick on the test split, paired
(problem-level 95% normal interval), where they differ. Knobs are chosen on the held-out columns of
development seeds; the test columns are for confirmation on fresh seeds.

    python scripts/replay_gate.py /work/study/dev --tolerance 0 0.01 0.02 0.03 --first 16 32 64
    python scripts/replay_gate.py /work/study/fresh --tolerance 0.02 --first 32 --test
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import math
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from alpharl_trainer.stage_scoring import WINDOW_END  # noqa: E402
from alpharl_trainer.stats import paired_normal, paired_se  # noqa: E402
from alpharl_trainer.trainer.candidates import describe  # noqa: E402
from alpharl_trainer.trainer.racing import CURRENT, Race, drive  # noqa: E402


def replay(
    per_prompt: dict[str, list[float]],
    margin: float,
    margin_se: float,
    rank_by: dict[str, list[float]] | None = None,
    **knobs,
) -> tuple:
    """The race's decision and its model-prompt scorings, driven by the recorded per-prompt scores (and, with
    `rank_by`, the recorded probabilities its shortlist ranks by, as the product's race records them)."""
    labels = [k for k in per_prompt if k != CURRENT]
    race = drive(
        Race(labels, len(per_prompt[CURRENT]), margin, margin_se, **knobs), per_prompt, rank_by or None
    )
    return race.decision(), race.scored(), len(race.per_prompt()[CURRENT])


def value(per_prompt: dict[str, list[float]], choice: str | None, margin: float) -> float:
    """A decision's held-out score on all N prompts; keeping W_K is worth W_K's score plus the margin."""
    if choice is None:
        return float(np.mean(per_prompt[CURRENT])) + margin
    return float(np.mean(per_prompt[choice]))


def test_outcomes(record: dict, choice: str | None) -> list[int] | None:
    """The test-split outcomes of a decision's weights (W_K for None), from the run's report."""
    if choice is None:
        return record["test_outcomes"].get(WINDOW_END)
    name = describe(choice, "step").removeprefix("the ")
    outcomes = record["test_outcomes"]
    return outcomes.get(name) or outcomes.get(f"{name} (applied)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("records", nargs="+", help="folders of full-gate records (.json[.gz])")
    p.add_argument("--tolerance", type=float, nargs="+", default=[0.0])
    p.add_argument("--first", type=int, nargs="+", default=[16])
    p.add_argument("--alpha", type=float, nargs="+", default=[0.05])
    p.add_argument("--finalists", type=int, nargs="+", default=[0], help="k finalists (0: none)")
    p.add_argument("--finalists-at", type=int, nargs="+", default=[0], help="prompts before the cut")
    p.add_argument(
        "--prompts", type=int, nargs="+", default=[0], help="the race's prompts: the first N' (0: all)"
    )
    p.add_argument("--margin-se", type=float, default=2.0, help="the suite's bar in paired SEs")
    p.add_argument(
        "--rank-by", choices=["score", "probability"], default="probability",
        help="what the shortlist ranks by: the greedy scores, or the recorded gold-completion probabilities",
    )  # fmt: skip
    p.add_argument("--test", action="store_true", help="also the race's pick vs the full gate's on test")
    p.add_argument("--verbose", action="store_true", help="one line per window")
    args = p.parse_args()
    records = []
    for folder in args.records:
        for path in sorted([*Path(folder).glob("*-full.json"), *Path(folder).glob("*-full.json.gz")]):
            raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
            record = json.loads(raw)
            if record.get("heldout_per_prompt"):
                records.append(record)
    if not records:
        raise SystemExit("no full-gate records with per-prompt outcomes in " + ", ".join(args.records))
    print(f"{len(records)} windows; cost = the full gate's model-prompt scorings over the race's")
    grid = itertools.product(
        args.tolerance, args.first, args.alpha, args.prompts, args.finalists, args.finalists_at
    )
    for tolerance, first, alpha, prompts, finalists, finalists_at in grid:
        same = close = in_bar = 0
        ratios, lines, tests = [], [], []
        for r in records:
            pp = r["heldout_per_prompt"]
            full = r["chosen"]
            head = {k: v[: prompts or None] for k, v in pp.items()}
            knobs = dict(tolerance=tolerance, first=first, alpha=alpha)
            knobs.update(finalists=finalists, finalists_at=finalists_at)
            ranking = r.get("heldout_probability") if args.rank_by == "probability" else None
            if args.rank_by == "probability" and not ranking:
                raise SystemExit(f"{r['run']} w={r['window']}: no probabilities recorded")
            choice, scored, stopped = replay(head, 0.0, args.margin_se, ranking, **knobs)
            m, n = len(pp) - 1, len(pp[CURRENT])
            ratios.append(n * (1 + m) / scored)
            gap = value(pp, full, 0.0) - value(pp, choice, 0.0)
            same += choice == full
            close += choice != full and gap <= tolerance
            # the full gate's own resolution: its bar, margin_se paired SEs of the two picks' difference
            bar = args.margin_se * paired_se(pp[full or CURRENT], pp[choice or CURRENT])
            in_bar += choice != full and gap <= bar
            line = f"  {r['run']} w={r['window']:<4} full {full!s:<22} race {choice!s:<22} at {stopped:>4}"
            line += f" held-out gap {gap:+.3f} (bar {bar:.3f})  cost {ratios[-1]:.1f}x"
            if args.test and choice != full:
                a, b = test_outcomes(r, full), test_outcomes(r, choice)
                if a and b:
                    d = paired_normal(a, b)
                    tests.append(d)
                    line += f"  test race - full {d.diff:+.3f} [{d.low:+.3f}, {d.high:+.3f}]"
            lines.append(line)
        head = f"prompts {prompts or 'all'} finalists {finalists} at {finalists_at} tolerance {tolerance:g} "
        head += f"first {first} alpha {alpha:g}:"
        pooled = len(ratios) / sum(1 / x for x in ratios)  # total scorings, full over race
        cost = f"cost {min(ratios):.1f}-{max(ratios):.1f}x ({pooled:.1f}x over all windows' scorings)"
        print(
            f"{head} same decision {same}/{len(records)}, else within the tolerance {close}, within the full "
            f"gate's bar {in_bar}; {cost}"
        )
        if args.test:
            worse = sum(d.high < 0 for d in tests)
            print(
                f"  test: {len(tests)} windows with another pick, {worse} significantly worse than the full's"
            )
        if args.verbose:
            print("\n".join(lines))
        if math.isnan(sum(ratios)):
            raise SystemExit("NaN cost")


if __name__ == "__main__":
    main()
