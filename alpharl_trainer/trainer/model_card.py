"""The AlphaRL section of a saved model's README.md: what was forecast, from which window, and what was kept.

A model whose weights were partly *predicted* should say so where people look first. TRL writes a README.md
(model card) into output_dir at every checkpoint; after the final save, `write_alpharl_card` adds (or
replaces) one section between fixed markers, so a resumed run rewrites it instead of appending a second one.
The numbers come from the callback's `swap` record (the same dict saved in `checkpoint-N/alpharl/state.json`).
"""

from __future__ import annotations

import os
from pathlib import Path

BEGIN = "<!-- alpharl:begin -->"
END = "<!-- alpharl:end -->"
PAPER = "[AlphaRL](https://arxiv.org/abs/2510.00553) (Cai et al., 2025)"


def alpharl_section(swap: dict | None, config, snapshots: list[int], base_model: str, max_steps: int) -> str:
    """Markdown describing the forecast; `config` is the run's AlphaRLConfig (or has its fields)."""
    lines = [BEGIN, "## AlphaRL weight extrapolation", ""]
    if swap is None:
        lines += [
            f"AlphaRL was enabled, but training stopped before its window closed "
            f"(window end: step {config.window_end_step(max_steps)}); these weights are ordinary "
            "training weights, nothing was forecast.",
            END,
        ]
        return "\n".join(lines) + "\n"
    chosen = swap["chosen"]
    unit = "step" if config.alpharl_covariate == "step" else "reward"
    lines += [
        f"Trained with RL from `{base_model}`. At step {swap['step']} the rank-1 trajectory of every tracked "
        f"weight update was fitted and extrapolated with {PAPER}; the candidate forecasts below were scored "
        "on held-out prompts.",
        "",
        "| | |",
        "|---|---|",
        f"| window (snapshot steps) | {', '.join(map(str, snapshots)) or 'none'} |",
        f"| fit | {config.alpharl_fit} of a_t = s_t u_t against the {unit} |",
        f"| apply mode | {config.alpharl_mode}, scale {config.alpharl_scale:g} |",
        f"| candidate {unit}s | {', '.join(f'{t:g}' for t in swap['targets'])} |",
        f"| mean R² of the fits | {swap['mean_r2']:.3f} |",
    ]
    scores = swap.get("scores") or {}
    if scores:
        table = ", ".join(f"{name}: {score:.4f}" for name, score in scores.items())
        lines.append(f"| held-out acceptance scores | {table} |")
    if chosen is None:
        lines.append("| outcome | **rolled back**: no candidate beat the current weights, which were kept |")
    else:
        delta = swap.get("delta_norm")
        size = f" (weight change norm {delta:.4g})" if delta is not None else ""
        lines.append(f"| outcome | **forecast applied**: {unit} {chosen:g}{size} |")
    after = "trained on to max_steps" if config.alpharl_continue_after_swap else "then stopped"
    lines.append(f"| after the swap | {config.alpharl_finetune_steps} ordinary RL step(s), {after} |")
    lines += [
        "",
        "Evaluate before relying on it: extrapolated weights can be worse off the training task.",
        END,
    ]
    return "\n".join(lines) + "\n"


def merge_section(readme: str, section: str) -> str:
    """`readme` with its AlphaRL section replaced by `section` (appended when it has none)."""
    start, stop = readme.find(BEGIN), readme.find(END)
    if start != -1 and stop != -1:
        return readme[:start] + section.rstrip("\n") + readme[stop + len(END) :]
    return readme.rstrip("\n") + ("\n\n" if readme.strip() else "") + section


def write_alpharl_card(output_dir: str | os.PathLike, callback, base_model: str) -> Path:
    """Add the AlphaRL section of an attached AlphaRLCallback to output_dir/README.md, atomically."""
    path = Path(output_dir) / "README.md"
    section = alpharl_section(
        callback.swap,
        callback.config,
        list(callback.trajectory.steps),
        base_model,
        callback.trainer.args.max_steps,
    )
    readme = path.read_text(encoding="utf-8") if path.is_file() else ""
    tmp = path.with_name(f".README.md.tmp-{os.getpid()}")
    tmp.write_text(merge_section(readme, section), encoding="utf-8")
    os.replace(tmp, path)
    return path
