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
import warnings
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
            "help": "Policy: a local Hugging Face model folder, or 'tiny' for the tiny SFT policy shipped in "
            "the repository (alpharl_trainer/policies/tiny, checksummed). Nothing is downloaded."
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
    report_truncated: bool = field(
        default=True,
        metadata={
            "help": "With report_test_size: also train the truncated run (the same recipe without AlphaRL, "
            "stopped at the AlphaRL run's last step) and report the final model's paired difference to it. "
            "Doubles the training time; single process only."
        },
    )
    auto_resume: bool = field(
        default=True,
        metadata={
            "help": "Resume from the last checkpoint in output_dir when it holds an unfinished run "
            "(requeue-safe). A finished run is never resumed: remove it or choose another output_dir."
        },
    )
    torch_threads: int = field(
        default=0,
        metadata={
            "help": "torch CPU threads per process (0: torch's default, one per core). Small models on a "
            "few cores run faster at 1 (no thread contention), especially on a busy machine."
        },
    )


def _config_class(trainer: str):
    from alpharl_trainer.trainer.config import AlphaRLGRPOConfig, AlphaRLRLOOConfig
    from alpharl_trainer.trainer.ppo_config import AlphaRLPPOConfig

    if trainer not in TRAINERS:
        raise AlphaRLError(f"unknown trainer {trainer!r}; choose from {', '.join(TRAINERS)}")
    return {"grpo": AlphaRLGRPOConfig, "rloo": AlphaRLRLOOConfig, "ppo": AlphaRLPPOConfig}[trainer]


def parse(argv: list[str]):
    """(ScriptArguments, trainer config) from `--config RECIPE.yaml` plus command-line overrides.

    A YAML syntax error, an unknown key or flag and TRL's own config checks (e.g. `num_generations` not
    dividing the batch) become one AlphaRLError naming the recipe, not a traceback."""
    from trl import TrlParser

    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config")
    pre.add_argument("--trainer")
    known, _ = pre.parse_known_args(argv)
    source = f"recipe {known.config}" if known.config else "command line"
    try:
        trainer = known.trainer
        if trainer is None and known.config:
            if not Path(known.config).is_file():
                raise AlphaRLError(f"recipe {known.config} does not exist")
            trainer = (yaml.safe_load(Path(known.config).read_text()) or {}).get("trainer")
        parser = TrlParser((ScriptArguments, _config_class(trainer or "grpo")))
        return parser.parse_args_and_config(argv)
    except yaml.YAMLError as err:
        raise AlphaRLError(f"{source} is not valid YAML: {' '.join(str(err).split())}") from err
    except ValueError as err:
        raise AlphaRLError(f"{source}: {err}") from err


def load_policy(script: ScriptArguments):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from alpharl_trainer.policies import resolve_policy

    path = resolve_policy(script.model_name_or_path)
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
    return scores


def last_complete_checkpoint(output_dir: str, alpharl: bool) -> str | None:
    """The newest `checkpoint-N` that a save finished, skipping (and saying so) any a kill interrupted.

    transformers writes `trainer_state.json` after the weights, optimizer and RNG state, and AlphaRL writes
    `alpharl/state.json` after that (on_save): a folder without them is a partial save, and resuming from it
    fails the same way on every requeue."""
    folders = [p for p in Path(output_dir).glob("checkpoint-*") if p.name.split("-")[-1].isdigit()]
    needed = ("trainer_state.json", "alpharl/state.json") if alpharl else ("trainer_state.json",)
    for folder in sorted(folders, key=lambda p: int(p.name.split("-")[-1]), reverse=True):
        missing = [name for name in needed if not (folder / name).is_file()]
        if not missing:
            return str(folder)
        print(f"skipping {folder}: an interrupted save (no {missing[0]})", flush=True)
    return None


def check_before_loading(script: ScriptArguments, config) -> None:
    """What can be checked without weights, so a bad recipe fails in a second rather than after loading."""
    from alpharl_trainer.policies import resolve_policy
    from alpharl_trainer.tasks import TASKS

    if getattr(config, "alpharl", False):
        from alpharl_trainer.trainer.config import AlphaRLConfig

        AlphaRLConfig.from_args(config).validate_alpharl(config.max_steps)
    unknown = [r for r in script.rewards if r not in REWARDS]
    if unknown:
        raise AlphaRLError(f"unknown reward(s) {unknown}; choose from {', '.join(REWARDS)}")
    if script.task not in TASKS and not Path(script.task).is_file():
        raise AlphaRLError(
            f"task {script.task!r} is neither a synthetic task ({', '.join(TASKS)}) nor a file"
        )
    resolve_policy(script.model_name_or_path)


