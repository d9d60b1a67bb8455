"""`alpharl train --dry-run RECIPE`: resolve a run's whole configuration and check it before loading weights.

A paper-scale job fails late and expensively: after minutes of loading an 8B model on every GPU, TRL finds
that the generation batch does not split into prompt groups, or the AlphaRL window holds two snapshots, or
the optimizer states do not fit. The planner resolves everything those failures depend on, on any machine:

- the recipe as TRL would read it (YAML + command-line overrides, every default filled in), parsed without
  building TRL's config objects (their `__post_init__` probes the local device: a GPU recipe would not even
  parse on a laptop);
- the launch: `--accelerate-config FILE`, else the environment of a running `accelerate launch` (WORLD_SIZE,
  ACCELERATE_USE_DEEPSPEED, ...), else `$ACCELERATE_CONFIG_FILE`, else one process; `--num-processes` and
  `--num-machines` override, like `accelerate launch` flags do;
- the model's size without its weights: `config.json` of the model folder instantiated on the meta device;
  else a table of known architectures matched on the folder's name (the paper's Qwen3 family); else
  `--model-params` (a parameter count, e.g. 8.2e9: then only the model states are estimated).

It then prints the batch arithmetic (TRL's rules: `generation_batch_size = per_device_train_batch_size x
processes x steps_per_generation`, divisible by `num_generations`), the AlphaRL schedule (snapshot steps,
window end, candidate horizons, acceptance cost) and a per-GPU memory estimate, and fails (exit 2) on
anything that cannot work. Estimates are ZeRO-paper arithmetic plus a rough activation term: a guide for
choosing batch sizes and ZeRO stages, not a guarantee.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
from dataclasses import asdict, fields
from pathlib import Path

from alpharl_trainer import recipe
from alpharl_trainer.errors import FSDP_REFUSED, AlphaRLError
from alpharl_trainer.plan.estimates import alpharl_plan, batch_plan, memory_plan
from alpharl_trainer.plan.format import format_plan
from alpharl_trainer.plan.launch import Launch, resolve_launch
from alpharl_trainer.plan.model_size import ModelSize, resolve_model
from alpharl_trainer.plan.options import DEFAULT_GPU_MEMORY_GB, PlanOptions
from alpharl_trainer.plan.result import Plan
from alpharl_trainer.policies import SHIPPED
from alpharl_trainer.recipe import check_output_dir, check_run

# report_to names whose transformers callback imports a module that is not a dependency (the `loggers`
# extra); TrainingArguments refuses a missing one only at launch, on the machine that runs it.
LOGGER_MODULES = {"tensorboard": "tensorboard", "wandb": "wandb", "trackio": "trackio"}


# ---- command-line options (shared by `alpharl train` and `python -m alpharl_trainer.train`) ----------------
def add_plan_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("dry run (resolve, check and print the plan; no weights are loaded)")
    group.add_argument("--dry-run", action="store_true", help="print the resolved plan and exit")
    group.add_argument(
        "--accelerate-config",
        metavar="FILE",
        help="accelerate config of the launch (default: see docs/scale.md)",
    )
    group.add_argument("--num-processes", type=int, metavar="N", help="total processes (GPUs) of the launch")
    group.add_argument("--num-machines", type=int, metavar="N", help="nodes of the launch")
    group.add_argument(
        "--model-params", type=float, metavar="P", help="parameter count when the model folder is absent"
    )
    group.add_argument(
        "--gpu-memory-gb", type=float, default=DEFAULT_GPU_MEMORY_GB, metavar="GB", help="memory of one GPU"
    )
    group.add_argument(
        "--gate-tokens-per-second",
        type=float,
        metavar="T",
        help="generation throughput per process for the gate's time estimate (default: 2000 with vLLM, 200 "
        "with transformers generate: rough figures for an 8B model)",
    )


def options_from(args: argparse.Namespace) -> PlanOptions:
    return PlanOptions(**{f.name: getattr(args, f.name) for f in fields(PlanOptions)})


def pop_plan_args(
    argv: list[str], defaults: PlanOptions | None = None
) -> tuple[PlanOptions | None, list[str]]:
    """(options, the rest) when argv asks for a dry run, else (None, argv unchanged)."""
    if "--dry-run" not in argv:
        return None, argv
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    add_plan_arguments(parser)
    if defaults is not None:
        parser.set_defaults(**asdict(defaults))
    args, rest = parser.parse_known_args(argv)
    return options_from(args), rest


# ---- the recipe --------------------------------------------------------------------------------------------
def resolve_recipe(argv: list[str]) -> tuple[str, dict]:
    """(trainer, every field's value) from `--config RECIPE [--field value ...]`, as TRL would parse them."""
    if "--config" not in argv:
        raise AlphaRLError("a dry run needs a recipe (--config RECIPE.yaml)")
    resolved = recipe.resolve(argv)
    return resolved.trainer, resolved.values


# ---- the whole plan ----------------------------------------------------------------------------------------
def make_plan(argv: list[str], options: PlanOptions, environ: dict[str, str] | None = None) -> Plan:
    recipe = argv[argv.index("--config") + 1] if "--config" in argv else "?"
    trainer, values = resolve_recipe(argv)
    launch = resolve_launch(options, environ)
    model = resolve_model(values["model_name_or_path"], options.model_params)
    plan = Plan(recipe=recipe, trainer=trainer, values=values, launch=launch, model=model)
    batch_plan(values, launch, plan)
    alpharl_plan(values, launch, plan, options.gate_tokens_per_second)
    if model is None:
        plan.notes.append(
            f"model {values['model_name_or_path']}: no config.json and no known architecture by that name: "
            "pass --model-params for a memory estimate"
        )
    else:
        memory_plan(values, launch, model, options.gpu_memory_gb, plan)
        _model_checks(values, model, plan)
    _launch_checks(values, launch, plan)
    for check in (
        lambda: check_output_dir(values["output_dir"], values["model_name_or_path"], values["task"]),
        lambda: check_run(values),
    ):
        try:
            check()
        except AlphaRLError as err:
            plan.errors.append(str(err))
    resume = values.get("resume_from_checkpoint")
    if resume is not None and not Path(resume).is_dir():
        plan.notes.append(f"resume_from_checkpoint {resume} does not exist here (needed at launch)")
    return plan


def _model_checks(values: dict, model: ModelSize, plan: Plan) -> None:
    limit = (model.config or {}).get("max_position_embeddings")
    length = values.get("vllm_max_model_length") or values["max_completion_length"]
    if limit and length > limit:
        plan.warnings.append(f"sequences of up to {length} tokens exceed the model's {limit} positions")
    from alpharl_trainer.policies.converted import CONVERTED

    name = values["model_name_or_path"]
    if name in CONVERTED and model.config is None:
        plan.notes.append(f"policy {name} is converted into the cache at launch (once)")
    elif name not in SHIPPED and name not in CONVERTED and not Path(name).is_dir():
        plan.notes.append(f"model folder {name} is absent here (needed at launch)")


def _launch_checks(values: dict, launch: Launch, plan: Plan) -> None:
    if launch.distributed == "FSDP" and values.get("alpharl"):
        plan.errors.append(FSDP_REFUSED)
    if launch.distributed == "DEEPSPEED" and importlib.util.find_spec("deepspeed") is None:
        plan.warnings.append("the launch uses DeepSpeed, which is not installed here")
    report_to = values.get("report_to") or []
    for name in [report_to] if isinstance(report_to, str) else report_to:
        module = LOGGER_MODULES.get(name)
        if module and importlib.util.find_spec(module) is None:
            plan.warnings.append(
                f"report_to {name}: {module} is not installed here (pip install {module} where it runs, "
                "or the loggers extra: docs/logging.md)"
            )
    if values.get("use_vllm"):
        if values.get("vllm_mode") == "colocate" and launch.processes % values["vllm_tensor_parallel_size"]:
            plan.errors.append(
                f"vllm_tensor_parallel_size {values['vllm_tensor_parallel_size']} does not divide the "
                f"{launch.processes} processes"
            )
        if values.get("vllm_mode") == "server" and not values.get("vllm_server_base_url"):
            plan.notes.append(
                f"vLLM server mode: generation on `trl vllm-serve` at {values['vllm_server_host']}:"
                f"{values['vllm_server_port']} (scripts/slurm/train.sbatch with VLLM_SERVER=1 sets the host)"
            )
    if launch.machines > 1 and not values.get("save_on_each_node"):
        plan.notes.append("several nodes: output_dir must be on a filesystem every node sees")


def run(argv: list[str], options: PlanOptions) -> int:
    """Print the plan (rank 0 only under a launch); raise AlphaRLError when it cannot run."""
    plan = make_plan(argv, options)
    if int(os.environ.get("RANK", "0")) == 0:
        print(format_plan(plan))
    if plan.errors:
        raise AlphaRLError(f"the plan has {len(plan.errors)} error(s): " + "; ".join(plan.errors))
    return 0
