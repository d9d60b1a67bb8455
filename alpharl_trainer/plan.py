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
import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import yaml

from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.policies import SHIPPED

GIB = 1024**3
DEFAULT_GPU_MEMORY_GB = 80.0  # H100/H800/A100-80GB: the class of GPU the paper's runs used
PROMPT_TOKENS = 512  # prompt length assumed for activations when vllm_max_model_length does not bound it
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}

# Real config.json values of the models the paper recipes name (Qwen3 base models share them with the
# instruct versions). Matched on the start of the model folder's name, lower-cased, longest key first.
KNOWN_CONFIGS: dict[str, dict] = {
    "qwen3-0.6b": dict(hidden_size=1024, intermediate_size=3072, num_hidden_layers=28, num_attention_heads=16,
                       num_key_value_heads=8, tie_word_embeddings=True),
    "qwen3-1.7b": dict(hidden_size=2048, intermediate_size=6144, num_hidden_layers=28, num_attention_heads=16,
                       num_key_value_heads=8, tie_word_embeddings=True),
    "qwen3-4b": dict(hidden_size=2560, intermediate_size=9728, num_hidden_layers=36, num_attention_heads=32,
                     num_key_value_heads=8, tie_word_embeddings=True),
    "qwen3-8b": dict(hidden_size=4096, intermediate_size=12288, num_hidden_layers=36, num_attention_heads=32,
                     num_key_value_heads=8, tie_word_embeddings=False),
    "qwen3-14b": dict(hidden_size=5120, intermediate_size=17408, num_hidden_layers=40, num_attention_heads=40,
                      num_key_value_heads=8, tie_word_embeddings=False),
    "qwen3-32b": dict(hidden_size=5120, intermediate_size=25600, num_hidden_layers=64, num_attention_heads=64,
                      num_key_value_heads=8, tie_word_embeddings=False),
}  # fmt: skip
QWEN3_COMMON = dict(model_type="qwen3", vocab_size=151936, head_dim=128, max_position_embeddings=32768,
                    dtype="bfloat16")  # fmt: skip


# ---- what the planner resolves -----------------------------------------------------------------------------
@dataclass
class Launch:
    processes: int
    machines: int
    distributed: str
    """accelerate's distributed_type: NO, MULTI_GPU, DEEPSPEED, FSDP, ..."""
    zero_stage: int | None = None
    mixed_precision: str = "no"
    offload_optimizer: bool = False
    offload_params: bool = False
    source: str = "default: one process"


@dataclass
class ModelSize:
    params: int
    source: str
    config: dict | None = None
    """hidden_size, num_hidden_layers, vocab_size, max_position_embeddings, tie_word_embeddings, dtype."""


@dataclass
class Plan:
    recipe: str
    trainer: str
    values: dict
    launch: Launch
    model: ModelSize | None
    batch: dict = field(default_factory=dict)
    alpharl: dict | None = None
    memory: dict[str, float] = field(default_factory=dict)
    """GiB per GPU by item (training peak), plus 'cpu_per_node_at_swap'."""
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class PlanOptions:
    accelerate_config: str | None = None
    num_processes: int | None = None
    num_machines: int | None = None
    model_params: float | None = None
    gpu_memory_gb: float = DEFAULT_GPU_MEMORY_GB


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
    from trl import TrlParser

    from alpharl_trainer.train import ScriptArguments, _config_class

    argv = list(argv)
    if "--config" not in argv:
        raise AlphaRLError("a dry run needs a recipe (--config RECIPE.yaml)")
    at = argv.index("--config")
    path = Path(argv[at + 1])
    del argv[at : at + 2]
    if not path.is_file():
        raise AlphaRLError(f"recipe {path} does not exist")
    recipe = yaml.safe_load(path.read_text()) or {}
    if not isinstance(recipe, dict):
        raise AlphaRLError(f"recipe {path} must be a YAML mapping")
    recipe.pop("env", None)
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    pre.add_argument("--trainer")
    trainer = pre.parse_known_args(argv)[0].trainer or recipe.get("trainer") or "grpo"
    config_cls = _config_class(trainer)
    parser = TrlParser((ScriptArguments, config_cls))
    unknown = parser.set_defaults_with_config(**recipe)
    namespace, rest = parser.parse_known_args(argv)
    if unknown or rest:
        raise AlphaRLError(
            f"{path}: unknown fields {[*unknown, *rest]} (not in ScriptArguments or the config)"
        )
    return trainer, vars(namespace)


