"""The saved model's README.md: where the weights came from, what was forecast, and what it scores.

A model whose weights were partly *predicted* should say so where people look first. TRL writes a generic
card into output_dir at every checkpoint, naming the base model only when it is a hub id (so `None` for
every local policy, which is all this project loads) with a chat-style usage example. After the final
save `write_alpharl_card` replaces it with one that names the base policy, reports the measured test
accuracy when the run scored it, and has an AlphaRL section built from the callback's `SwapRecord` (the
record saved in `checkpoint-N/alpharl/state.json`).
"""

from __future__ import annotations

import os
from pathlib import Path

from alpharl_trainer.atomic import atomic_file
from alpharl_trainer.trainer.candidates import describe
from alpharl_trainer.trainer.decision import SwapRecord

BEGIN = "<!-- alpharl:begin -->"
END = "<!-- alpharl:end -->"
PAPER = "[AlphaRL](https://arxiv.org/abs/2510.00553) (Cai et al., 2025)"


def alpharl_section(
    swap: SwapRecord | None,
    config,
    snapshots: list[int],
    base_model: str,
    max_steps: int,
    swaps: list[SwapRecord] | None = None,
) -> str:
    """Markdown describing the forecast (the last jump's, with every jump listed when there were several);
    `config` is the run's AlphaRLConfig (or has its fields)."""
    lines = [BEGIN, "## AlphaRL weight extrapolation", ""]
    if swap is None:
        lines += [
            f"AlphaRL was enabled, but training stopped before its window closed "
            f"(window end: step {config.schedule(max_steps).length}); these weights are ordinary "
            "training weights, nothing was forecast.",
            END,
        ]
        return "\n".join(lines) + "\n"
    chosen = swap.chosen
    unit = config.alpharl_covariate  # 'step' or 'reward': a target's unit
    lines += [
        f"Trained with RL from `{base_model}`. At step {swap.step} the rank-1 trajectory of every tracked "
        f"weight update was fitted and extrapolated with {PAPER}; the candidate forecasts below were scored "
        "on held-out prompts.",
        "",
        "| | |",
        "|---|---|",
        f"| window (snapshot steps) | {', '.join(map(str, snapshots)) or 'none'} |",
        f"| fit | {config.alpharl_fit} of a_t = s_t u_t against the {unit} |",
        f"| apply mode | {config.alpharl_mode}, scale {config.alpharl_scale:g} |",
        f"| forecast {unit}s | {', '.join(f'{t:g}' for t in swap.targets)} |",
        f"| candidates | {', '.join(map(str, swap.candidates or swap.targets))} |",
        f"| mean R² of the rank-1 state's line fits | {swap.mean_fit_r2:.3f} |",
    ]
    scores = swap.scores
    if scores:
        table = ", ".join(f"{name}: {score:.4f}" for name, score in scores.items())
        lines.append(f"| held-out acceptance scores | {table} |")
    if chosen is None:
        lines.append("| outcome | **rolled back**: no candidate beat the current weights, which were kept |")
    else:
        delta = swap.delta_norm
        size = f" (weight change norm {delta:.4g})" if delta is not None else ""
        lines.append(f"| outcome | **applied**: {describe(chosen, unit)}{size} |")
    if swaps and len(swaps) > 1:
        each = [
            f"step {s.step}: {'kept W_K' if s.chosen is None else describe(s.chosen, unit)}" for s in swaps
        ]
        lines.append(f"| jumps (each from the snapshots since the previous one) | {'; '.join(each)} |")
    after = "trained on to max_steps" if config.alpharl_continue_after_swap else "then stopped"
    lines.append(f"| after the swap | {config.alpharl_finetune_steps} ordinary RL step(s), {after} |")
    lines += [
        "",
        "Evaluate before relying on it: extrapolated weights can be worse off the training task.",
        END,
    ]
    return "\n".join(lines) + "\n"


def accuracy_section(test: dict) -> str:
    """The run's test accuracy per stage (train.py's summary["test"]), as a Markdown table."""
    lines = [
        "## Test accuracy",
        "",
        f"{test['problems']} test-split problems, {test['scoring']}; the difference column is against the "
        f"stage named, with a {test['interval']}.",
        "",
        "| stage | step | accuracy | difference |",
        "|---|---|---|---|",
    ]
    for row in test["stages"]:
        diff = ""
        if "paired" in row:
            p = row["paired"]
            diff = f"{p['diff']:+.3f} [{p['ci95_low']:+.3f}, {p['ci95_high']:+.3f}] vs {row['vs']}"
        lines.append(f"| {row['stage']} | {row['step']} | {row['accuracy']:.3f} | {diff} |")
    return "\n".join(lines) + "\n"


def model_card(name: str, callback, base_model: str, trainer_name: str, test: dict | None = None) -> str:
    """The whole card: header, provenance, test accuracy (if measured) and the AlphaRL section."""
    import torch
    import transformers
    import trl
    from huggingface_hub import ModelCardData

    from alpharl_trainer.policies import looks_like_hub_id

    # `base_model` is metadata the hub links: a hub id only (a local folder is named in the text instead)
    data = ModelCardData(
        library_name="transformers",
        base_model=base_model if looks_like_hub_id(base_model) else None,
        tags=["alpharl", "trl"],
    )
    header = ["---", data.to_yaml(), "---", ""]
    body = [
        f"# {name}",
        "",
        f"Trained with {trainer_name} ([TRL](https://github.com/huggingface/trl) {trl.__version__}) and "
        f"{PAPER} weight extrapolation from the base policy `{base_model}`{_provenance(base_model)}.",
        "",
    ]
    if test:
        body.append(accuracy_section(test))
    body.append(
        alpharl_section(
            callback.swap,
            callback.config,
            list(callback.trajectory.steps),
            base_model,
            callback.trainer.args.max_steps,
            callback.swaps,
        )
    )
    body += [
        "## Framework versions",
        "",
        f"- TRL {trl.__version__}, Transformers {transformers.__version__}, PyTorch {torch.__version__}",
        "",
    ]
    return "\n".join(header + body)


def _provenance(base_model: str) -> str:
    """For a shipped or converted policy: where it comes from and its weights' checksum (the exact start)."""
    from alpharl_trainer.policies import SHIPPED, checksums
    from alpharl_trainer.policies.converted import CONVERTED, pinned_sums

    if base_model in CONVERTED:
        source = CONVERTED[base_model]
        sums = dict(line.split()[::-1] for line in pinned_sums(base_model).read_text().splitlines())
        return (
            f" (converted to float32 from `{source.file}` of {source.package}=={source.version}, "
            f"model.safetensors sha256 `{sums['model.safetensors'][:16]}`)"
        )
    if base_model not in SHIPPED:
        return ""
    return (
        f" (shipped with alpharl-trainer in `alpharl_trainer/policies/{base_model}`, model.safetensors "
        f"sha256 `{checksums(base_model)['model.safetensors'][:16]}`)"
    )


def write_alpharl_card(
    output_dir: str | os.PathLike, callback, base_model: str, test: dict | None = None
) -> Path:
    """Write the model card of an attached AlphaRLCallback's run to output_dir/README.md, atomically."""
    path = Path(output_dir) / "README.md"
    trainer_name = getattr(callback.trainer, "_name", type(callback.trainer).__name__)
    text = model_card(Path(output_dir).resolve().name, callback, base_model, trainer_name, test)
    with atomic_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path
