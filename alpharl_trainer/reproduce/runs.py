"""The RL runs of the suite, both from the algorithm's tiny recipe (`recipes/tiny/<loss>.yaml`) with the
suite's regime and budget: one full run per spec (AlphaRL off, checkpoints at the steps the methods read,
per-step training reward), and per window one product run, `alpharl train` itself on the same recipe with
AlphaRL on.

The product run is the `default` cell: its callback records the rank-1 trajectory in-run, forecasts at the
window end, scores W_K and every candidate with its own gate on the suite's held-out problems (greedy, a
margin in paired standard errors fixed in advance), hot-swaps the winner or keeps W_K, fine-tunes
`finetune_steps` with the run's own optimizer state and stops. Its data, seed and schedule are the full
run's, so until the window end it trains the same weights (the report checks it: the gate's score of W_K
must equal the suite's held-out score of the full run's checkpoint), and the full run's checkpoint at the
same step is the truncated run at the same budget.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from safetensors.torch import load_file
from transformers import PrinterCallback, TrainerCallback

from alpharl_trainer.atomic import atomic_file
from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.reproduce.config import RunSpec, Suite
from alpharl_trainer.reproduce.evaluation import completion_length

RUN_FILE = "run.json"
RECIPES = Path(__file__).resolve().parents[2] / "recipes" / "tiny"


@dataclass
class FullRun:
    folder: Path
    base: Path
    checkpoints: dict[int, Path]
    rewards: dict[int, float]
    """Mean training reward of each optimizer step (logged by TRL)."""
    seconds: float

    def reward_covariate(self, steps: list[int]) -> list[float]:
        """Per checkpoint step, the mean training reward of the steps since the previous one: what the
        in-run callback records as its reward covariate (known at that step)."""
        out, prev = [], 0
        for step in steps:
            values = [self.rewards[s] for s in range(prev + 1, step + 1) if s in self.rewards]
            if not values:
                raise AlphaRLError(f"{self.folder}: no training reward logged for steps {prev + 1}..{step}")
            out.append(sum(values) / len(values))
            prev = step
        return out


class _SaveAt(TrainerCallback):
    """Checkpoint at exactly the given steps (the suite's steps are not one regular interval)."""

    def __init__(self, steps: list[int]):
        self.steps = set(steps)

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step in self.steps:
            control.should_save = True


def recipe_settings(spec: RunSpec, suite: Suite, max_steps: int) -> dict:
    """What the suite sets on top of the algorithm's tiny recipe (its loss settings): the regime, the budget,
    the data (the train split of the regime's mix seeded by the run's seed, and the suite's held-out
    problems), AlphaRL off. beta 0 everywhere: no reference model on CPU (the paper's GRPO/RLOO used a
    0.001 KL loss; DAPO none)."""
    regime = suite.regimes[spec.regime]
    recipe = yaml.safe_load((RECIPES / f"{spec.loss}.yaml").read_text())
    # DAPO's soft overlong penalty ramps over the last `overlong_buffer` tokens: put them after the longest
    # answer, so a right answer of full length is never punished
    overlong = recipe.get("overlong_buffer", 0) if "overlong" in recipe.get("rewards", []) else 0
    return dict(
        task=spec.task,
        task_mix=regime.mix,
        task_seed=spec.seed,
        train_size=suite.steps * regime.prompts,
        eval_size=suite.eval.heldout_problems,
        report_test_size=0,  # the suite scores every model itself
        max_steps=max_steps,
        per_device_train_batch_size=regime.prompts * regime.generations,
        num_generations=regime.generations,
        max_completion_length=completion_length(spec.task) + overlong,
        temperature=1.0,
        learning_rate=regime.learning_rate,
        lr_scheduler_type="constant",
        warmup_steps=0,
        weight_decay=0.0,
        beta=0.0,
        use_cpu=True,
        bf16=False,
        activation_checkpointing=False,
        dataloader_num_workers=0,
        report_to="none",
        logging_steps=1,
        disable_tqdm=True,
        seed=spec.seed,
        torch_threads=suite.threads,
        alpharl=False,
    )


def gate_scoring(rewards: list[str]) -> str:
    """The product gate's scoring for a recipe's rewards: greedy outcomes read teacher-forced where the
    reward is the task's exact answer alone, else generated (DAPO's overlong penalty also scores the
    completion's length, which a gold completion does not show)."""
    return "exact_greedy" if list(rewards) == ["task"] else "greedy"


def product_settings(suite: Suite, end: int, finetune_steps: int) -> dict:
    """AlphaRL as a user of the recipe would switch it on for a window ending at step `end`: snapshots at
    the suite's checkpoint interval, the suite's horizons and candidate families as the gate's portfolio, the
    gate greedy on the suite's held-out problems with the suite's margin, then `finetune_steps` steps and
    stop."""
    return dict(
        alpharl=True,
        alpharl_interval=suite.checkpoint_every,
        alpharl_window_end=float(end),
        alpharl_fit="linear",
        alpharl_covariate="step",
        alpharl_horizons=list(suite.methods.horizons),
        alpharl_mode="rank1_replace",
        alpharl_scale=1.0,
        alpharl_candidates=list(suite.methods.candidates),
        alpharl_basis_ranks=list(suite.methods.fixed_basis_ranks),
        alpharl_basis_profile="saturating",
        alpharl_expo_factors=list(suite.methods.expo_factors),
        alpharl_average_snapshots=suite.methods.lawa_k,
        alpharl_acceptance_prompts=suite.eval.heldout_problems,
        alpharl_acceptance_scoring="exact_greedy",  # greedy's outcomes without generating (task reward only)
        alpharl_acceptance_margin=0.0,
        alpharl_acceptance_margin_se=suite.methods.margin_se,
        alpharl_finetune_steps=finetune_steps,
        alpharl_continue_after_swap=False,
        alpharl_optimizer_state="keep",
        save_strategy="steps",
        save_steps=suite.steps,  # no regular checkpoint: the callback saves at the swap and at the stop
        save_only_model=False,
    )


def _trainer(spec: RunSpec, suite: Suite, model_path: Path, output_dir: Path, max_steps: int, callbacks=()):
    """The full run's trainer: the recipe with `recipe_settings`, built the way `alpharl train` builds it."""
    from alpharl_trainer import recipe

    script, config = recipe.parse(
        ["--config", str(RECIPES / f"{spec.loss}.yaml")],
        **recipe_settings(spec, suite, max_steps),
        model_name_or_path=str(model_path),
        output_dir=str(output_dir),
        save_strategy="no",  # _SaveAt decides
        save_only_model=True,  # the methods read weights only; the product run trains its own optimizer
    )
    trainer = recipe.build_trainer(script, config, callbacks=list(callbacks))
    trainer.remove_callback(PrinterCallback)  # per-step log dicts would drown the suite's own progress lines
    return trainer


def _checkpoints(folder: Path) -> dict[int, Path]:
    return {int(p.name.split("-")[1]): p for p in folder.glob("checkpoint-*") if p.name[11:].isdigit()}


def train_full(spec: RunSpec, suite: Suite, base: Path, folder: Path) -> FullRun:
    """The full run of `spec` into `folder`; a folder holding a finished run (its `run.json`) is reused,
    so an interrupted suite resumes where it stopped. An unfinished folder is started over."""
    record = folder / RUN_FILE
    if record.is_file() and set(suite.save_steps()) - set(_checkpoints(folder)):
        record.unlink()  # a finished run that lacks a checkpoint the suite now reads: train it again
    if record.is_file():
        meta = json.loads(record.read_text())
        return FullRun(
            folder,
            Path(meta["base"]),
            _checkpoints(folder),
            {int(k): v for k, v in meta["rewards"].items()},
            meta["seconds"],
        )
    if folder.exists():
        shutil.rmtree(folder)
    trainer = _trainer(spec, suite, base, folder, suite.steps, [_SaveAt(suite.save_steps())])
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    rewards = {int(h["step"]): float(h["reward"]) for h in trainer.state.log_history if "reward" in h}
    missing = sorted(set(suite.save_steps()) - set(_checkpoints(folder)))
    if missing:
        raise AlphaRLError(f"{folder}: the run did not save checkpoints at steps {missing}")
    with atomic_file(record) as tmp:  # written last: marks the run finished
        tmp.write_text(json.dumps({"base": str(base), "rewards": rewards, "seconds": seconds}) + "\n")
    return FullRun(folder, base, _checkpoints(folder), rewards, seconds)


@dataclass
class ProductRun:
    """What `alpharl train` produced for one window: the weights right after its decision (the swap, or
    W_K kept), the weights after its fine-tune, and the decision as its summary records it."""

    window: dict[str, torch.Tensor]
    finetuned: dict[str, torch.Tensor]
    swap: dict
    seconds: float
    rewards: list[str]
    """The recipe's reward functions: the gate scores with them (with `task` alone, its score is accuracy)."""
    swaps: list[dict]
    """Every jump's decision (one, unless `jumps` > 1)."""


def product_run(
    spec: RunSpec, suite: Suite, run: FullRun, end: int, finetune_steps: int, jumps: int = 1
) -> ProductRun:
    """`alpharl train RECIPE` for the window ending at `end` (a subprocess, exactly the command line), its
    recipe written beside the run as `product-<end>.yaml` (`product-<end>-x<jumps>.yaml` with repeated
    jumps, the last at `jumps * end`); its log beside it. The run's folder is temporary: only the two weight
    sets (at the last jump, and at the stop) and the decisions are kept (in the suite's results)."""
    settings = {
        **yaml.safe_load((RECIPES / f"{spec.loss}.yaml").read_text()),
        **recipe_settings(spec, suite, suite.steps),
        **product_settings(suite, end, finetune_steps),
        "alpharl_jumps": jumps,
        "model_name_or_path": str(run.base.resolve()),
    }
    settings["alpharl_acceptance_scoring"] = gate_scoring(settings["rewards"])
    name = f"product-{end}" if jumps == 1 else f"product-{end}-x{jumps}"
    recipe_file, log_file = run.folder / f"{name}.yaml", run.folder / f"{name}.log"
    last = jumps * end
    with tempfile.TemporaryDirectory(dir=run.folder, prefix=f".product-{end}-") as tmp_out:
        out = Path(tmp_out)
        settings["output_dir"] = str(out)
        with atomic_file(recipe_file) as tmp:
            tmp.write_text(
                f"# alpharl train {recipe_file.name}: {spec.name}, window end {end} (written by the suite)\n"
                + yaml.safe_dump(settings, sort_keys=False)
            )
        start = time.perf_counter()
        with open(log_file, "w") as log:
            done = subprocess.run(
                [sys.executable, "-m", "alpharl_trainer", "train", str(recipe_file)],
                stdout=log,
                stderr=subprocess.STDOUT,
                check=False,
            )
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            raise AlphaRLError(f"alpharl train {recipe_file} failed (exit {done.returncode}); see {log_file}")
        summary = json.loads((out / "alpharl" / "summary.json").read_text())
        window = load_file(str(out / f"checkpoint-{last}" / "model.safetensors"))
        finetuned = load_file(str(out / "model.safetensors"))
        if summary.get("steps") != last + finetune_steps or summary.get("swap") is None:
            raise AlphaRLError(f"{log_file}: no decision at step {last} followed by its fine-tune and a stop")
    swaps = summary.get("swaps") or [summary["swap"]]
    return ProductRun(window, finetuned, summary["swap"], seconds, list(settings["rewards"]), swaps)
