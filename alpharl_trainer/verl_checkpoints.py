"""A verl FSDP actor checkpoint (`global_step_N/actor/model_world_size_W_rank_R.pt`, one file per rank) read
as the whole model, its shards joined the way verl's model merger (verl/model_merger/fsdp_model_merger.py)
joins them: every value of rank 0's state dict is a DTensor whose placement says how the ranks' local tensors
join (`Shard(d)`: concatenated in rank order along d; `Replicate()`: rank 0's), and a plain tensor (a buffer)
is rank 0's. Under verl's default mixed precision these are the fp32 master weights, which the merger
would cast to bf16. The config and tokenizer are in `actor/huggingface/`.

The files are pickles. Reading them is opt-in (`--allow-pickle`), and even then they are loaded with
`weights_only=True` (torch allows DTensors and device meshes there once `torch.distributed.tensor` is
imported; no process group is needed) and memory-mapped: `get` reads one tensor's shards only.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import torch

from alpharl_trainer.errors import AlphaRLError

_RANK_FILE = re.compile(r"model_world_size_(\d+)_rank_(\d+)\.pt$")
HF_SUBFOLDER = "huggingface"


def is_verl_fsdp_folder(folder: str | Path) -> bool:
    """A folder holding verl's FSDP model shards (`model_world_size_W_rank_R.pt`): verl's `actor` folder."""
    return any(_RANK_FILE.match(p.name) for p in Path(folder).glob("model_world_size_*_rank_*.pt"))


def _is_dtensor(tensor: object) -> bool:
    # imported here: torch.distributed.tensor takes a second or two to import, and only this reader needs it
    from torch.distributed.tensor import DTensor

    return isinstance(tensor, DTensor)


def _local(tensor: torch.Tensor) -> torch.Tensor:
    """A rank's own part of a DTensor (its local shard), or the plain tensor itself."""
    return tensor._local_tensor if _is_dtensor(tensor) else tensor


def _load_rank(path: Path) -> dict:
    import torch.distributed.tensor  # noqa: F401  (registers DTensor & co. with the weights_only unpickler)

    # Unpickling a device mesh outside a process group logs a warning about torch.compile; it does not apply.
    mesh_log = logging.getLogger("torch.distributed.device_mesh")
    level = mesh_log.level
    mesh_log.setLevel(logging.ERROR)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:  # torch raises many exception types for a bad pickle
        raise AlphaRLError(f"corrupt, truncated or unreadable verl FSDP shard {path}: {err}") from err
    finally:
        mesh_log.setLevel(level)
    if not isinstance(state, dict) or not all(isinstance(t, torch.Tensor) for t in state.values()):
        raise AlphaRLError(f"verl FSDP shard {path} is not a state dict of tensors")
    return state


