"""What a run needs, by TRL's rules and ZeRO-paper arithmetic: the batch arithmetic, the AlphaRL schedule
and the memory per GPU (plus a rough activation term: a guide for batch sizes and stages, no guarantee)."""

from __future__ import annotations

import math
from dataclasses import fields
from typing import TYPE_CHECKING

from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.plan.launch import Launch
from alpharl_trainer.plan.model_size import ModelSize

if TYPE_CHECKING:
    from alpharl_trainer.plan.result import Plan

GIB = 1024**3
PROMPT_TOKENS = 512  # prompt length assumed for activations when vllm_max_model_length does not bound it
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
# Generation throughput per process (GPU) for an 8B model with long completions, rough orders of magnitude:
# vLLM's continuous batching vs transformers `generate`. `--gate-tokens-per-second` replaces them.
DEFAULT_TOKENS_PER_SECOND = {"vllm": 2000.0, "transformers": 200.0}
GATE_SHARE_LIMIT = 0.05
"""The gate's share of the run's generated tokens above which the plan warns."""


# batch arithmetic (TRL 1.16 GRPOConfig/RLOOConfig.__post_init__, with the launch's process count) ------
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


# AlphaRL schedule --------------------------------------------------------------------------------------
def alpharl_plan(values: dict, launch: Launch, plan: Plan, tokens_per_second: float | None = None) -> None:
    from alpharl_trainer.trainer.candidates import WINDOW_FAMILIES, build_candidates
    from alpharl_trainer.trainer.config import AlphaRLConfig

    if not values.get("alpharl"):
        return
    max_steps = values["max_steps"]
    try:
        config = AlphaRLConfig(**{f.name: values[f.name] for f in fields(AlphaRLConfig)})
        unscored = config.validate_alpharl(max_steps)
    except AlphaRLError as err:
        plan.errors.append(f"AlphaRL: {err}")
        return
    if unscored:
        plan.warnings.append(f"AlphaRL: {unscored}")
    schedule = config.schedule(max_steps)
    end, targets, snapshots = schedule.length, schedule.targets(), schedule.snapshot_steps()
    built = build_candidates(config, targets, end, max_steps, len(snapshots))
    candidates = [c.label for c in built]
    scoring = config.alpharl_acceptance_scoring
    forced = scoring.startswith("exact")  # one gold completion per prompt, read, not sampled
    samples = 1 if forced or scoring == "greedy" else config.alpharl_acceptance_samples
    acceptance = config.alpharl_acceptance_prompts * samples * (1 + len(candidates))
    plan.alpharl = {
        "snapshot_steps": snapshots,
        "window_end": end,
        "window_share": end / max_steps if max_steps > 0 else None,
        "targets": targets,
        "candidates": candidates,
        "window_store_snapshots": len(snapshots) if any(c.family in WINDOW_FAMILIES for c in built) else 0,
        "covariate": config.alpharl_covariate,
        "jumps": config.alpharl_jumps,
        "stop_step": schedule.stop_step,
        "acceptance_completions": acceptance,
    }
    if acceptance:
        plan.alpharl["gate"] = gate = gate_cost(values, launch, plan, acceptance, tokens_per_second, forced)
        if gate["share"] is not None and gate["share"] > GATE_SHARE_LIMIT:
            plan.warnings.append(
                f"AlphaRL's gate generates {gate['share']:.0%} of the run's tokens (over "
                f"{GATE_SHARE_LIMIT:.0%}): lower alpharl_acceptance_prompts/_samples or the horizons"
            )
    if config.alpharl_jumps > 1:
        plan.notes.append(
            f"AlphaRL jumps {config.alpharl_jumps} times (steps "
            f"{', '.join(map(str, schedule.jump_steps))}): the gate's cost per "
            "swap below is paid at each"
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


def gate_cost(
    values: dict,
    launch: Launch,
    plan: Plan,
    completions: int,
    tokens_per_second: float | None,
    forced: bool = False,
) -> dict:
    """What one swap's acceptance gate generates, through the trainer's engine, against the run's rollouts.

    Both are counted at `max_completion_length` tokens per completion (an upper bound; real completions stop
    earlier, about equally often in both), so their ratio needs no throughput: it is the gate's share of the
    run's generation, and at most its share of the run (training compute comes on top). The time needs a
    throughput: a rough default per engine and process, or the user's `--gate-tokens-per-second`. A `forced`
    gate (exact scoring) generates nothing: its `completions` are gold ones, read in one forward pass each,
    and no generation throughput prices them (no hours)."""
    engine = "teacher_forced" if forced else "vllm" if values.get("use_vllm") else "transformers"
    length = values["max_completion_length"]
    tps = None if forced else tokens_per_second or DEFAULT_TOKENS_PER_SECOND[engine]
    tokens = completions * length
    rollout_tokens = None
    per_generation = plan.batch.get("optimizer_steps_per_generation")
    steps = plan.alpharl["stop_step"] or values["max_steps"]  # a run AlphaRL stops early is that much shorter
    if per_generation and steps > 0:
        rollouts = math.ceil(steps / per_generation)
        rollout_tokens = rollouts * plan.batch["generation_completions"] * length
    step_completions = plan.batch.get("optimizer_step_completions")
    return {
        "engine": engine,
        "completions": completions,
        # a training step generates its completions too: the gate's generation in steps of generation
        "steps": completions / step_completions if step_completions else None,
        "tokens": tokens,
        "tokens_per_second": tps,
        "hours": None if forced else tokens / (tps * launch.processes) / 3600,
        # a share of the run's generation; a forced gate generates nothing (its cost is forward passes)
        "share": tokens / (tokens + rollout_tokens) if rollout_tokens and not forced else None,
    }


# memory estimate ---------------------------------------------------------------------------------------
def memory_plan(values: dict, launch: Launch, model: ModelSize, gpu_gb: float, plan: Plan) -> None:
    """Per-GPU GiB of the training peak (ZeRO paper arithmetic + rough activations) and CPU at the swap."""
    p, n = model.params, launch.processes
    half = precision(values, launch) != "fp32"
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
        kept = plan.alpharl["window_store_snapshots"]
        if kept:  # candidates.WINDOW_FAMILIES: every snapshot's tracked weights, shared out over the ranks
            plan.memory["disk_window_store"] = kept * _tracked(p, model.config) * load_bytes / GIB


def precision(values: dict, launch: Launch) -> str:
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


def _tracked(p: int, arch: dict) -> int:
    """Parameters AlphaRL tracks by default: all but the embeddings and an untied lm_head."""
    embeddings = arch["vocab_size"] * arch["hidden_size"] * (1 if arch["tie_word_embeddings"] else 2)
    return max(p - embeddings, 0)


def _swap_cpu(p: int, arch: dict, load_bytes: int, launch: Launch) -> float:
    """The callback keeps W_0 of owned matrices per rank and, at the swap, W_K + one candidate of every
    tracked matrix on every rank (WindowSwap): CPU bytes on one node at that moment."""
    tracked = _tracked(p, arch)
    per_node = launch.processes // launch.machines
    return per_node * (tracked * load_bytes / launch.processes + 2 * tracked * load_bytes)
