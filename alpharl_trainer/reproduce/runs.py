"""The RL runs of the suite: one full run per spec (checkpoints + per-step training reward), and short
fine-tunes that resume a full run's window-end checkpoint with predicted weights swapped in.

A fine-tune resumes the *whole* trainer state of the window-end checkpoint (Adam moments, scheduler,
RNG, data position) with only the model weights replaced, then trains `finetune_steps` more steps. That
is exactly what the in-run AlphaRL callback does at its window end (swap, keep the optimizer state,
train on), so "default + fine-tune" measures the product's path, and the full run's checkpoint at the
same step is the truncated run at the same budget: the two differ only by the swap.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import PrinterCallback, TrainerCallback

from alpharl_trainer.atomic import atomic_file
from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.reproduce.config import RunSpec, Suite

RUN_FILE = "run.json"
COMPLETION_LENGTH = 8  # answers of both tasks are at most 7 characters + EOS
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


def _trainer(spec: RunSpec, suite: Suite, model_path: Path, output_dir: Path, max_steps: int, callbacks=()):
    """The algorithm's tiny recipe (`recipes/tiny/<loss>.yaml`: its loss settings) with the suite's regime
    and budget, AlphaRL off (the suite applies every method offline, from the run's checkpoints). beta 0
    everywhere: no reference model on CPU (the paper's GRPO/RLOO used a 0.001 KL loss; DAPO none)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from alpharl_trainer import recipe
    from alpharl_trainer.tasks import get_task, to_dataset
    from alpharl_trainer.tasks.rewards import task_reward

    regime = suite.regimes[spec.regime]
    script, config = recipe.parse(
        ["--config", str(RECIPES / f"{spec.loss}.yaml")],
        output_dir=str(output_dir),
        max_steps=max_steps,
        per_device_train_batch_size=regime.prompts * regime.generations,
        num_generations=regime.generations,
        max_completion_length=COMPLETION_LENGTH,
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
        save_strategy="no",  # _SaveAt decides
        logging_steps=1,
        disable_tqdm=True,
        seed=spec.seed,
        alpharl=False,
    )
    task = get_task(spec.task, mix="rl")
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    tokenizer.padding_side = "left"
    trainer = recipe.build_trainer(
        script,
        config,
        model=AutoModelForCausalLM.from_pretrained(model_path),
        tokenizer=tokenizer,
        data=(to_dataset(task, "train", suite.steps * regime.prompts, seed=spec.seed), None, task),
        reward_funcs=[task_reward(task)],
        callbacks=list(callbacks),
    )
    trainer.remove_callback(PrinterCallback)  # per-step log dicts would drown the suite's own progress lines
    return trainer


def _checkpoints(folder: Path) -> dict[int, Path]:
    return {int(p.name.split("-")[1]): p for p in folder.glob("checkpoint-*") if p.name[11:].isdigit()}


def train_full(spec: RunSpec, suite: Suite, base: Path, folder: Path) -> FullRun:
    """The full run of `spec` into `folder`; a folder holding a finished run (its `run.json`) is reused,
    so an interrupted suite resumes where it stopped. An unfinished folder is started over."""
    record = folder / RUN_FILE
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


def finetune(
    spec: RunSpec, suite: Suite, run: FullRun, step: int, weights: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Resume the full run's checkpoint at `step` with `weights` swapped in; train `suite.finetune_steps`
    steps; return the resulting weights (same names as `weights`)."""
    source = run.checkpoints[step]
    tmp = Path(tempfile.mkdtemp(dir=run.folder, prefix=f".finetune-{step}-"))
    try:
        start = tmp / f"checkpoint-{step}"
        shutil.copytree(source, start)
        save_file(
            {k: v.contiguous() for k, v in weights.items()}, start / "model.safetensors", {"format": "pt"}
        )
        trainer = _trainer(spec, suite, run.base, tmp, step + suite.finetune_steps)
        trainer.train(resume_from_checkpoint=str(start))
        state = trainer.model.state_dict()
        return {k: state[k].detach().clone() for k in weights}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