def resume_point(script: ScriptArguments, config) -> str | None:
    """The checkpoint to resume from, saying why; a finished run in output_dir is an error, not a resume."""
    if config.resume_from_checkpoint is not None or not script.auto_resume:
        return config.resume_from_checkpoint
    summary = Path(config.output_dir) / "alpharl" / "summary.json"
    if summary.is_file():
        raise AlphaRLError(
            f"{config.output_dir} holds a finished run ({summary}); remove it or set another output_dir "
            "(`make run` starts a fresh main job each time)"
        )
    last = last_complete_checkpoint(config.output_dir, bool(getattr(config, "alpharl", False)))
    if last:
        print(
            f"resuming from {last}: {config.output_dir} holds an unfinished run (auto_resume; remove the "
            "folder to start over)",
            flush=True,
        )
    return last


def train_truncated(argv: list[str], stop_step: int, train, heldout, task):
    """The truncated run: the same recipe (`argv`) without AlphaRL (same seed, data, schedule), stopped at
    `stop_step`, in a temporary folder (nothing of it is kept). Returns its model."""
    import tempfile

    from transformers import TrainerCallback

    class StopAt(TrainerCallback):
        """Ends training at `stop_step` (transformers stops at `state.max_steps`); the learning-rate schedule,
        built from args.max_steps before training starts, stays the recipe's."""

        def on_train_begin(self, args, state, control, **kwargs):
            state.max_steps = min(state.max_steps, stop_step)

    with tempfile.TemporaryDirectory(prefix="alpharl-truncated-") as out:
        overrides = ["--alpharl", "false", "--output_dir", out, "--save_strategy", "no"]
        script, config = parse([*argv, *overrides, "--report_to", "none"])
        model, tokenizer = load_policy(script)
        trainer = build_trainer(script, config, model, tokenizer, (train, heldout, task), [StopAt()])
        trainer.train()
        return trainer.accelerator.unwrap_model(trainer.model)


def whole_model(trainer):
    """A context yielding the trainer's policy whole, for a forward pass outside the training step (TRL's
    own path for generation: under ZeRO-3 it lifts DeepSpeed's hooks and gathers the parameters)."""
    from trl.models import unwrap_model_for_generation

    return unwrap_model_for_generation(
        trainer.model_wrapped, trainer.accelerator, gather_deepspeed3_params=True
    )


def build_trainer(script: ScriptArguments, config, model, tokenizer, data: tuple, callbacks=None):
    """The recipe's trainer on `data` = (train, held-out, task), as `build_data` returns it."""
    from alpharl_trainer.trainer import AlphaRLGRPOTrainer, AlphaRLPPOTrainer, AlphaRLRLOOTrainer

    trainers = {"grpo": AlphaRLGRPOTrainer, "rloo": AlphaRLRLOOTrainer, "ppo": AlphaRLPPOTrainer}
    train, heldout, task = data
    return trainers[script.trainer](
        model=model,
        reward_funcs=build_rewards(script, task, config, tokenizer),
        args=config,
        train_dataset=train,
        eval_dataset=heldout,
        processing_class=tokenizer,
        callbacks=callbacks,
    )


