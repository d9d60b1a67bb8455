"""A model's size without its weights: `config.json` instantiated on the meta device, else the known
architectures of the paper recipes (matched on the folder's name), else a parameter count given by hand."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.policies import SHIPPED

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


@dataclass
class ModelSize:
    params: int
    source: str
    config: dict | None = None
    """hidden_size, num_hidden_layers, vocab_size, max_position_embeddings, tie_word_embeddings, dtype."""


def resolve_model(path: str, params_hint: float | None) -> ModelSize | None:
    """Parameter count (and architecture when known) without reading a single weight."""
    from alpharl_trainer.policies import ROOT
    from alpharl_trainer.policies.converted import CONVERTED, cache_root

    folder = ROOT / path if path in SHIPPED else cache_root() / path if path in CONVERTED else Path(path)
    if (folder / "config.json").is_file():
        where = f"{folder}/config.json"
        return _size(_read_config(folder / "config.json"), where, f"{where} (meta-device build)")
    if params_hint:
        return ModelSize(int(params_hint), "--model-params")
    name = Path(path).name.lower()
    for key in sorted(KNOWN_CONFIGS, key=len, reverse=True):
        if name.startswith(key):
            config = {**QWEN3_COMMON, **KNOWN_CONFIGS[key]}
            return _size(config, f"known architecture {key!r}", f"known architecture {key!r} (folder absent)")
    return None


def _read_config(path: Path) -> dict:
    """A model folder's config.json as a mapping with a `model_type`, or an AlphaRLError naming the file."""
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, RecursionError, ValueError) as err:
        raise AlphaRLError(f"{path} is not JSON ({err}): not a Hugging Face model config") from err
    if not isinstance(config, dict) or "model_type" not in config:
        raise AlphaRLError(f"{path} has no model_type: not a Hugging Face model config")
    return config


def _size(config: dict, where: str, source: str) -> ModelSize:
    """The size of the model `config` describes (`where` names it in messages)."""
    from transformers import AutoConfig

    settings = {
        k: v for k, v in config.items() if k not in ("model_type", "architectures", "transformers_version")
    }
    try:
        hf_config = AutoConfig.for_model(config["model_type"], **settings)
    except (ValueError, KeyError, TypeError) as err:
        raise AlphaRLError(
            f"{where}: transformers cannot build model_type {config['model_type']!r} ({err})"[:500]
        ) from err
    return ModelSize(_count_params(hf_config), source, _arch(config, hf_config, where))


def _count_params(hf_config) -> int:
    """Build the model on the meta device (shapes only, no memory) and count its parameters."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(hf_config)
    return sum(p.numel() for p in model.parameters())


def _arch(config: dict, hf_config, where: str) -> dict:
    """The sizes the memory estimate needs, by transformers' own names: a config that spells them its
    architecture's way (GPT-2's n_embd, n_layer, n_positions; T5's d_model) is read through the config
    class's attribute map."""
    text = config.get("text_config", config)  # multimodal configs nest the language model's
    hf_text = hf_config.get_text_config()
    sizes = {
        name: text.get(name, getattr(hf_text, name, None))
        for name in ("hidden_size", "num_hidden_layers", "vocab_size", "max_position_embeddings")
    }
    missing = [name for name in ("hidden_size", "num_hidden_layers", "vocab_size") if sizes[name] is None]
    if missing:
        raise AlphaRLError(f"{where} gives no {', '.join(missing)} (nor an alias transformers knows)")
    return {
        **sizes,
        "tie_word_embeddings": bool(
            config.get("tie_word_embeddings", text.get("tie_word_embeddings", False))
        ),
        "dtype": str(config.get("dtype") or config.get("torch_dtype") or "float32"),
    }
