"""Search for a regime the reproduction suite can admit as its headline, on held-out problems only.

Trains one GRPO run exactly as the suite trains a full run (`reproduce.runs`: the tiny recipe plus a regime:
task mix, lr, prompts), scores a checkpoint every `T_max / 15` steps on held-out problems of the same mix
(teacher-forced exact match, per category), and prints, for every budget T up to `--steps`, the admission
rule's two shape numbers on that curve (`reproduce.admission`'s definitions): the share of the gain the
run holds at 40% of T, and the share the last 20% of T adds (the full run = mean of its last 3 checkpoints).
The test split is never read: the suite measures admission there, on the regime chosen here.

    python3 scripts/probe_admission.py --task sort --mix climb --lr 1e-5 --prompts 32 --steps 300
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from alpharl_trainer.evaluate import load_folder, teacher_forced
from alpharl_trainer.policies import shipped_policy
from alpharl_trainer.reproduce import runs
from alpharl_trainer.reproduce.config import Regime, RunSpec, Suite
from alpharl_trainer.tasks import get_task


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", default="sort")
    p.add_argument("--mix", default="climb", help="a preset of the task (alpharl_trainer/tasks/)")
    p.add_argument("--lr", type=float, default=1e-5)
    p.add_argument("--prompts", type=int, default=32)
    p.add_argument("--steps", type=int, default=300, help="the longest budget T considered")
    p.add_argument("--heldout", type=int, default=3000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, help="JSON of the curve and the admission numbers")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    every = max(1, args.steps // 15)
    saves = sorted(set(range(every, args.steps + 1, every)) | {args.steps})
    suite = Suite(
        name="probe",
        steps=args.steps,
        checkpoint_every=every,
        windows=(0.4,),
        finetune_steps=0,
        regimes={"r": Regime(args.lr, args.prompts, mix=args.mix)},
        runs=(),
        threads=args.threads,
    )
    spec = RunSpec(args.task, "grpo", "r", args.seed)
    base = shipped_policy("tiny")
    problems = get_task(args.task, mix=args.mix).problems("heldout", args.heldout, seed=0)
    categories = sorted({q.category for q in problems})
    model, tokenizer = load_folder(base, dtype="float32", device="cpu")
    curve = []
    with tempfile.TemporaryDirectory(prefix="probe-admission-") as out:
        runs._trainer(spec, suite, base, Path(out), args.steps, [runs._SaveAt(saves)]).train()
        for step in [0, *saves]:
            if step:
                model.load_state_dict(load_file(f"{out}/checkpoint-{step}/model.safetensors"), strict=False)
            exact = teacher_forced(model, tokenizer, problems, batch_size=500)["exact_per_problem"]
            row = {"step": step, "heldout": float(np.mean(exact))}
            for c in categories:
                row[c] = float(np.mean([e for e, q in zip(exact, problems, strict=True) if q.category == c]))
            curve.append(row)
            print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}))

    steps = np.array([r["step"] for r in curve], dtype=float)
    acc = np.array([r["heldout"] for r in curve])

    def at(t: float) -> float:
        return float(np.interp(t, steps, acc))

    print("T | gain | held at 40% of T | added by the last 20% (rule: 0.6-0.9 and >= 0.10)")
    admission = []
    for T in saves[len(saves) // 3 :]:
        full = np.mean([at(T), at(T - every / 2), at(T - every)])  # ~ the mean of the last 3 checkpoints
        gain = full - acc[0]
        held, added = (at(0.4 * T) - acc[0]) / gain, (full - at(0.8 * T)) / gain
        admission.append({"T": T, "gain": gain, "held_at_40": held, "added_by_last_20": added})
        print(f"{T} | {gain:+.3f} | {held:.2f} | {added:.2f}")
    if args.out:
        args.out.write_text(
            json.dumps(
                {"args": vars(args) | {"out": str(args.out)}, "curve": curve, "admission": admission},
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