class VerlFsdpReader:
    """The weights of verl's FSDP actor checkpoint in `folder` (CheckpointReader's interface)."""

    def __init__(self, folder: str | Path, allow_pickle: bool = False):
        self.folder = Path(folder)
        self.model_folder = self.folder / HF_SUBFOLDER
        """verl writes the model's config and tokenizer to `actor/huggingface/`."""
        if not allow_pickle:
            raise AlphaRLError(
                f"{self.folder} is a verl FSDP checkpoint: its model_world_size_*_rank_*.pt shards are "
                "pickles, which can run code when loaded; pass --allow-pickle if you trust them (or merge "
                f"them with verl's model merger and give {self.model_folder})"
            )
        world = self._world_size()
        files = [self.folder / f"model_world_size_{world}_rank_{r}.pt" for r in range(world)]
        self._ranks = [_load_rank(path) for path in files]
        self._placements: dict[str, tuple] = {}
        self._shape: dict[str, tuple[int, ...]] = {}
        seen: set[tuple] = set()
        for name, tensor in self._ranks[0].items():
            self._check(name, tensor, world)
            local = _local(tensor)
            # A tied weight (lm_head sharing the embedding) may be saved under both names, one storage: keep
            # the first name, as `save_pretrained` writes a tied model.
            key = (local.untyped_storage().data_ptr(), local.storage_offset(), local.shape, local.stride())
            if local.untyped_storage().nbytes() > 0 and key in seen:
                continue
            seen.add(key)
            self._placements[name] = tuple(tensor.placements) if _is_dtensor(tensor) else ()
            self._shape[name] = tuple(tensor.shape)
        for rank, state in enumerate(self._ranks):
            extra = [n for n in state if n not in self._ranks[0]]
            if extra:
                raise AlphaRLError(
                    f"tensor {extra[0]} of verl FSDP checkpoint {self.folder} is in rank {rank}'s shard but "
                    "missing in rank 0's: the checkpoint is damaged"
                )
        head = self._shape.get("lm_head.weight")
        others = [shape for name, shape in self._shape.items() if name != "lm_head.weight"]
        if self._ties_embeddings() and head in others:
            del self._placements["lm_head.weight"], self._shape["lm_head.weight"]  # save_pretrained drops it

    def _world_size(self) -> int:
        """W from the file names, which must all agree (and with `fsdp_config.json`), ranks 0..W-1 present."""
        found = [m for p in sorted(self.folder.iterdir()) if (m := _RANK_FILE.match(p.name))]
        sizes = sorted({int(m.group(1)) for m in found})
        if len(sizes) != 1:
            raise AlphaRLError(
                f"verl FSDP checkpoint {self.folder} mixes shards of world sizes "
                f"{', '.join(map(str, sizes))}: keep the files of one save only"
                if sizes
                else f"no model_world_size_W_rank_R.pt shard in {self.folder}"
            )
        world = sizes[0]
        config = self.folder / "fsdp_config.json"
        if config.is_file():
            try:
                recorded = json.loads(config.read_text()).get("world_size")
            except (OSError, ValueError, AttributeError) as err:
                raise AlphaRLError(f"unreadable {config}: {err}") from err
            if recorded is not None and recorded != world:
                raise AlphaRLError(
                    f"{config} says world size {recorded} but the shards in {self.folder} are of world size "
                    f"{world}"
                )
        ranks = {int(m.group(2)) for m in found}
        missing = [f"model_world_size_{world}_rank_{r}.pt" for r in range(world) if r not in ranks]
        if missing:
            raise AlphaRLError(
                f"verl FSDP checkpoint {self.folder} is incomplete: world size {world}, missing "
                f"{', '.join(missing)}"
            )
        if max(ranks) >= world:
            raise AlphaRLError(
                f"verl FSDP checkpoint {self.folder} has a shard of rank {max(ranks)} >= W={world}"
            )
        return world

    def _check(self, name: str, tensor: torch.Tensor, world: int) -> None:
        """Every rank holds `name` placed alike, and its local shards add up to its (global) shape."""
        where = f"tensor {name} of verl FSDP checkpoint {self.folder}"
        if _is_dtensor(tensor):
            mesh = tensor.device_mesh
            if mesh.ndim != 1:
                raise AlphaRLError(
                    f"{where} is placed on a {mesh.ndim}-D device mesh {mesh.mesh_dim_names} (HSDP or tensor "
                    "parallel): only 1-D FSDP meshes are read; merge it with verl's model merger"
                )
            if mesh.size() != world:
                raise AlphaRLError(
                    f"{where} is on a mesh of {mesh.size()} ranks, but there are {world} shards"
                )
            if not (tensor.placements[0].is_shard() or tensor.placements[0].is_replicate()):
                raise AlphaRLError(f"{where} has placement {tensor.placements[0]}, which is not read")
        shards = []
        for rank, state in enumerate(self._ranks):
            other = state.get(name)
            if other is None:
                raise AlphaRLError(f"{where} is missing in rank {rank}'s shard: the checkpoint is damaged")
            if _is_dtensor(other) != _is_dtensor(tensor) or (
                _is_dtensor(tensor) and tuple(other.placements) != tuple(tensor.placements)
            ):
                raise AlphaRLError(f"{where} is placed differently in rank {rank}'s shard than in rank 0's")
            shards.append(tuple(_local(other).shape))
        if _is_dtensor(tensor) and tensor.placements[0].is_shard():
            dim = tensor.placements[0].dim
            joined = list(shards[0])
            joined[dim] = sum(s[dim] for s in shards)
            ok = all(s[:dim] + s[dim + 1 :] == shards[0][:dim] + shards[0][dim + 1 :] for s in shards)
        else:
            joined, ok = list(shards[0]), all(s == shards[0] for s in shards)
        if not ok or tuple(joined) != tuple(tensor.shape):
            raise AlphaRLError(
                f"{where}: the ranks' shards {[list(s) for s in shards]} do not make its shape "
                f"{list(tensor.shape)}"
            )

    def _ties_embeddings(self) -> bool:
        try:
            config = json.loads((self.model_folder / "config.json").read_text())
        except (OSError, ValueError):
            return False  # predict refuses a missing or broken config with its own message
        return isinstance(config, dict) and config.get("tie_word_embeddings") is True

    def names(self) -> list[str]:
        return list(self._shape)

    def __contains__(self, name: str) -> bool:
        return name in self._shape

    def shape(self, name: str) -> tuple[int, ...]:
        if name not in self._shape:
            raise AlphaRLError(f"tensor {name} is missing in checkpoint {self.folder}")
        return self._shape[name]

    def dtype(self, name: str) -> torch.dtype:
        self.shape(name)
        return self._ranks[0][name].dtype

    def get(self, name: str) -> torch.Tensor:
        """The whole tensor, in its stored dtype, on CPU: its shards read and joined now."""
        self.shape(name)
        placements = self._placements[name]
        if not placements or placements[0].is_replicate():
            return _local(self._ranks[0][name]).detach()
        try:
            return torch.cat([_local(state[name]).detach() for state in self._ranks], dim=placements[0].dim)
        except RuntimeError as err:  # a shard's data cut short
            raise AlphaRLError(f"cannot read tensor {name} from the shards in {self.folder}: {err}") from err