# ---- the launch --------------------------------------------------------------------------------------------
def resolve_launch(options: PlanOptions, environ: dict[str, str] | None = None) -> Launch:
    environ = dict(os.environ if environ is None else environ)
    if options.accelerate_config:
        launch = _launch_from_file(Path(options.accelerate_config), "--accelerate-config")
    elif "WORLD_SIZE" in environ:
        launch = _launch_from_env(environ)
    elif environ.get("ACCELERATE_CONFIG_FILE"):
        launch = _launch_from_file(Path(environ["ACCELERATE_CONFIG_FILE"]), "$ACCELERATE_CONFIG_FILE")
    else:
        launch = Launch(processes=1, machines=1, distributed="NO")
    if options.num_processes:
        launch.processes, launch.source = options.num_processes, launch.source + " + --num-processes"
    if options.num_machines:
        launch.machines, launch.source = options.num_machines, launch.source + " + --num-machines"
    for name in ("processes", "machines"):
        value = getattr(launch, name)
        if not isinstance(value, int) or value < 1:
            raise AlphaRLError(
                f"{launch.source}: num_{name} is {value!r}: fill in the template's placeholders or pass "
                f"--num-{name}"
            )
    if launch.processes % launch.machines:
        raise AlphaRLError(
            f"{launch.processes} processes do not split evenly over {launch.machines} machines"
        )
    return launch


