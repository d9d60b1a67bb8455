"""The real-model suite (`make real`, `alpharl reproduce-real`): the product on a pretrained model, paired
against the truncated and the full run over seeds, and the paper's diagnostics from the product's own tools.

Per seed, from one recipe (`recipes/real/grpo.yaml`):
- the **full run**: the recipe with AlphaRL off to `max_steps` (T), checkpoints kept at every window end and
  at the curve's steps; its checkpoint at a window end is the **truncated run** at that budget (the schedule
  is constant, so stopping early changes nothing before it);
- per window, the **product run**: `alpharl train RECIPE --alpharl_window_end K` as a user runs it (a
  subprocess, exactly the command line): snapshots every step, the gate, the swap or W_K kept, then stop.
  Until K it trains the full run's weights (same seed, data and schedule); the gate's score of W_K is checked
  against the suite's held-out score of the full run's checkpoint K.
Every model is scored greedily on the same distinct test problems (chat task, verifier), per problem, and on
off-task problems (word problems, never trained). Diagnostics on one seed: `alpharl analyze` over the full
run's checkpoints, the rank-1-only model of the final update against a random rank-1 control of the same
size, and `alpharl predict` from the 40% window to T against the real checkpoint at T.

Runs, products and scores are cached under `work_dir`, so an interrupted suite finishes where it stopped.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml
from safetensors.torch import load_file
from transformers import PrinterCallback

from alpharl_trainer.atomic import atomic_file
from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.reproduce.runs import _SaveAt


@dataclass(frozen=True)
class RealSuite:
    """What the real-model suite runs (`recipes/reproduce/real.yaml`)."""

    recipe: Path = Path("recipes/real/grpo.yaml")
    """The product's recipe: the full runs use it with AlphaRL off, the product runs as it is."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Each seed sets the run's `seed` and `task_seed` (sampling, data order, held-out prompts)."""
    windows: tuple[float, ...] = (0.1, 0.25, 0.4)
    """Window ends as shares of T, rounded to a step."""
    curve_steps: tuple[int, ...] = ()
    """More full-run checkpoints scored for the accuracy curve (and read by the diagnostics)."""
    test_problems: int = 300
    """Test problems drawn (test split, seed 0), duplicates dropped: the same for every model and seed."""
    off_task_problems: int = 100
    off_task_mix: str = "word"
    diagnostics_seed: int = 0
    out: Path = Path("results/real")
    work_dir: Path = Path(".cache/real")
    threads: int = 2

    def steps(self) -> int:
        return int(self._recipe()["max_steps"])

    def window_steps(self) -> list[int]:
        return [max(1, round(f * self.steps())) for f in self.windows]

    def save_steps(self) -> list[int]:
        return sorted({*self.window_steps(), *self.curve_steps, self.steps()})

    def _recipe(self) -> dict:
        return yaml.safe_load(Path(self.recipe).read_text())


def load_real_suite(path: str | Path) -> RealSuite:
    path = Path(path)
    if not path.is_file():
        raise AlphaRLError(f"suite recipe {path} does not exist")
    raw = yaml.safe_load(path.read_text()) or {}
    known = {f.name for f in dataclasses.fields(RealSuite)}
    if set(raw) - known:
        raise AlphaRLError(f"{path}: unknown keys {sorted(set(raw) - known)} (known: {sorted(known)})")
    for key in ("seeds", "windows", "curve_steps"):
        if key in raw:
            raw[key] = tuple(raw[key])
    for key in ("recipe", "out", "work_dir"):
        if key in raw:
            raw[key] = Path(raw[key])
    suite = RealSuite(**raw)
    if not all(0 < f < 1 for f in suite.windows):
        raise AlphaRLError(f"{path}: windows must be fractions in (0, 1), got {suite.windows}")
    if not suite.recipe.is_file():
        raise AlphaRLError(f"{path}: recipe {suite.recipe} does not exist")
    return suite


# ---- runs ------------------------------------------------------------------------------------------------


def _log(message: str) -> None:
    print(f"[real {time.strftime('%H:%M:%S')}] {message}", flush=True)


def full_run(suite: RealSuite, seed: int, folder: Path) -> dict:
    """The full run of `seed` into `folder` (cached by its `run.json`, written last)."""
    from alpharl_trainer import recipe

    record = folder / "run.json"
    if record.is_file():
        return json.loads(record.read_text())
    if folder.exists():
        shutil.rmtree(folder)
    script, config = recipe.parse(
        ["--config", str(suite.recipe)],
        alpharl=False,
        seed=seed,
        task_seed=seed,
        output_dir=str(folder),
        save_strategy="no",  # _SaveAt decides
        save_only_model=True,
        report_to="none",
        disable_tqdm=True,
    )
    trainer = recipe.build_trainer(script, config, callbacks=[_SaveAt(suite.save_steps())])
    trainer.remove_callback(PrinterCallback)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    logs = [h for h in trainer.state.log_history if "reward" in h]
    meta = {
        "seed": seed,
        "seconds": seconds,
        "steps": trainer.state.global_step,
        "rewards": {int(h["step"]): float(h["reward"]) for h in logs},
        "step_seconds": {int(h["step"]): float(h["step_time"]) for h in logs if "step_time" in h},
    }
    with atomic_file(record) as tmp:
        tmp.write_text(json.dumps(meta, indent=1) + "\n")
    return meta


def product_run(suite: RealSuite, seed: int, end: int, folder: Path) -> dict:
    """`alpharl train RECIPE --seed S --task_seed S --alpharl_window_end K` into `folder` (cached by its
    summary); its output in `folder.log`. Returns the summary with the wall time."""
    summary_file = folder / "alpharl" / "summary.json"
    record = folder.with_suffix(".json")
    if record.is_file() and (folder / "model.safetensors").is_file():
        return json.loads(record.read_text())
    if folder.exists():
        shutil.rmtree(folder)
    command = [
        sys.executable, "-m", "alpharl_trainer", "train", str(suite.recipe),
        "--seed", str(seed), "--task_seed", str(seed), "--alpharl_window_end", str(end),
        "--output_dir", str(folder), "--save_strategy", "no", "--torch_threads", str(suite.threads),
    ]  # fmt: skip
    log = folder.with_suffix(".log")
    start = time.perf_counter()
    with open(log, "w") as handle:
        done = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise AlphaRLError(f"{' '.join(command)} failed (exit {done.returncode}); see {log}")
    summary = json.loads(summary_file.read_text())
    if summary.get("swap") is None or summary["steps"] != end:
        raise AlphaRLError(f"{log}: no decision at step {end} followed by a stop")
    record_data = {"command": " ".join(command[1:]), "seconds": seconds, "summary": summary}
    with atomic_file(record) as tmp:
        tmp.write_text(json.dumps(record_data, indent=1) + "\n")
    return record_data


# ---- scoring ---------------------------------------------------------------------------------------------


@dataclass
class Scorer:
    """One model object; each weight set is written into it and scored greedily (cached per name)."""

    base: Path
    suite: RealSuite
    cache: Path
    model: object = None
    tokenizer: object = None
    problems: list = field(default_factory=list)
    off_task: list = field(default_factory=list)

    def __post_init__(self) -> None:
        from alpharl_trainer.evaluate import load_folder
        from alpharl_trainer.tasks import get_task

        recipe = self.suite._recipe()
        self.max_new_tokens = int(recipe["max_completion_length"])
        self.task = get_task(recipe["task"], mix=recipe.get("task_mix", "rl"))
        self.off_task_task = get_task(recipe["task"], mix=self.suite.off_task_mix)
        self.problems = distinct(self.task.problems("test", self.suite.test_problems, seed=0))
        self.off_task = distinct(self.off_task_task.problems("test", self.suite.off_task_problems, seed=0))
        self.model, self.tokenizer = load_folder(self.base, dtype="float32", device="cpu")
        self.initial = {k: v.clone() for k, v in self.model.state_dict().items()}

    def load(self, weights: dict[str, torch.Tensor]) -> None:
        state = self.model.state_dict()
        unknown = [k for k in weights if k not in state]
        if unknown:
            raise AlphaRLError(f"weights do not match the model: unknown {unknown[:3]}")
        with torch.no_grad():
            for name, value in {**self.initial, **weights}.items():
                state[name].copy_(value)

    def _greedy(self, problems: list) -> list[int]:
        from alpharl_trainer.evaluate import greedy_exact

        scores = greedy_exact(self.model, self.tokenizer, self.task, problems, self.max_new_tokens, chat=True)
        return [int(x) for x in scores["exact_per_problem"]]

    def score(self, name: str, weights: dict[str, torch.Tensor] | Path) -> dict:
        """Per-problem greedy outcomes on the test and off-task problems, cached as `cache/name.json`."""
        path = self.cache / f"{name}.json"
        if path.is_file():
            return json.loads(path.read_text())
        start = time.perf_counter()
        self.load(load_file(str(weights)) if isinstance(weights, Path) else weights)
        result = {
            "test": self._greedy(self.problems),
            "off_task": self._greedy(self.off_task),
            "seconds": time.perf_counter() - start,
        }
        self.cache.mkdir(parents=True, exist_ok=True)
        with atomic_file(path) as tmp:
            tmp.write_text(json.dumps(result) + "\n")
        _log(
            f"scored {name}: test {sum(result['test']) / len(result['test']):.3f} ({result['seconds']:.0f} s)"
        )
        return result

    def heldout(self, weights: Path, seed: int, n: int) -> float:
        """Greedy accuracy on the first `n` held-out prompts of `seed`: what the product's gate scored."""
        self.load(load_file(str(weights)))
        outcomes = self._greedy(self.task.problems("heldout", n, seed))
        return sum(outcomes) / len(outcomes)


