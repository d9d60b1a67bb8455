"""Train entry point: one YAML recipe configures a whole run (task, rewards, TRL trainer, AlphaRL).

    alpharl train recipes/tiny/grpo.yaml [--learning_rate 1e-5 ...]
    accelerate launch --config_file configs/ddp.yaml -m alpharl_trainer.train --config recipes/tiny/grpo.yaml

The recipe's `trainer` key picks the TRL trainer (`grpo` also covers DAPO, Dr. GRPO and GSPO through
GRPOConfig's loss settings; `rloo`); every other key is a field of `ScriptArguments` below or of the
trainer's config (TRL's config plus the `alpharl_*` fields of `AlphaRLConfig`). Command-line flags
override the recipe. `--dry-run` resolves and checks the whole run (batch arithmetic, AlphaRL window, memory
per GPU) and exits before loading any weights (alpharl_trainer/plan.py).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from alpharl_trainer.errors import AlphaRLError

logger = logging.getLogger("alpharl_trainer.train")

TRAINERS = ("grpo", "rloo", "ppo")
REWARDS = ("task", "math_accuracy", "format", "overlong")


@dataclass
class ScriptArguments:
    trainer: str = field(
        default="grpo",
        metadata={
            "help": "Trainer: 'grpo' (also DAPO/Dr.GRPO/GSPO by loss settings), 'rloo', or 'ppo' "
            "(PPO with a critic)."
        },
    )
    model_name_or_path: str = field(
        default="tiny",
        metadata={
            "help": "Policy: a local Hugging Face model folder, or 'tiny' for the project's cached tiny SFT "
            "policy (built on first use, a few minutes on CPU). Nothing is downloaded."
        },
    )
    task: str = field(
        default="arithmetic",
        metadata={
            "help": "A synthetic task name (arithmetic, sort) or a path to a benchmark-style JSONL file."
        },
    )
    task_mix: str = field(
        default="rl", metadata={"help": "Synthetic tasks: the problem mix to train on (e.g. 'rl', 'all')."}
    )
    train_size: int = field(default=4096, metadata={"help": "Training prompts drawn from the train split."})
    eval_size: int = field(
        default=256,
        metadata={
            "help": "Held-out prompts (eval_dataset): the AlphaRL acceptance gate scores candidates on them."
        },
    )
    task_seed: int = field(default=0, metadata={"help": "Seed of the task generators."})
    rewards: list[str] = field(
        default_factory=lambda: ["task"],
        metadata={
            "help": "Reward functions: 'task' (exact answer of the synthetic task), 'math_accuracy' "
            "(math-verify), 'format', 'overlong' (DAPO soft overlong penalty, see overlong_buffer)."
        },
    )
    overlong_buffer: int = field(
        default=0,
        metadata={"help": "DAPO overlong penalty: length of the soft buffer before max_completion_length."},
    )
    report_test_size: int = field(
        default=0,
        metadata={
            "help": "Synthetic tasks: after training, score the base and the final policy on this many "
            "test-split problems (teacher-forced exact match, which equals greedy decoding here) and "
            "report both."
        },
    )
    auto_resume: bool = field(
        default=True,
        metadata={"help": "Resume from the last checkpoint in output_dir when there is one (requeue-safe)."},
    )


def _config_class(trainer: str):
    from alpharl_trainer.trainer.config import AlphaRLGRPOConfig, AlphaRLRLOOConfig
    from alpharl_trainer.trainer.ppo_config import AlphaRLPPOConfig

    if trainer not in TRAINERS:
        raise AlphaRLError(f"unknown trainer {trainer!r}; choose from {', '.join(TRAINERS)}")
    return {"grpo": AlphaRLGRPOConfig, "rloo": AlphaRLRLOOConfig, "ppo": AlphaRLPPOConfig}[trainer]


def parse(argv: list[str]):
    """(ScriptArguments, trainer config) from `--config RECIPE.yaml` plus command-line overrides."""
    from trl import TrlParser

    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config")
    pre.add_argument("--trainer")
    known, _ = pre.parse_known_args(argv)
    trainer = known.trainer
    if trainer is None and known.config:
        if not Path(known.config).is_file():
            raise AlphaRLError(f"recipe {known.config} does not exist")
        trainer = (yaml.safe_load(Path(known.config).read_text()) or {}).get("trainer")
    parser = TrlParser((ScriptArguments, _config_class(trainer or "grpo")))
    script, config = parser.parse_args_and_config(argv)
    return script, config


def load_policy(script: ScriptArguments):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = script.model_name_or_path
    if path == "tiny":
        from alpharl_trainer.tiny import ensure_tiny_model

        path = str(ensure_tiny_model())
    if not Path(path).is_dir():
        raise AlphaRLError(f"model folder {path} does not exist (nothing is downloaded: give a local folder)")
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(path, dtype="auto")
    return model, tokenizer


def build_data(script: ScriptArguments):
    """(train dataset, held-out dataset, task or None) in TRL's prompt format."""
    from alpharl_trainer.tasks import TASKS, get_task, to_dataset

    if script.task in TASKS:
        task = get_task(script.task, mix=script.task_mix)
        train = to_dataset(task, "train", script.train_size, script.task_seed)
        heldout = to_dataset(task, "heldout", script.eval_size, script.task_seed)
        return train, heldout, task
    from alpharl_trainer.tasks.benchmarks import benchmark_dataset, load_benchmark

    data = benchmark_dataset(load_benchmark(script.task)).shuffle(seed=script.task_seed)
    n_eval = min(script.eval_size, len(data) // 5)
    return data.select(range(n_eval, len(data))), data.select(range(n_eval)), None


def build_rewards(script: ScriptArguments, task, config, tokenizer) -> list:
    from alpharl_trainer.tasks import rewards

    funcs = []
    for name in script.rewards:
        if name == "task":
            if task is None:
                raise AlphaRLError(
                    "reward 'task' needs a synthetic task; use 'math_accuracy' for benchmark files"
                )
            funcs.append(rewards.task_reward(task))
        elif name == "math_accuracy":
            funcs.append(rewards.math_accuracy_reward)
        elif name == "format":
            funcs.append(rewards.format_reward)
        elif name == "overlong":
            funcs.append(
                rewards.overlong_penalty(config.max_completion_length, script.overlong_buffer, tokenizer)
            )
        else:
            raise AlphaRLError(f"unknown reward {name!r}; choose from {', '.join(REWARDS)}")
    return funcs


def test_score(model, tokenizer, task, script: ScriptArguments) -> dict | None:
    """Teacher-forced exact match and gold log-prob on the task's test split (synthetic tasks only)."""
    if task is None:
        return None
    from alpharl_trainer.evaluate import teacher_forced

    problems = task.problems("test", script.report_test_size, script.task_seed)
    was_training = model.training
    model.eval()
    scores = teacher_forced(model, tokenizer, problems)
    model.train(was_training)
    return {"exact": scores["exact"], "logprob": scores["logprob"]}


def last_checkpoint(output_dir: str) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(output_dir) if os.path.isdir(output_dir) else None


def main(argv: list[str] | None = None) -> int:
    from alpharl_trainer import plan

    dry_run, argv = plan.pop_plan_args(sys.argv[1:] if argv is None else argv)
    if dry_run is not None:
        return plan.run(argv, dry_run)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    script, config = parse(argv)
    from alpharl_trainer.trainer import AlphaRLGRPOTrainer, AlphaRLPPOTrainer, AlphaRLRLOOTrainer

    model, tokenizer = load_policy(script)
    train, heldout, task = build_data(script)
    base_score = test_score(model, tokenizer, task, script) if script.report_test_size else None
    trainer_cls = {"grpo": AlphaRLGRPOTrainer, "rloo": AlphaRLRLOOTrainer, "ppo": AlphaRLPPOTrainer}[
        script.trainer
    ]
    trainer = trainer_cls(
        model=model,
        reward_funcs=build_rewards(script, task, config, tokenizer),
        args=config,
        train_dataset=train,
        eval_dataset=heldout,
        processing_class=tokenizer,
    )
    resume = config.resume_from_checkpoint
    if resume is None and script.auto_resume:
        resume = last_checkpoint(config.output_dir)
        if resume:
            logger.info("resuming from %s", resume)
    trainer.train(resume_from_checkpoint=resume)
    trainer.save_model(config.output_dir)
    if trainer.accelerator.is_main_process:
        summary = {"steps": trainer.state.global_step}
        if trainer.alpharl is not None:
            summary.update(swap=trainer.alpharl.swap, snapshots=trainer.alpharl.trajectory.steps)
        if base_score is not None:
            final = test_score(trainer.accelerator.unwrap_model(trainer.model), tokenizer, task, script)
            summary["test"] = {"base": base_score, "final": final, "problems": script.report_test_size}
            print(f"test accuracy (teacher-forced, {script.report_test_size} problems): "
                  f"base {base_score['exact']:.3f} -> final {final['exact']:.3f}")  # fmt: skip
        path = Path(config.output_dir) / "alpharl" / "summary.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(summary, indent=1))
        if trainer.alpharl is not None:
            from alpharl_trainer.trainer.model_card import write_alpharl_card

            write_alpharl_card(config.output_dir, trainer.alpharl, script.model_name_or_path)
        logger.info("AlphaRL summary: %s", summary)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except AlphaRLError as err:
        print(f"alpharl train: error: {err}", file=sys.stderr)
        sys.exit(2)