def _launch_from_env(environ: dict[str, str]) -> Launch:
    """Inside `accelerate launch` (torchrun): the world is known, DeepSpeed settings are in ACCELERATE_*."""
    world = int(environ["WORLD_SIZE"])
    local = int(environ.get("LOCAL_WORLD_SIZE", world))
    deepspeed = environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true"
    launch = Launch(
        processes=world,
        machines=max(world // max(local, 1), 1),
        distributed="DEEPSPEED" if deepspeed else ("MULTI_GPU" if world > 1 else "NO"),
        mixed_precision=environ.get("ACCELERATE_MIXED_PRECISION", "no"),
        source="the environment of this launch (WORLD_SIZE, ACCELERATE_*)",
    )
    if deepspeed:
        ds_file = environ.get("ACCELERATE_DEEPSPEED_CONFIG_FILE")
        if ds_file and ds_file != "None":
            _read_deepspeed_json(launch, _find(Path(ds_file), Path.cwd()))
        if environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE"):
            launch.zero_stage = int(environ["ACCELERATE_DEEPSPEED_ZERO_STAGE"])
        launch.offload_optimizer |= environ.get("ACCELERATE_DEEPSPEED_OFFLOAD_OPTIMIZER_DEVICE") == "cpu"
        launch.offload_params |= environ.get("ACCELERATE_DEEPSPEED_OFFLOAD_PARAM_DEVICE") == "cpu"
    return launch


def _launch_from_file(path: Path, source: str) -> Launch:
    if not path.is_file():
        raise AlphaRLError(f"accelerate config {path} ({source}) does not exist")
    config = yaml.safe_load(path.read_text()) or {}
    launch = Launch(
        processes=config.get("num_processes", 1),
        machines=config.get("num_machines", 1),
        distributed=str(config.get("distributed_type", "NO")),
        mixed_precision=str(config.get("mixed_precision", "no")),
        source=f"{path} ({source})",
    )
    if launch.distributed == "DEEPSPEED":
        ds = config.get("deepspeed_config") or {}
        if ds.get("deepspeed_config_file"):
            _read_deepspeed_json(launch, _find(Path(ds["deepspeed_config_file"]), path.parent))
        else:
            launch.zero_stage = int(ds.get("zero_stage", 2))
            launch.offload_optimizer = ds.get("offload_optimizer_device") == "cpu"
            launch.offload_params = ds.get("offload_param_device") == "cpu"
    return launch


def _find(path: Path, near: Path) -> Path:
    """A DeepSpeed JSON named relative to the launch directory; also tried from the config's ancestors."""
    if path.is_absolute() or path.is_file():
        return path
    for folder in [near.resolve(), *near.resolve().parents]:
        if (folder / path).is_file():
            return folder / path
    raise AlphaRLError(f"DeepSpeed config {path} not found (relative to {Path.cwd()} or {near})")


def _read_deepspeed_json(launch: Launch, path: Path) -> None:
    if not path.is_file():
        raise AlphaRLError(f"DeepSpeed config {path} does not exist")
    zero = json.loads(path.read_text()).get("zero_optimization", {})
    launch.zero_stage = int(zero.get("stage", 0))
    launch.offload_optimizer = (zero.get("offload_optimizer") or {}).get("device") == "cpu"
    launch.offload_params = (zero.get("offload_param") or {}).get("device") == "cpu"


# ---- the model ---------------------------------------------------------------------------------------------
def resolve_model(path: str, params_hint: float | None) -> ModelSize | None:
    """Parameter count (and architecture when known) without reading a single weight."""
    from alpharl_trainer.policies import ROOT

    folder = ROOT / path if path in SHIPPED else Path(path)
    if (folder / "config.json").is_file():
        config = json.loads((folder / "config.json").read_text())
        return ModelSize(_count_params(config), f"{folder}/config.json (meta-device build)", _arch(config))
    if params_hint:
        return ModelSize(int(params_hint), "--model-params")
    name = Path(path).name.lower()
    for key in sorted(KNOWN_CONFIGS, key=len, reverse=True):
        if name.startswith(key):
            config = {**QWEN3_COMMON, **KNOWN_CONFIGS[key]}
            return ModelSize(
                _count_params(config), f"known architecture {key!r} (folder absent)", _arch(config)
            )
    return None


def _count_params(config: dict) -> int:
    """Build the model on the meta device (shapes only, no memory) and count its parameters."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    settings = {
        k: v for k, v in config.items() if k not in ("model_type", "architectures", "transformers_version")
    }
    hf_config = AutoConfig.for_model(config["model_type"], **settings)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(hf_config)
    return sum(p.numel() for p in model.parameters())


def _arch(config: dict) -> dict:
    text = config.get("text_config", config)  # multimodal configs nest the language model's
    return {
        "hidden_size": text["hidden_size"],
        "num_hidden_layers": text["num_hidden_layers"],
        "vocab_size": text["vocab_size"],
        "max_position_embeddings": text.get("max_position_embeddings"),
        "tie_word_embeddings": bool(
            config.get("tie_word_embeddings", text.get("tie_word_embeddings", False))
        ),
        "dtype": str(config.get("dtype") or config.get("torch_dtype") or "float32"),
    }


# ---- batch arithmetic (TRL 1.16 GRPOConfig/RLOOConfig.__post_init__, with the launch's process count) ------
def batch_plan(values: dict, launch: Launch, plan: Plan) -> None:
    per_device, procs = values["per_device_train_batch_size"], launch.processes
    accumulation, n_gen = values["gradient_accumulation_steps"], values["num_generations"]
    gen_size, spg = values.get("generation_batch_size"), values.get("steps_per_generation")
    if gen_size is not None and spg is not None:
        plan.errors.append("set generation_batch_size or steps_per_generation, not both (TRL refuses)")
        return
    if gen_size is None:
        spg = accumulation if spg is None else spg
        gen_size = per_device * procs * spg
    elif gen_size % (per_device * procs):
        plan.errors.append(
            f"generation_batch_size {gen_size} is not divisible by per_device_train_batch_size x processes "
            f"= {per_device} x {procs}"
        )
        return
    else:
        spg = gen_size // (per_device * procs)
    step_size = per_device * procs * accumulation
    plan.batch = {
        "per_device_train_batch_size": per_device,
        "gradient_accumulation_steps": accumulation,
        "steps_per_generation": spg,
        "num_generations": n_gen,
        "optimizer_step_completions": step_size,
        "optimizer_step_prompts": step_size / n_gen,
        "generation_completions": gen_size,
        "generation_prompts": gen_size / n_gen,
        "optimizer_steps_per_generation": spg * values["num_iterations"] / accumulation,
    }
    if n_gen < 2:
        plan.errors.append(f"num_generations is {n_gen}: a group-relative advantage needs >= 2")
    if gen_size % n_gen:
        plan.errors.append(
            f"generation batch {gen_size} (= {per_device} per device x {procs} processes x {spg} "
            f"steps_per_generation) is not divisible by num_generations {n_gen}: prompt groups would be split"
        )
    if (spg * values["num_iterations"]) % accumulation:
        plan.warnings.append(
            f"steps_per_generation x num_iterations ({spg} x {values['num_iterations']}) is not a multiple "
            f"of gradient_accumulation_steps ({accumulation}): rollout batches straddle optimizer steps"
        )
    if step_size % n_gen:
        plan.warnings.append(
            f"an optimizer step ({step_size} completions) does not hold whole prompt groups of {n_gen}"
        )
    if values.get("eval_strategy", "no") not in ("no", None):
        n_eval = values.get("num_generations_eval") or n_gen
        if (values["per_device_eval_batch_size"] * procs) % n_eval:
            plan.errors.append(
                f"per_device_eval_batch_size x processes ({values['per_device_eval_batch_size']} x {procs}) "
                f"is not divisible by the evaluation's num_generations {n_eval}"
            )


# ---- AlphaRL schedule --------------------------------------------------------------------------------------
def alpharl_plan(values: dict, plan: Plan) -> None:
    from alpharl_trainer.trainer.config import AlphaRLConfig

    if not values.get("alpharl"):
        return
    config = AlphaRLConfig(**{f.name: values[f.name] for f in fields(AlphaRLConfig)})
    max_steps = values["max_steps"]
    try:
        config.validate_alpharl(max_steps)
    except AlphaRLError as err:
        plan.errors.append(f"AlphaRL: {err}")
        return
    end = config.window_end_step(max_steps)
    targets = (
        config.target_steps(end) if config.alpharl_covariate == "step" else config.alpharl_target_rewards
    )
    candidates = len(config.candidates())
    acceptance = config.alpharl_acceptance_prompts * config.alpharl_acceptance_samples * (1 + candidates)
    plan.alpharl = {
        "snapshot_steps": config.snapshot_steps(max_steps),
        "window_end": end,
        "window_share": end / max_steps if max_steps > 0 else None,
        "targets": targets,
        "covariate": config.alpharl_covariate,
        "stop_step": None if config.alpharl_continue_after_swap else end + config.alpharl_finetune_steps,
        "acceptance_completions": acceptance,
    }
    if values.get("use_vllm") and acceptance:
        plan.notes.append(
            f"AlphaRL acceptance samples {acceptance} completions of up to {values['max_completion_length']} "
            "tokens with transformers generate (not vLLM): size alpharl_acceptance_prompts/_samples for that"
        )
    if config.alpharl_covariate == "step" and max_steps > 0 and max(targets) > max_steps:
        plan.notes.append(
            f"AlphaRL: candidate targets reach step {max(targets):g}, beyond max_steps {max_steps}"
        )
    per_gen = plan.batch.get("optimizer_steps_per_generation")
    if per_gen and per_gen > 1 and end % per_gen:
        plan.warnings.append(
            f"AlphaRL swaps at step {end}, inside a rollout batch ({per_gen:g} optimizer steps each): the "
            "rest of that batch is regenerated from the swapped weights (generation wasted); align the window"
        )
    if config.alpharl_acceptance_prompts > values["eval_size"]:
        plan.warnings.append(
            f"alpharl_acceptance_prompts {config.alpharl_acceptance_prompts} > eval_size "
            f"{values['eval_size']}: the gate scores only the held-out prompts there are"
        )


# ---- memory estimate ---------------------------------------------------------------------------------------
def memory_plan(values: dict, launch: Launch, model: ModelSize, gpu_gb: float, plan: Plan) -> None:
    """Per-GPU GiB of the training peak (ZeRO paper arithmetic + rough activations) and CPU at the swap."""
    p, n = model.params, launch.processes
    half = _precision(values, launch) != "fp32"
    load_bytes = DTYPE_BYTES.get(model.config["dtype"], 4) if model.config else 2
    stage = launch.zero_stage if launch.distributed == "DEEPSPEED" else None
    if stage is not None:  # DeepSpeed: bf16/fp16 module, fp32 master + Adam moments (12 bytes) when half
        weight_b, grad_b, optim_b = (2, 2, 12) if half else (4, 4, 8)
        weights = weight_b * p / (n if stage == 3 else 1) * (0 if launch.offload_params else 1)
        grads = grad_b * p / (n if stage >= 2 else 1)
        optim = optim_b * p / (n if stage >= 1 else 1) * (0 if launch.offload_optimizer else 1)
    else:  # DDP / one process: weights, grads and Adam moments all in the loaded dtype, replicated
        weights, grads, optim = load_bytes * p, load_bytes * p, 2 * load_bytes * p
        if load_bytes == 2 and p > 1e9:
            plan.warnings.append(
                "without DeepSpeed, 16-bit weights are trained in place (no fp32 master): use a ZeRO config"
            )
    memory = {"weights": weights, "gradients": grads, "optimizer states": optim}
    shard = n if stage == 3 else 1
    if values.get("beta"):  # a KL term keeps a frozen reference model (TRL builds none at beta 0)
        memory["reference model"] = (2 if half else load_bytes) * p / shard
    if plan.trainer == "ppo" and values.get("value_model") == "separate":
        memory["critic (weights + grads + optimizer)"] = weights + grads + optim
    if model.config:
        memory.update(_activations(values, model.config))
        if not values.get("vllm_max_model_length"):
            plan.notes.append(f"activations assume {PROMPT_TOKENS}-token prompts (TRL does not cap prompts)")
    colocate = values.get("use_vllm") and values.get("vllm_mode") == "colocate"
    if colocate and not values.get("vllm_enable_sleep_mode"):
        memory["vLLM colocate share"] = values["vllm_gpu_memory_utilization"] * gpu_gb * GIB
    plan.memory = {k: v / GIB for k, v in memory.items()}
    plan.memory["total"] = total = sum(plan.memory.values())
    if total > gpu_gb:
        plan.warnings.append(
            f"estimated peak {total:.1f} GiB per GPU exceeds {gpu_gb:g} GiB: raise the ZeRO stage, lower "
            "per_device_train_batch_size (raise gradient_accumulation_steps), or add GPUs"
        )
    if colocate:
        share = values["vllm_gpu_memory_utilization"] * gpu_gb
        vllm_weights = 2 * p / GIB / values["vllm_tensor_parallel_size"]
        plan.notes.append(
            f"vLLM colocate: {share:.1f} GiB per GPU for its weights ({vllm_weights:.1f} GiB) and KV cache"
            + (", released during training (sleep mode)" if values.get("vllm_enable_sleep_mode") else "")
        )
        if vllm_weights >= share:
            plan.errors.append(
                f"vLLM's copy of the weights ({vllm_weights:.1f} GiB) does not fit its share of the GPU "
                f"({share:.1f} GiB): raise vllm_gpu_memory_utilization or vllm_tensor_parallel_size"
            )
    if model.config and plan.alpharl is not None:
        plan.memory["cpu_per_node_at_swap"] = _swap_cpu(p, model.config, load_bytes, launch) / GIB


def _precision(values: dict, launch: Launch) -> str:
    """The recipe's bf16/fp16 flags win over the accelerate config's mixed_precision (TrainingArguments)."""
    if values.get("bf16") or values.get("fp16"):
        return "bf16" if values.get("bf16") else "fp16"
    return launch.mixed_precision if launch.mixed_precision in ("bf16", "fp16") else "fp32"


def _activations(values: dict, arch: dict) -> dict[str, float]:
    """Rough: checkpointed layer inputs (or ~34 bytes/token/hidden without checkpointing) + logits."""
    b = values["per_device_train_batch_size"]
    completion = values["max_completion_length"]
    tokens = max(values.get("vllm_max_model_length") or 0, PROMPT_TOKENS + completion)
    per_token = 2 if values.get("activation_checkpointing") else 34
    hidden = arch["num_hidden_layers"] * b * tokens * arch["hidden_size"] * per_token
    # TRL keeps logits only for completion tokens, in bf16: forward, /temperature, gradient
    logits = 3 * b * completion * arch["vocab_size"] * 2
    return {"activations (rough)": hidden, "logits (rough)": logits}


def _swap_cpu(p: int, arch: dict, load_bytes: int, launch: Launch) -> float:
    """The callback keeps W_0 of owned matrices per rank and, at the swap, W_K + one candidate of every
    tracked matrix on every rank (callback._swap_at): CPU bytes on one node at that moment."""
    embeddings = arch["vocab_size"] * arch["hidden_size"] * (1 if arch["tie_word_embeddings"] else 2)
    tracked = max(p - embeddings, 0)
    per_node = launch.processes // launch.machines
    return per_node * (tracked * load_bytes / launch.processes + 2 * tracked * load_bytes)


# ---- the whole plan ----------------------------------------------------------------------------------------
def make_plan(argv: list[str], options: PlanOptions, environ: dict[str, str] | None = None) -> Plan:
    recipe = argv[argv.index("--config") + 1] if "--config" in argv else "?"
    trainer, values = resolve_recipe(argv)
    launch = resolve_launch(options, environ)
    model = resolve_model(values["model_name_or_path"], options.model_params)
    plan = Plan(recipe=recipe, trainer=trainer, values=values, launch=launch, model=model)
    batch_plan(values, launch, plan)
    alpharl_plan(values, plan)
    if model is None:
        plan.notes.append(
            f"model {values['model_name_or_path']}: no config.json and no known architecture by that name: "
            "pass --model-params for a memory estimate"
        )
    else:
        memory_plan(values, launch, model, options.gpu_memory_gb, plan)
        _model_checks(values, model, plan)
    _launch_checks(values, launch, plan)
    return plan


def _model_checks(values: dict, model: ModelSize, plan: Plan) -> None:
    limit = (model.config or {}).get("max_position_embeddings")
    length = values.get("vllm_max_model_length") or values["max_completion_length"]
    if limit and length > limit:
        plan.warnings.append(f"sequences of up to {length} tokens exceed the model's {limit} positions")
    if values["model_name_or_path"] not in SHIPPED and not Path(values["model_name_or_path"]).is_dir():
        plan.notes.append(f"model folder {values['model_name_or_path']} is absent here (needed at launch)")


def _launch_checks(values: dict, launch: Launch, plan: Plan) -> None:
    if launch.distributed == "DEEPSPEED" and importlib.util.find_spec("deepspeed") is None:
        plan.warnings.append("the launch uses DeepSpeed, which is not installed here")
    report_to = values.get("report_to") or []
    for name in [report_to] if isinstance(report_to, str) else report_to:
        module = {"tensorboard": "tensorboard", "wandb": "wandb"}.get(name)
        if module and importlib.util.find_spec(module) is None:
            plan.warnings.append(
                f"report_to {name}: {module} is not installed here (pip install {module} where it runs)"
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


def _count(n: float) -> str:
    return f"{n / 1e9:.3g} B" if n >= 1e9 else f"{n / 1e6:.3g} M"


def format_plan(plan: Plan) -> str:
    v, launch, b, a = plan.values, plan.launch, plan.batch, plan.alpharl
    stage = f" ZeRO-{launch.zero_stage}" if launch.zero_stage is not None else ""
    lines = [
        f"recipe     {plan.recipe}  (trainer {plan.trainer}, output_dir {v['output_dir']})",
        f"launch     {launch.processes} process(es) on {launch.machines} machine(s), {launch.distributed}"
        f"{stage}, {_precision(v, launch)}; from {launch.source}",
    ]
    if plan.model:
        model = plan.model
        lines.append(
            f"model      {v['model_name_or_path']}: {_count(model.params)} parameters ({model.source})"
        )
    if b:
        lines += [
            f"batch      optimizer step: {b['per_device_train_batch_size']} x {launch.processes} processes x "
            f"{b['gradient_accumulation_steps']} accumulation = {b['optimizer_step_completions']} "
            f"completions ({b['optimizer_step_prompts']:g} prompts x {b['num_generations']})",
            f"           rollout batch: {b['generation_completions']} completions "
            f"({b['generation_prompts']:g} prompts x {b['num_generations']}), {b['steps_per_generation']} "
            f"steps_per_generation = {b['optimizer_steps_per_generation']:g} optimizer steps per rollout",
        ]
    lines.append(
        f"run        max_steps {v['max_steps']}, lr {v['learning_rate']:g} ({v['lr_scheduler_type']}), "
        f"completions <= {v['max_completion_length']} tokens, report_to {v.get('report_to')}"
    )
    if a:
        steps = a["snapshot_steps"]
        share = f" ({a['window_share']:.0%} of max_steps)" if a["window_share"] else ""
        unit = "steps" if a["covariate"] == "step" else "rewards"
        stop = "trains on to max_steps" if a["stop_step"] is None else f"stops at step {a['stop_step']}"
        lines += [
            f"AlphaRL    {len(steps)} snapshots at steps {', '.join(map(str, steps))}; "
            f"window ends at step {a['window_end']}{share}",
            f"           candidate {unit} {', '.join(f'{t:g}' for t in a['targets'])}; acceptance samples "
            f"{a['acceptance_completions']} completions; {stop}",
        ]
    if plan.memory:
        items = {k: g for k, g in plan.memory.items() if k not in ("total", "cpu_per_node_at_swap")}
        parts = " + ".join(f"{k} {g:.1f}" for k, g in items.items())
        lines.append(f"memory/GPU {plan.memory['total']:.1f} GiB estimated = {parts}")
    if "cpu_per_node_at_swap" in plan.memory:
        lines.append(
            f"CPU/node   {plan.memory['cpu_per_node_at_swap']:.1f} GiB at the AlphaRL swap (W_0 shares + W_K "
            "and one candidate of the tracked matrices on every rank)"
        )
    lines += [f"note       {n}" for n in plan.notes]
    lines += [f"WARNING    {w}" for w in plan.warnings]
    lines += [f"ERROR      {e}" for e in plan.errors]
    lines.append(
        "plan OK: no weights were loaded" if not plan.errors else f"plan has {len(plan.errors)} error(s)"
    )
    return "\n".join(lines)


def run(argv: list[str], options: PlanOptions) -> int:
    """Print the plan (rank 0 only under a launch); raise AlphaRLError when it cannot run."""
    plan = make_plan(argv, options)
    if int(os.environ.get("RANK", "0")) == 0:
        print(format_plan(plan))
    if plan.errors:
        raise AlphaRLError(f"the plan has {len(plan.errors)} error(s): " + "; ".join(plan.errors))
    return 0
