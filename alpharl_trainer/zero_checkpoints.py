"""A DeepSpeed ZeRO checkpoint (`checkpoint-N/global_stepN/*_model_states.pt` + optimizer shards) read as its
fp32 master weights, through DeepSpeed's own reconstruction (`get_fp32_state_dict_from_zero_checkpoint`,
lazily: under ZeRO-3 one tensor is gathered from the shards at a time). For a bf16 run these are more
faithful than the 16-bit copy in `model.safetensors`, and they are all there is when ZeRO-3 did not gather
16-bit weights at save. Its files are pickles, which can run code when loaded: reading them is opt-in
(`--allow-pickle`), and the error says so.
"""

from __future__ import annotations

from pathlib import Path

import torch

from alpharl_trainer.errors import AlphaRLError


def is_zero_folder(folder: str | Path) -> bool:
    """A checkpoint folder holding a DeepSpeed checkpoint (`latest` naming a `global_step*` subfolder)."""
    folder = Path(folder)
    return (folder / "latest").is_file() and any(folder.glob("global_step*/*_model_states.pt"))


class ZeroReader:
    """The fp32 master weights of the ZeRO checkpoint in `folder` (CheckpointReader's interface)."""

    def __init__(self, folder: str | Path, allow_pickle: bool = False):
        self.folder = self.model_folder = Path(folder)
        if not allow_pickle:
            raise AlphaRLError(
                f"{self.folder} is a DeepSpeed ZeRO checkpoint: its shards are pickles, which can run code "
                "when loaded; pass --allow-pickle if you trust them (or convert with its zero_to_fp32.py)"
            )
        from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

        try:
            state = get_fp32_state_dict_from_zero_checkpoint(str(self.folder), lazy_mode=True)
        except (OSError, ValueError, KeyError, RuntimeError, AssertionError, EOFError) as err:
            raise AlphaRLError(f"unreadable DeepSpeed ZeRO checkpoint {self.folder}: {err}") from err
        # A tied weight (lm_head sharing the embedding) is listed under both names, as one object: keep the
        # first name, as `save_pretrained` writes a tied model.
        seen: set[int] = set()
        self._state = {}
        for name, entry in state.items():
            if id(entry) not in seen:
                seen.add(id(entry))
                self._state[name] = entry

    def names(self) -> list[str]:
        return list(self._state)

    def __contains__(self, name: str) -> bool:
        return name in self._state

    def _entry(self, name: str):
        if name not in self._state:
            raise AlphaRLError(f"tensor {name} is missing in checkpoint {self.folder}")
        return self._state[name]

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self._entry(name).shape)

    def dtype(self, name: str) -> torch.dtype:
        return self._entry(name).dtype

    def get(self, name: str) -> torch.Tensor:
        """The tensor in fp32, whole (gathered from the shards now under ZeRO-3)."""
        entry = self._entry(name)
        return entry.contiguous().detach() if isinstance(entry, torch.Tensor) else entry.contiguous()