def main(argv: list[str] | None = None) -> int:
    from alpharl_trainer import plan
    from alpharl_trainer.run_report import Stage

    dry_run, argv = plan.pop_plan_args(sys.argv[1:] if argv is None else argv)
    if dry_run is not None:
        return plan.run(argv, dry_run)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    # TRL 1.16 itself reads transformers' deprecated `is_gradient_checkpointing` at every generation: a
    # warning no recipe can avoid (recipes use `activation_checkpointing`), printed per rollout batch.
    warnings.filterwarnings("ignore", "`is_gradient_checkpointing` is deprecated", FutureWarning)
    script, config = parse(argv)
    check_before_loading(script, config)
    if script.torch_threads:
        import torch

        torch.set_num_threads(script.torch_threads)
    resume = resume_point(script, config)
    from alpharl_trainer.distributed import gathered_model

    model, tokenizer = load_policy(script)
    train, heldout, task = build_data(script)
    scoring = bool(script.report_test_size) and task is not None
    stages: list[Stage] = []

    main_process = int(os.environ.get("RANK", "0")) == 0

    def score(name: str, step: int, whole_model, reference: str | None = None) -> None:
        """Score on the test split; every rank calls it (under ZeRO-3 the gather is collective)."""
        if main_process:
            print(f"scoring the {name} (step {step}) on {script.report_test_size} test problems", flush=True)
        with whole_model as policy:
            result = test_score(policy, tokenizer, task, script)
        stages.append(Stage(name, step, result["exact_per_problem"], reference))

    if scoring:
        score("base policy", 0, gathered_model(model))
    trainer = build_trainer(script, config, model, tokenizer, (train, heldout, task))
    if scoring and trainer.alpharl is not None:
        window = "window end (truncated run)"
        unit = "step" if trainer.alpharl.config.alpharl_covariate == "step" else "reward"

        def at_window_end(event: str, target: float | None) -> None:
            step = trainer.state.global_step
            if event == "window":
                score(window, step, whole_model(trainer), "base policy")
            elif event == "candidate":
                score(f"forecast to {unit} {target:g}", step, whole_model(trainer), window)
            elif target is not None:  # decided: the applied forecast (already scored if the gate ran)
                name = f"forecast to {unit} {target:g}"
                scored = [s for s in stages if s.name == name]
                if scored:
                    scored[0].name = f"{name} (applied)"
                else:
                    score(f"{name} (applied, unscored)", step, whole_model(trainer), window)

        trainer.alpharl.listeners.append(at_window_end)
    trainer.train(resume_from_checkpoint=resume)
    trainer.save_model(config.output_dir)
    step = trainer.state.global_step
    swap = trainer.alpharl.swap if trainer.alpharl is not None else None
    if scoring:  # on every rank: under ZeRO-3 scoring gathers the model collectively
        reference = None
        single = trainer.accelerator.num_processes == 1
        if swap is not None and script.report_truncated and single and step > swap["step"]:
            print(f"training the truncated run to step {step} (same recipe, no AlphaRL) for the report")
            reference = "truncated run"
            truncated = train_truncated(argv, step, train, heldout, task)
            score(reference, step, gathered_model(truncated), "base policy")
        elif swap is not None and step == swap["step"]:
            reference = "window end (truncated run)"
        elif swap is not None and main_process:
            why = "report_truncated is off" if single else "it is trained in single-process runs only"
            print(f"the final model is not paired with a truncated run: {why}")
        score("final", step, whole_model(trainer), reference)
    if trainer.accelerator.is_main_process:
        print_summary(write_summary(script, config, trainer, stages))
    return 0


def write_summary(script: ScriptArguments, config, trainer, stages) -> dict:
    """`output_dir/alpharl/summary.json` (atomically) and the model card's AlphaRL section."""
    from alpharl_trainer.run_report import stage_table

    out = Path(config.output_dir)
    summary: dict = {"output_dir": str(out), "steps": trainer.state.global_step, "finished": True}
    if trainer.alpharl is not None:
        summary.update(swap=trainer.alpharl.swap, snapshots=trainer.alpharl.trajectory.steps)
    if stages:
        summary["test"] = {
            "problems": script.report_test_size,
            "scoring": "teacher-forced exact match on the test split, which equals greedy decoding",
            "interval": "paired 95% normal interval of the per-problem difference",
            "stages": stage_table(stages),
        }
    path = out / "alpharl" / "summary.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(summary, indent=1) + "\n")
    os.replace(tmp, path)
    if trainer.alpharl is not None:
        from alpharl_trainer.trainer.model_card import write_alpharl_card

        write_alpharl_card(config.output_dir, trainer.alpharl, script.model_name_or_path, summary.get("test"))
    return summary


def print_summary(summary: dict) -> None:
    """A few plain lines: what happened at the window end, accuracy per stage, where the outputs are."""
    from alpharl_trainer.run_report import format_stages
    from alpharl_trainer.trainer.callback import describe_decision

    lines = ["", f"== run finished at step {summary['steps']} =="]
    swap = summary.get("swap")
    if "swap" in summary:
        lines.append(describe_decision(swap) if swap else "AlphaRL: the run stopped before the window closed")
    test = summary.get("test")
    if test:
        lines.append(f"test accuracy on {test['problems']} problems: {test['scoring']};")
        lines.append(f"+- is the half-width of a {test['interval']}:")
        lines += format_stages(test["stages"])
    out = summary["output_dir"]
    lines.append(
        f"outputs: final model in {out}/, summary in {out}/alpharl/summary.json, checkpoints in {out}/"
    )
    print("\n".join(lines), flush=True)


if __name__ == "__main__":  # `accelerate launch -m alpharl_trainer.train`
    from alpharl_trainer.offline_mode import stay_offline

    stay_offline()
    try:
        sys.exit(main())
    except AlphaRLError as err:
        print(f"alpharl train: error: {err}", file=sys.stderr)
        sys.exit(2)
