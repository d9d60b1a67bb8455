"""Tiny real Hugging Face checkpoint series with a planted rank-1 linear trajectory.

Every attention/MLP projection moves as `W_t = W_0 + t * a v^T + noise_t`, so the truth at any future
step is known; every other tensor (embeddings, norms, biases) drifts randomly from checkpoint to
checkpoint, so a test can tell "copied from the last checkpoint" from "copied from the base".
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from transformers import AutoModelForCausalLM, Qwen2Config  # noqa: E402

PROJECTION = re.compile(r"(q|k|v|o|gate|up|down)_proj\.weight$")


def tiny_config(tie_word_embeddings: bool = True) -> Qwen2Config:
    return Qwen2Config(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        vocab_size=64,
        max_position_embeddings=64,
        tie_word_embeddings=tie_word_embeddings,
    )


@dataclass
class Series:
    base: Path
    checkpoints: list[Path]
    steps: list[int]
    base_state: dict[str, torch.Tensor]
    slopes: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)  # name -> (a, v)

    def planted(self, name: str, step: float) -> torch.Tensor:
        """The noise-free weight of a projection at `step`."""
        a, v = self.slopes[name]
        return self.base_state[name] + step * torch.outer(a, v)


def make_series(
    root: Path,
    steps: tuple[int, ...] = (10, 20, 30, 40),
    *,
    noise: float = 1e-5,
    drift: float = 0.01,
    seed: int = 0,
    tie_word_embeddings: bool = True,
    max_shard_size: str | None = None,
    dtype: torch.dtype = torch.float32,
    name: str = "checkpoint-{step}",
) -> Series:
    """Save a base (`root/base`) and one checkpoint per step (`root/<name>`) with save_pretrained."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(tiny_config(tie_word_embeddings)).to(dtype)
    save_kw = {"max_shard_size": max_shard_size} if max_shard_size else {}
    root.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(root / "base", **save_kw)
    params = dict(model.named_parameters())  # tied weights appear once
    base_state = {n: p.detach().float().clone() for n, p in params.items()}
    series = Series(root / "base", [], list(steps), base_state)
    for n, p in params.items():
        if PROJECTION.search(n):
            a = torch.randn(p.shape[0], generator=gen)
            v = torch.randn(p.shape[1], generator=gen)
            # per step, the planted update is `drift` times the base norm
            scale = drift * base_state[n].norm() / (a.norm() * v.norm())
            series.slopes[n] = (a * scale, v)
    with torch.no_grad():
        for step in steps:
            for n, p in params.items():
                if n in series.slopes:
                    weight = series.planted(n, step) + noise * torch.randn(p.shape, generator=gen)
                else:
                    weight = base_state[n] + 0.01 * torch.randn(p.shape, generator=gen)
                p.copy_(weight.to(dtype))
            folder = root / name.format(step=step)
            model.save_pretrained(folder, **save_kw)
            series.checkpoints.append(folder)
    return series


def load_model(folder: Path) -> torch.nn.Module:
    return AutoModelForCausalLM.from_pretrained(folder)
