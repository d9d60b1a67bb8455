"""The acceptance gate's rules over the reproduction suite's windows: the full gate against the race.

For each development seed (0-2, `--seeds`) of the default suite's headline run (sort, GRPO, the climbing
regime) and each window end, `alpharl train` runs exactly as the suite's `default` cell runs it
(`reproduce/runs.py`: the suite's recipe, its portfolio, 1,000 held-out problems, the 2-SE bar), stopped
right after the decision (no fine-tune), once per gate: the full gate and the race
(`alpharl_acceptance_rule: race`), both scoring teacher-forced greedy (`exact_greedy`, the suite's product
gate), and, for the first seed only, the full gate generating greedily (`greedy`, the gate as it was) for
its cost side by side. The runs of one seed are identical up to the window
end (same seed, one thread each), so the gates decide on the same candidates; each run's report scores every
candidate it wrote on test-split problems no gate saw (`report_test_size`), paired with W_K.

Prints, per window: each gate's decision, its swap cost in training steps (by tokens, forward passes, time)
and the test difference of its pick to W_K; then agreement of the race with the full gate and the cost ratios.
The study's records go to `--out` (one JSON per run) so a stopped study resumes.

    python scripts/gate_study.py --out .cache/gate_study            # ~40 min on 2 idle cores
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from alpharl_trainer.policies import shipped_policy  # noqa: E402
from alpharl_trainer.reproduce.config import RunSpec, load_suite  # noqa: E402
from alpharl_trainer.reproduce.runs import RECIPES, product_settings, recipe_settings  # noqa: E402

GATES = {
    "full": {"alpharl_acceptance_scoring": "exact_greedy"},
    "race": {"alpharl_acceptance_scoring": "exact_greedy", "alpharl_acceptance_rule": "race"},
    "greedy full": {"alpharl_acceptance_scoring": "greedy"},
    "shortlist": {  # the race with a tolerance and 2 finalists at 64 prompts: chosen on seeds 0-2's records
        "alpharl_acceptance_scoring": "exact_greedy",
        "alpharl_acceptance_rule": "race",
        "alpharl_acceptance_tolerance": 0.02,
        "alpharl_acceptance_finalists": 2,
        "alpharl_acceptance_finalists_at": 64,
    },
}


def study_run(spec: RunSpec, suite, end: int, gate: str, out: Path, test_size: int) -> dict:
    """One `alpharl train` to the window end `end` with `gate`; its decision, cost and test scores."""
    record = out / f"{spec.name}-w{end}-{gate.replace(' ', '_')}.json"
    if record.is_file():
        return json.loads(record.read_text())
    settings = {
        **yaml.safe_load((RECIPES / f"{spec.loss}.yaml").read_text()),
        **recipe_settings(spec, suite, suite.steps),
        **product_settings(suite, end, 0),
        **GATES[gate],
        "model_name_or_path": str(shipped_policy("tiny")),
        "report_test_size": test_size,
        "torch_threads": 1,
    }
    with tempfile.TemporaryDirectory(dir=out, prefix=".run-") as tmp:
        settings["output_dir"] = str(Path(tmp) / "run")
        recipe = Path(tmp) / "recipe.yaml"
        recipe.write_text(yaml.safe_dump(settings, sort_keys=False))
        began = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "alpharl_trainer", "train", str(recipe)],
            capture_output=True,
            text=True,
            env={**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"},
            check=False,
        )
        if done.returncode != 0:
            tail = done.stdout[-3000:] + done.stderr[-3000:]
            raise SystemExit(f"{record.name}: alpharl train failed\n{tail}")
        summary = json.loads((Path(settings["output_dir"]) / "alpharl" / "summary.json").read_text())
    swap = summary["swap"]
    stages = {row["stage"]: row for row in summary["test"]["stages"]}
    result = {
        "run": spec.name,
        "seed": spec.seed,
        "window": end,
        "gate": gate,
        "chosen": swap["chosen"],
        "eliminated": swap.get("eliminated", {}),
        "cost": swap["cost"],
        "heldout": swap["scores"],
        "heldout_per_prompt": swap.get("per_prompt", {}),
        "heldout_probability": swap.get("per_prompt_probability", {}),
        "test": {name: row.get("paired") for name, row in stages.items()},
        "test_outcomes": {name: row.get("outcomes") for name, row in stages.items()},
        "test_accuracy": {name: row["accuracy"] for name, row in stages.items()},
        "seconds": time.perf_counter() - began,
    }
    record.write_text(json.dumps(result, indent=1) + "\n")
    return result


def applied(result: dict) -> dict | None:
    """The test row of the gate's pick against W_K (None when it kept W_K)."""
    rows = [row for name, row in result["test"].items() if name.endswith("(applied)")]
    return rows[0] if rows else None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--suite", default=str(REPO / "recipes" / "reproduce" / "default.yaml"))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="the development seeds")
    p.add_argument("--out", default=str(REPO / ".cache" / "gate_study"))
    p.add_argument("--test-size", type=int, default=2000)
    p.add_argument("--jobs", type=int, default=2, help="runs at once (one torch thread each)")
    p.add_argument("--gates", nargs="+", default=["full", "race"], choices=list(GATES), help="gates to run")
    args = p.parse_args()
    suite = load_suite(args.suite)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    headline = next(s for s in suite.runs if s.headline)
    specs = [dataclasses.replace(headline, seed=seed) for seed in args.seeds]
    ends = suite.window_steps()
    jobs = [(s, end, gate) for s in specs for end in ends for gate in args.gates if gate != "greedy full"]
    jobs += [(specs[0], end, "greedy full") for end in ends if "greedy full" in args.gates]
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda job: study_run(job[0], suite, *job[1:], out, args.test_size), jobs))
    by_key = {(r["run"], r["window"], r["gate"]): r for r in results}

    def steps(r: dict) -> str:
        c = r["cost"]
        return f"{c['steps_by_tokens']:.1f} / {c['steps_by_flops']:.1f} / {c['steps_by_seconds']:.1f}"

    def pick(r: dict) -> str:
        row = applied(r)
        if row is None:
            return "keep W_K"
        interval = f"[{row['ci95_low']:+.3f}, {row['ci95_high']:+.3f}]"  # paired 95% normal, problem-level
        return f"{r['chosen']}, test vs W_K {row['diff']:+.3f} {interval}"

    print(f"gates over {len(specs)} seeds x windows {ends}; cost in training steps: tokens / FLOPs / time")
    others = [g for g in args.gates if g not in ("full", "greedy full")]
    agree, ratios = dict.fromkeys(others, 0), {g: {"tokens": [], "flops": [], "seconds": []} for g in others}
    for s in specs:
        for end in ends:
            full = by_key.get((s.name, end, "full"))
            print(f"{s.name} w={end}")
            for gate in args.gates:
                r = by_key.get((s.name, end, gate))
                if r is not None:
                    print(f"  {r['gate']:<12} {steps(r):>22}  {pick(r)}")
                if r is None or full is None or gate not in others:
                    continue
                agree[gate] += full["chosen"] == r["chosen"]
                for unit in ratios[gate]:
                    key = f"steps_by_{unit}"
                    ratios[gate][unit].append(full["cost"][key] / r["cost"][key])
    n = len(specs) * len(ends)
    for gate in others:
        if not ratios[gate]["flops"]:
            continue
        print(f"{gate} = full gate's decision in {agree[gate]} of {n} windows")
        for unit, values in ratios[gate].items():
            print(f"full / {gate} cost by {unit}: {min(values):.2f}-{max(values):.2f}")
    if "greedy full" not in args.gates:
        return
    for end in ends:
        old, new = by_key[(specs[0].name, end, "greedy full")], by_key[(specs[0].name, end, "full")]
        race = by_key[(specs[0].name, end, "race")]
        by_time = " / ".join(f"{r['cost']['steps_by_seconds']:.1f}" for r in (old, new, race))
        by_flops = " / ".join(f"{r['cost']['steps_by_flops']:.1f}" for r in (old, new, race))
        ratio = old["cost"]["steps_by_seconds"] / race["cost"]["steps_by_seconds"]
        print(
            f"{specs[0].name} w={end}: greedy-generating full gate / exact_greedy full / race: by time "
            f"{by_time} steps ({ratio:.1f}x), by FLOPs {by_flops}"
        )


if __name__ == "__main__":
    main()