def distinct(problems: list) -> list:
    seen, out = set(), []
    for p in problems:
        if p.prompt not in seen:
            seen.add(p.prompt)
            out.append(p)
    return out


# ---- diagnostics -----------------------------------------------------------------------------------------


def rank1_models(base: Path, final: Path, seed: int = 0) -> tuple[dict, dict]:
    """`W_0 + s1 u1 v1^T` of every tracked matrix's update (the rank-1-only model) and the control
    `W_0 + s1 x y^T` with random unit x, y (the same size in every matrix, no direction)."""
    from alpharl_trainer.extrapolation.rank1 import top_singular
    from alpharl_trainer.extrapolation.select import ParamSelector

    w0, wt = load_file(str(base / "model.safetensors")), load_file(str(final))
    tracked = ParamSelector()
    gen = torch.Generator().manual_seed(seed)
    rank1, control = {}, {}
    for name, before in w0.items():
        if not tracked(name, before.shape):
            continue
        top = top_singular(wt[name].float() - before.float(), name=name)
        rank1[name] = before + top.s * torch.outer(top.u, top.v)
        x = torch.randn(before.shape[0], generator=gen)
        y = torch.randn(before.shape[1], generator=gen)
        control[name] = before + top.s * torch.outer(x / x.norm(), y / y.norm())
    return rank1, control


