"""The plan as the lines `alpharl train --dry-run` prints."""

from __future__ import annotations

from typing import TYPE_CHECKING

from alpharl_trainer.plan.estimates import precision

if TYPE_CHECKING:
    from alpharl_trainer.plan.result import Plan


def _count(n: float) -> str:
    return f"{n / 1e9:.3g} B" if n >= 1e9 else f"{n / 1e6:.3g} M"


def format_plan(plan: Plan) -> str:
    v, launch, b, a = plan.values, plan.launch, plan.batch, plan.alpharl
    stage = f" ZeRO-{launch.zero_stage}" if launch.zero_stage is not None else ""
    lines = [
        f"recipe     {plan.recipe}  (trainer {plan.trainer}, output_dir {v['output_dir']})",
        f"launch     {launch.processes} process(es) on {launch.machines} machine(s), {launch.distributed}"
        f"{stage}, {precision(v, launch)}; from {launch.source}",
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
            f"           forecast {unit} {', '.join(f'{t:g}' for t in a['targets'])}; "
            f"{len(a['candidates'])} candidates ({', '.join(_families(a['candidates']))}); acceptance "
            f"samples {a['acceptance_completions']} completions; {stop}",
        ]
        gate = a.get("gate")
        if gate:
            share = f"; at most {gate['share']:.1%} of the run's generated tokens" if gate["share"] else ""
            if gate.get("steps") and gate["hours"] is not None:
                share += f"; the generation of {gate['steps']:.1f} training steps"
            size = f"{gate['completions']} completions <= {v['max_completion_length']} tokens"
            if gate["hours"] is None:  # exact scoring: gold completions read, none generated
                steps = f"; the tokens of {gate['steps']:.1f} training steps" if gate.get("steps") else ""
                lines.append(
                    f"gate       per swap {gate['completions']} gold completions read teacher-forced (one "
                    f"forward pass each, nothing generated{steps}, about a quarter of that in compute)"
                )
            else:
                lines.append(
                    f"gate       per swap {size} ({_count_tokens(gate['tokens'])} tokens) through "
                    f"{gate['engine']}: ~{_duration(gate['hours'])} at {gate['tokens_per_second']:g} "
                    f"tokens/s per process{share}"
                )
    if plan.memory:
        off_gpu = ("total", "cpu_per_node_at_swap", "disk_window_store")
        items = {k: g for k, g in plan.memory.items() if k not in off_gpu}
        parts = " + ".join(f"{k} {g:.1f}" for k, g in items.items())
        lines.append(f"memory/GPU {plan.memory['total']:.1f} GiB estimated = {parts}")
    if "cpu_per_node_at_swap" in plan.memory:
        lines.append(
            f"CPU/node   {plan.memory['cpu_per_node_at_swap']:.1f} GiB at the AlphaRL swap (W_0 shares + W_K "
            "and one candidate of the tracked matrices on every rank)"
        )
    if "disk_window_store" in plan.memory:
        lines.append(
            f"disk       {plan.memory['disk_window_store']:.1f} GiB under output_dir/alpharl/window/: the "
            "tracked weights of every snapshot, read by the fixed-basis and averaging candidates"
        )
    lines += [f"note       {n}" for n in plan.notes]
    lines += [f"WARNING    {w}" for w in plan.warnings]
    lines += [f"ERROR      {e}" for e in plan.errors]
    lines.append(
        "plan OK: no weights were loaded" if not plan.errors else f"plan has {len(plan.errors)} error(s)"
    )
    return "\n".join(lines)


def _count_tokens(n: float) -> str:
    return f"{n / 1e9:.3g} G" if n >= 1e9 else f"{n / 1e6:.3g} M" if n >= 1e6 else f"{n:,.0f}"


def _duration(hours: float) -> str:
    return (
        f"{hours:.1f} h"
        if hours >= 1
        else f"{hours * 60:.0f} min"
        if hours * 60 >= 1
        else f"{hours * 3600:.0f} s"
    )


def _families(labels: list[str]) -> list[str]:
    """'9 rank-1, 6 fixed-basis, 6 expo, 1 average' from the candidates' labels."""
    counts: dict[str, int] = {}
    for label in labels:
        family = "rank-1" if label[:1].isdigit() else label.split(" ")[0]
        counts[family] = counts.get(family, 0) + 1
    return [f"{n} {family}" for family, n in counts.items()]
