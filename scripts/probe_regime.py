"""GRPO probe of the testbed regime: is the tiny policy's RL update rank-1 dominated and linear?

Runs the main job's recipe (TRL's GRPO, AlphaRL off) on the tiny model for a named regime, saving a
checkpoint every few steps; then, from the checkpoints on disk: the held-out curve (teacher-forced exact
match, which equals greedy decoding, and the mean log-prob of the gold completion), and per tracked
matrix (attention and MLP projections) the rank-1 share `s1 / ||dW||_F` of the final update, the linear-
fit R^2 of the sign-aligned rank-1 state `a_t = s1(t) u1(t)` against the step, and the held-out accuracy
of the full-norm rank-1 model `W0 + ||dW||_F u1 v1^T` (other parameters at their final values). The off-
task `sort` accuracy shows whether the RL update touched what it was not trained on.

    python3 scripts/probe_regime.py --regime paper-like
    python3 scripts/probe_regime.py --regime noisy --steps 100
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch

from alpharl_trainer.evaluate import teacher_forced
from alpharl_trainer.policies import shipped_policy
from alpharl_trainer.policies.build_tiny import REPO_ROOT
from alpharl_trainer.tasks import get_task

REGIMES = {
    # The paper's regime: a competent policy refined by low-noise RL (big batch, low lr).
    "paper-like": {"lr": 3e-6, "prompts": 32, "steps": 400, "save_every": 25},
    # A noisy one: few prompts per step, high lr.
    "noisy": {"lr": 1e-4, "prompts": 8, "steps": 200, "save_every": 10},
}
TRACKED = re.compile(r"\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)\.weight$")
NUM_GENERATIONS = 8


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--regime", choices=sorted(REGIMES), default="paper-like")
    p.add_argument("--model", type=Path, default=None, help="base policy (default: the shipped tiny policy)")
    p.add_argument("--out", type=Path, default=None, help="run folder (default: .cache/probe-<regime>)")
    p.add_argument("--task", default="arithmetic")
    p.add_argument("--steps", type=int, help="override the regime's step count")
    p.add_argument("--lr", type=float, help="override the regime's learning rate")
    p.add_argument("--prompts", type=int, help="override the regime's prompts per step")
    p.add_argument("--save-every", type=int, help="override the regime's checkpoint interval")
    p.add_argument("--heldout", type=int, default=1000, help="held-out problems (RL distribution)")
    p.add_argument("--greedy", type=int, default=100, help="held-out problems also decoded greedily")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    for key, value in REGIMES[args.regime].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.out = args.out or REPO_ROOT / ".cache" / f"probe-{args.regime}"
    return args


def train(args, model_dir: Path) -> float:
    """GRPO without AlphaRL: the main job's recipe with the regime's settings; returns seconds per step."""
    from alpharl_trainer import recipe

    script, config = recipe.parse(
        ["--config", str(REPO_ROOT / "recipes" / "tiny" / "grpo.yaml")],
        model_name_or_path=str(model_dir),
        task=args.task,
        train_size=args.steps * args.prompts,
        task_seed=args.seed,
        output_dir=str(args.out),
        max_steps=args.steps,
        per_device_train_batch_size=args.prompts * NUM_GENERATIONS,
        num_generations=NUM_GENERATIONS,
        learning_rate=args.lr,
        weight_decay=0.0,
        save_steps=args.save_every,
        save_only_model=True,
        logging_steps=max(1, args.steps // 10),
        seed=args.seed,
        alpharl=False,
    )
    trainer = recipe.build_trainer(script, config)
    start = time.time()
    trainer.train()
    return (time.time() - start) / args.steps


def checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    found = [(int(p.name.split("-")[1]), p) for p in run_dir.glob("checkpoint-*") if p.name[11:].isdigit()]
    return sorted(found)


def tracked_weights(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().float().clone() for k, v in model.state_dict().items() if TRACKED.search(k)}


def rank1_analysis(w0: dict, series: list[dict], steps: list[int]) -> dict[str, dict]:
    """Per matrix: rank-1 share of the final update, R^2 of the aligned a_t = s1 u1 linear in the step,
    and the final (s1, u1, v1, ||dW||)."""
    t = torch.tensor(steps, dtype=torch.float64)
    design = torch.stack([torch.ones_like(t), t], 1)
    out = {}
    for name in w0:
        states, prev_u = [], None
        for weights in series:
            u, s, vh = torch.linalg.svd((weights[name] - w0[name]).double(), full_matrices=False)
            u1, v1 = u[:, 0], vh[0]
            if prev_u is not None and torch.dot(u1, prev_u) < 0:  # align with the previous step only
                u1, v1 = -u1, -v1
            prev_u = u1
            states.append(s[0] * u1)
        a = torch.stack(states)  # (K, m)
        coef = torch.linalg.lstsq(design, a).solution
        ss_res = ((a - design @ coef) ** 2).sum()
        ss_tot = ((a - a.mean(0)) ** 2).sum()
        fro = torch.linalg.norm(series[-1][name] - w0[name]).item()
        out[name] = {
            "share": (s[0] / fro).item() if fro > 0 else 0.0,
            "r2": (1 - ss_res / ss_tot).item() if ss_tot > 0 else 0.0,
            "fro": fro,
            "u": u1.float(),
            "v": v1.float(),
        }
    return out


def evaluate(model, tok, problems) -> tuple[float, float, list[bool]]:
    result = teacher_forced(model, tok, problems, batch_size=500)
    return result["exact"], result["logprob"], result["exact_per_problem"]


def by_category(problems, exact: list[bool]) -> dict[str, float]:
    hits = defaultdict(list)
    for problem, hit in zip(problems, exact, strict=True):
        hits[problem.category].append(hit)
    return {c: sum(v) / len(v) for c, v in sorted(hits.items())}


@torch.no_grad()
def greedy_accuracy(model, tok, task, problems) -> float:
    batch = tok([p.prompt for p in problems], return_tensors="pt", padding=True)
    gen = model.generate(**batch, max_new_tokens=8, do_sample=False)
    texts = tok.batch_decode(gen[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
    return sum(task.score(t, p.answer) for t, p in zip(texts, problems, strict=True)) / len(problems)


def main() -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    args = parse_args()
    torch.set_num_threads(args.threads)
    model_dir = args.model or shipped_policy("tiny")
    if args.out.exists():
        shutil.rmtree(args.out)
    sec_per_step = train(args, model_dir)

    tok = AutoTokenizer.from_pretrained(model_dir)
    task = get_task(args.task, mix="rl")
    heldout = task.problems("heldout", args.heldout, seed=args.seed)
    off_task = get_task("sort", mix="all").problems("heldout", 500, seed=args.seed)
    load = lambda path: AutoModelForCausalLM.from_pretrained(path).eval()  # noqa: E731

    base = load(model_dir)
    w0 = tracked_weights(base)
    curve = [(0, *evaluate(base, tok, heldout)[:2])]
    series, steps = [], []
    for step, path in checkpoints(args.out):
        model = load(path)
        curve.append((step, *evaluate(model, tok, heldout)[:2]))
        series.append(tracked_weights(model))
        steps.append(step)
    final = model
    stats = rank1_analysis(w0, series, steps)

    rank1 = load(checkpoints(args.out)[-1][1])
    params = dict(rank1.named_parameters())
    with torch.no_grad():
        for name, st in stats.items():  # W0 + (||dW|| / s1) s1 u1 v1^T
            params[name].copy_(w0[name] + st["fro"] * torch.outer(st["u"], st["v"]))

    acc0, acc_t = curve[0][1], curve[-1][1]
    acc_r1, lp_r1, _ = evaluate(rank1, tok, heldout)
    cats0 = by_category(heldout, evaluate(base, tok, heldout)[2])
    cats_t = by_category(heldout, evaluate(final, tok, heldout)[2])
    shares = torch.tensor([s["share"] for s in stats.values()])
    r2s = torch.tensor([s["r2"] for s in stats.values()])
    sub = heldout[: args.greedy]
    summary = {
        "regime": args.regime,
        "lr": args.lr,
        "prompts": args.prompts,
        "steps": args.steps,
        "sec_per_step": round(sec_per_step, 3),
        "curve": [{"step": s, "acc": round(a, 4), "logprob": round(lp, 4)} for s, a, lp in curve],
        "per_category": {c: [round(cats0[c], 3), round(cats_t[c], 3)] for c in cats0},
        "rank1_share_mean": shares.mean().item(),
        "rank1_share_range": [shares.min().item(), shares.max().item()],
        "linear_r2_mean": r2s.mean().item(),
        "linear_r2_range": [r2s.min().item(), r2s.max().item()],
        "rank1_model_acc": acc_r1,
        "rank1_model_logprob": lp_r1,
        "gain_kept_by_rank1": (acc_r1 - acc0) / (acc_t - acc0) if acc_t != acc0 else None,
        "greedy_vs_teacher_forced": {
            "base": [greedy_accuracy(base, tok, task, sub), evaluate(base, tok, sub)[0]],
            "final": [greedy_accuracy(final, tok, task, sub), evaluate(final, tok, sub)[0]],
        },
        "off_task_sort_acc": {
            "base": evaluate(base, tok, off_task)[0],
            "final": evaluate(final, tok, off_task)[0],
            "rank1": evaluate(rank1, tok, off_task)[0],
        },
    }
    report(summary, stats)
    tmp = Path(tempfile.mkstemp(dir=args.out, suffix=".json")[1])
    tmp.write_text(json.dumps(summary, indent=2) + "\n")
    os.replace(tmp, args.out / "probe.json")


def report(summary: dict, stats: dict) -> None:
    s = summary
    print(
        f"\n== {s['regime']}: lr {s['lr']:g}, {s['prompts']} prompts/step, {s['steps']} steps, "
        f"{s['sec_per_step']:.2f} s/step"
    )
    print("step  heldout_acc  mean_logprob")
    for row in s["curve"]:
        print(f"{row['step']:>4}  {row['acc']:>11.3f}  {row['logprob']:>12.3f}")
    print(
        "category  base -> final: "
        + ", ".join(f"{c} {a:.2f}->{b:.2f}" for c, (a, b) in s["per_category"].items())
    )
    print(f"{'matrix':<40} {'share':>6} {'R^2':>6}")
    for name, st in stats.items():
        print(f"{name.removeprefix('model.'):<40} {st['share']:>6.2f} {st['r2']:>6.2f}")
    lo, hi = s["rank1_share_range"]
    print(
        f"rank-1 share mean {s['rank1_share_mean']:.2f} [{lo:.2f}, {hi:.2f}]; linear R^2 mean "
        f"{s['linear_r2_mean']:.2f} [{s['linear_r2_range'][0]:.2f}, {s['linear_r2_range'][1]:.2f}]"
    )
    kept = s["gain_kept_by_rank1"]
    print(
        f"full-norm rank-1 model: acc {s['rank1_model_acc']:.3f} (gain kept "
        f"{'n/a' if kept is None else f'{100 * kept:.0f}%'}), logprob {s['rank1_model_logprob']:.3f}"
    )
    print(f"greedy vs teacher-forced on a subset: {s['greedy_vs_teacher_forced']}")
    print(f"off-task sort accuracy: {s['off_task_sort_acc']}")


if __name__ == "__main__":
    main()