def run_cli(args: list[str], log: Path) -> None:
    with open(log, "w") as handle:
        done = subprocess.run(
            [sys.executable, "-m", "alpharl_trainer", *args], stdout=handle, stderr=subprocess.STDOUT
        )
    if done.returncode != 0:
        raise AlphaRLError(f"alpharl {' '.join(args)} failed; see {log}")


def run_real_suite(suite: RealSuite, runs_only: bool = False) -> dict | None:
    """Train every seed's full and product runs, then (unless `runs_only`) score every model and run the
    diagnostics; returns what the report needs. Seeds may train in separate processes (`runs_only` with
    one seed each): the caches join them."""
    from alpharl_trainer.policies import resolve_policy

    torch.set_num_threads(suite.threads)
    base = resolve_policy(suite._recipe()["model_name_or_path"])
    work = suite.work_dir
    work.mkdir(parents=True, exist_ok=True)
    runs, products = {}, {}
    for seed in suite.seeds:
        _log(f"seed {seed}: full run to step {suite.steps()} (checkpoints at {suite.save_steps()})")
        runs[seed] = full_run(suite, seed, work / f"s{seed}" / "full")
        for end in suite.window_steps():
            _log(f"seed {seed}: product run, window end {end}")
            products[seed, end] = product_run(suite, seed, end, work / f"s{seed}" / f"product-{end}")
    if runs_only:
        return None
    scorer = Scorer(base, suite, work / "scores")
    scores = {"base": scorer.score("base", {})}
    checks = {}
    for seed in suite.seeds:
        full = work / f"s{seed}" / "full"
        for step in suite.save_steps():
            weights = full / f"checkpoint-{step}" / "model.safetensors"
            scores[f"s{seed}/full@{step}"] = scorer.score(f"s{seed}-full-{step}", weights)
        for end in suite.window_steps():
            weights = work / f"s{seed}" / f"product-{end}" / "model.safetensors"
            scores[f"s{seed}/product@{end}"] = scorer.score(f"s{seed}-product-{end}", weights)
            gate = products[seed, end]["summary"]["swap"]["scores"].get("current")
            window = full / f"checkpoint-{end}" / "model.safetensors"
            checks[f"s{seed}@{end}"] = {
                "gate_current": gate,
                "suite_heldout": scorer.heldout(window, seed, _gate_prompts(suite)),
            }
    analysis = diagnose(suite, base, scorer, scores)
    return {"runs": runs, "products": products, "scores": scores, "checks": checks, "analysis": analysis}


