"""A PEFT LoRA adapter folder read as the full model it makes with its base: `W = W_base + s B A`.

`alpharl predict` / `analyze` take a LoRA run's checkpoints (`adapter_model.safetensors` and
`adapter_config.json`: TRL's and verl's `lora_adapter/`) as they take merged folders: each tracked matrix
is merged on the fly, one tensor at a time, in float32 (`s` = lora_alpha / r, or / sqrt(r) with rsLoRA), and
cast back to the base's dtype, as `merge_and_unload` does. The written forecast is a full model folder:
config and tokenizer files come from the base. Adapters this cannot merge exactly (DoRA, per-module ranks or
alphas, embedding or convolution adapters) are refused by name.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from alpharl_trainer.checkpoints import CheckpointReader
from alpharl_trainer.errors import AlphaRLError

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"


def is_adapter_folder(folder: str | Path) -> bool:
    return (Path(folder) / ADAPTER_CONFIG).is_file()


def _scaling(config: dict, folder: Path) -> float:
    if config.get("peft_type", "LORA") != "LORA":
        raise AlphaRLError(f"adapter {folder}: a {config.get('peft_type')} adapter, not LoRA")
    for key in ("use_dora", "rank_pattern", "alpha_pattern"):
        if config.get(key):
            raise AlphaRLError(f"adapter {folder}: {key} is set; only plain LoRA adapters are merged")
    r, alpha = int(config["r"]), float(config["lora_alpha"])
    return alpha / math.sqrt(r) if config.get("use_rslora") else alpha / r


class AdapterReader:
    """The tensors of `base` with the LoRA adapter in `folder` merged in (CheckpointReader's interface)."""

    def __init__(self, folder: str | Path, base: CheckpointReader):
        self.folder, self.base = Path(folder), base
        self.model_folder = base.model_folder
        """Where config and tokenizer files come from: the base (an adapter folder has neither)."""
        try:
            config = json.loads((self.folder / ADAPTER_CONFIG).read_text())
            self.scaling = _scaling(config, self.folder)
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise AlphaRLError(f"adapter {self.folder}: unreadable {ADAPTER_CONFIG}: {err}") from err
        if not (self.folder / ADAPTER_WEIGHTS).is_file():
            raise AlphaRLError(f"adapter {self.folder}: no {ADAPTER_WEIGHTS}")
        try:  # two small factors per adapted matrix: read whole
            self.tensors = load_file(self.folder / ADAPTER_WEIGHTS)
        except (SafetensorError, OSError) as err:
            raise AlphaRLError(f"adapter {self.folder}: unreadable {ADAPTER_WEIGHTS}: {err}") from err
        self.factors: dict[str, tuple[str, str]] = {}
        """Base weight name -> (lora_B name, lora_A name) in the adapter."""
        for name in self.tensors:
            if ".lora_A." not in name:
                if ".lora_B." not in name:
                    raise AlphaRLError(f"adapter {self.folder}: tensor {name} is not a LoRA factor")
                continue
            module = name.split(".lora_A.")[0].removeprefix("base_model.model.")
            target = f"{module}.weight"
            if target not in base:
                raise AlphaRLError(f"adapter {self.folder}: it adapts {target}, which the base does not have")
            self.factors[target] = (name.replace(".lora_A.", ".lora_B."), name)
        if not self.factors:
            raise AlphaRLError(f"adapter {self.folder}: no LoRA factor in {ADAPTER_WEIGHTS}")

    def names(self) -> list[str]:
        return self.base.names()

    def __contains__(self, name: str) -> bool:
        return name in self.base

    def shape(self, name: str) -> tuple[int, ...]:
        return self.base.shape(name)

    def dtype(self, name: str) -> torch.dtype:
        return self.base.dtype(name)

    def get(self, name: str) -> torch.Tensor:
        """The base tensor, merged with its adapter factors when it has them."""
        weight = self.base.get(name)
        if name not in self.factors:
            return weight
        b_name, a_name = self.factors[name]
        b, a = self.tensors[b_name].float(), self.tensors[a_name].float()
        if b.shape[0] != weight.shape[0] or a.shape[1] != weight.shape[1] or b.shape[1] != a.shape[0]:
            raise AlphaRLError(
                f"adapter {self.folder}: factors of {name} are {list(b.shape)} x {list(a.shape)}, the base "
                f"weight is {list(weight.shape)}"
            )
        return (weight.float() + self.scaling * (b @ a)).to(weight.dtype)