def _gate_prompts(suite: RealSuite) -> int:
    recipe = suite._recipe()
    return min(int(recipe["alpharl_acceptance_prompts"]), int(recipe["eval_size"]))


def diagnose(suite: RealSuite, base: Path, scorer: Scorer, scores: dict) -> dict:
    """The paper's diagnostics on the diagnostics seed, from the product's own tools."""
    seed, T = suite.diagnostics_seed, suite.steps()
    full = suite.work_dir / f"s{seed}" / "full"
    out = suite.out / "analysis"
    steps = suite.save_steps()
    if not (out / "analysis.json").is_file():
        _log("alpharl analyze over the full run's checkpoints")
        run_cli(
            ["analyze", "--base", str(base), "--checkpoints", *[str(full / f"checkpoint-{s}") for s in steps],
             "--out", str(out), "--overwrite", "--quiet"],
            suite.work_dir / "analyze.log",
        )  # fmt: skip
    final = full / f"checkpoint-{T}" / "model.safetensors"
    if f"s{seed}/rank1-only@{T}" not in scores:
        rank1, control = rank1_models(base, final)
        scores[f"s{seed}/rank1-only@{T}"] = scorer.score(f"s{seed}-rank1-only-{T}", rank1)
        scores[f"s{seed}/random-rank1@{T}"] = scorer.score(f"s{seed}-random-rank1-{T}", control)
    window = max(suite.window_steps())
    predicted = suite.work_dir / f"s{seed}" / f"predict-{window}-to-{T}"
    if not (predicted / "model.safetensors").is_file():
        _log(f"alpharl predict from the window ending at {window} to step {T}")
        window_ckpts = [s for s in steps if s <= window]
        run_cli(
            ["predict", "--base", str(base),
             "--checkpoints", *[str(full / f"checkpoint-{s}") for s in window_ckpts],
             "--target-step", str(T), "--out", str(predicted), "--overwrite"],
            suite.work_dir / "predict.log",
        )  # fmt: skip
    scores[f"s{seed}/predict@{window}->{T}"] = scorer.score(
        f"s{seed}-predict-{window}-{T}", predicted / "model.safetensors"
    )
    return json.loads((out / "analysis.json").read_text())
