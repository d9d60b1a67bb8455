"""Streaming read and write of Hugging Face checkpoint folders.

Offline prediction touches every tensor of 1 + K checkpoints of a model that may not fit in memory
once, let alone K times. So the reader hands out one tensor at a time (safetensors is memory-mapped:
opening a shard reads only its header) and the writer streams tensors into shards, holding at most
one shard. Outputs are built in a temporary folder beside the destination and renamed into place,
so a failure never leaves a half-written checkpoint that `from_pretrained` would happily load.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from alpharl_trainer.atomic import atomic_dir, check_limits
from alpharl_trainer.checkpoint_names import hub_repo_folder
from alpharl_trainer.errors import AlphaRLError

SAFETENSORS_INDEX = "model.safetensors.index.json"
SAFETENSORS_SINGLE = "model.safetensors"
PICKLE_INDEX = "pytorch_model.bin.index.json"
PICKLE_SINGLE = "pytorch_model.bin"
# Files of an HF Trainer checkpoint folder that are pickles but not model weights.
_TRAINER_STATE_FILES = {"optimizer.pt", "scheduler.pt", "training_args.bin"}

# Non-weight files a predicted checkpoint needs to load and be used like its source.
MODEL_FILE_PATTERNS = (
    "config.json",
    "generation_config.json",
    "tokenizer*",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab*",
    "merges*",
    "chat_template*",
    "*.model",
    "*.py",  # modeling code of trust_remote_code models
)

DEFAULT_MAX_SHARD_BYTES = 2 * 1024**3  # the writer holds one shard in memory

_SAFETENSORS_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "F8_E4M3": torch.float8_e4m3fn,
    "F8_E5M2": torch.float8_e5m2,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}


def save_safetensors(tensors: dict[str, torch.Tensor], path: str | os.PathLike, metadata: dict | None = None):
    """safetensors' `save_file`, its I/O errors raised as the OSError they are: safetensors writes in Rust and
    reports a full disk as `SafetensorError("... No space left on device (os error 28)")`, which the atomic
    writers (`atomic.WRITE_ERRORS`) would otherwise let through as a traceback."""
    try:
        save_file(tensors, str(path), metadata=metadata)
    except SafetensorError as err:
        code = re.search(r"\(os error (\d+)\)", str(err))
        if code is None:
            raise
        raise OSError(int(code.group(1)), os.strerror(int(code.group(1))), str(path)) from err


def _plain_file_name(name: object) -> bool:
    """A file name without a folder part: an entry of a checkpoint's index names a file beside the index."""
    return (
        isinstance(name, str) and name not in ("", ".", "..") and Path(name).name == name and "\\" not in name
    )


def stays_inside(path: Path, folder: Path) -> bool:
    """Whether `path` is a regular file whose real location lies inside `folder`, or inside the repository
    folder of a hub cache snapshot (where every file is a link into `../../blobs/`): a link to anywhere else
    (`tokenizer_extra.json -> /etc/shadow`) must not be followed into an output."""
    real = path.resolve()
    roots = [folder.resolve(), hub_repo_folder(folder)]
    return real.is_file() and any(root is not None and root in real.parents for root in roots)


class CheckpointReader:
    """Tensors of one checkpoint folder, read one at a time.

    Safetensors (single file or sharded with an index) is the normal case. Pickled weights
    (`pytorch_model*.bin`, `*.pt`) can run code when loaded by older tools and are refused unless
    `allow_pickle=True`; even then they are loaded with `weights_only=True` and memory-mapped.
    """

    def __init__(self, folder: str | os.PathLike, allow_pickle: bool = False):
        self.folder = Path(folder)
        self.model_folder = self.folder
        """Where the model's config and tokenizer files are (an adapter's reader points at its base)."""
        if not self.folder.is_dir():
            raise AlphaRLError(f"checkpoint folder {self.folder} does not exist")
        self._file_of: dict[str, Path] = {}  # tensor name -> file holding it
        self._handles: dict[Path, object] = {}  # file -> safe_open handle or memory-mapped state dict
        index = self.folder / SAFETENSORS_INDEX
        single = self.folder / SAFETENSORS_SINGLE
        if index.is_file():
            self._file_of = self._read_index(index, self._open_safetensors)
        elif single.is_file():
            self._file_of = dict.fromkeys(self._open_safetensors(single), single)
        else:
            pickles = self._pickle_files()
            if not pickles:
                raise AlphaRLError(
                    f"no model weights ({SAFETENSORS_SINGLE} or {SAFETENSORS_INDEX}) in {self.folder}"
                )
            if not allow_pickle:
                raise AlphaRLError(
                    f"{self.folder} holds pickled weights ({', '.join(p.name for p in pickles)}); "
                    "pickles can run code when loaded: convert them to safetensors, or pass --allow-pickle "
                    "if you trust them"
                )
            if pickles[0].name == PICKLE_INDEX:
                self._file_of = self._read_index(pickles[0], self._open_pickle)
            elif len(pickles) > 1:
                names = ", ".join(p.name for p in pickles)
                raise AlphaRLError(f"{self.folder} holds several .pt files, cannot tell the weights: {names}")
            else:
                self._file_of = dict.fromkeys(self._open_pickle(pickles[0]), pickles[0])

    def _read_index(self, index: Path, open_file: Callable[[Path], list[str]]) -> dict[str, Path]:
        """Tensor name -> shard, from an HF index; every shard is opened and checked against it."""
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
            file_of = {name: self.folder / shard for name, shard in weight_map.items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as err:
            raise AlphaRLError(f"unreadable checkpoint index {index}: {err}") from err
        for name in file_of:  # an index may only name shards beside it, judged by the name: in
            # the hub cache every shard is a link into ../../blobs/ (and a shard is parsed, never copied)
            if not _plain_file_name(weight_map[name]):
                raise AlphaRLError(
                    f"{index} maps {name} to {weight_map[name]!r}, outside {self.folder}: a checkpoint's "
                    "shards must be files in its own folder"
                )
        held: dict[Path, set[str]] = {}
        for shard in dict.fromkeys(file_of.values()):
            if not shard.is_file():
                raise AlphaRLError(f"shard {shard} named in {index} is missing")
            held[shard] = set(open_file(shard))
        for name, shard in file_of.items():
            if name not in held[shard]:
                raise AlphaRLError(f"tensor {name} is not in {shard} although {index} says so")
        return file_of

    def _open_safetensors(self, path: Path) -> list[str]:
        """Parse the header (the data stays memory-mapped); return the tensor names."""
        try:
            handle = safe_open(str(path), framework="pt", device="cpu")
        except (SafetensorError, OSError) as err:
            raise AlphaRLError(f"corrupt or truncated safetensors file {path}: {err}") from err
        self._handles[path] = handle
        return handle.keys()

    def _open_pickle(self, path: Path) -> list[str]:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except Exception as err:  # torch raises many exception types for a bad pickle
            raise AlphaRLError(f"cannot load pickled weights {path}: {err}") from err
        if not isinstance(state, dict) or not all(isinstance(t, torch.Tensor) for t in state.values()):
            raise AlphaRLError(f"{path} is not a state dict of tensors")
        self._handles[path] = state
        return list(state)

    def _pickle_files(self) -> list[Path]:
        if (self.folder / PICKLE_INDEX).is_file():
            return [self.folder / PICKLE_INDEX]
        if (self.folder / PICKLE_SINGLE).is_file():
            return [self.folder / PICKLE_SINGLE]
        return sorted(p for p in self.folder.glob("*.pt") if p.name not in _TRAINER_STATE_FILES)

    def names(self) -> list[str]:
        """Tensor names in file order."""
        return list(self._file_of)

    def __contains__(self, name: str) -> bool:
        return name in self._file_of

    def _locate(self, name: str):
        if name not in self._file_of:
            raise AlphaRLError(f"tensor {name} is missing in checkpoint {self.folder}")
        path = self._file_of[name]
        return path, self._handles[path]

    def shape(self, name: str) -> tuple[int, ...]:
        _, handle = self._locate(name)
        if isinstance(handle, dict):
            return tuple(handle[name].shape)
        return tuple(handle.get_slice(name).get_shape())

    def dtype(self, name: str) -> torch.dtype:
        path, handle = self._locate(name)
        if isinstance(handle, dict):
            return handle[name].dtype
        code = handle.get_slice(name).get_dtype()
        if code not in _SAFETENSORS_DTYPES:
            raise AlphaRLError(f"tensor {name} in {path} has unsupported dtype {code}")
        return _SAFETENSORS_DTYPES[code]

    def get(self, name: str) -> torch.Tensor:
        """The tensor, in its stored dtype, on CPU."""
        path, handle = self._locate(name)
        if isinstance(handle, dict):
            return handle[name]
        try:
            return handle.get_tensor(name)
        except (SafetensorError, OSError) as err:
            raise AlphaRLError(f"cannot read tensor {name} from {path}: {err}") from err


def check_new_output(out_dir: str | os.PathLike, *, overwrite: bool = False) -> None:
    """Refuse, before any work, an output folder `atomic_output_dir` could not put in place: one that exists
    (unless `overwrite`), or a link (the folder built beside it cannot replace a link, and writing through it
    would replace what it points to)."""
    out_dir = Path(out_dir)
    check_limits(out_dir)
    if out_dir.is_symlink():
        raise AlphaRLError(
            f"output {out_dir} is a link to {out_dir.readlink()}: give the folder's own path, or a new one"
        )
    if out_dir.exists() and not (overwrite and out_dir.is_dir()):
        raise AlphaRLError(f"output {out_dir} already exists; pass --overwrite to replace it")


@contextmanager
def atomic_output_dir(out_dir: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """The output folder of `predict`/`analyze`, written atomically (`atomic.atomic_dir`); an existing one
    is an error unless `overwrite` (then replaced whole, never a mix of old and new files)."""
    check_new_output(out_dir, overwrite=overwrite)
    with atomic_dir(out_dir) as tmp:
        yield tmp


def write_shards(
    folder: Path, tensors: Iterable[tuple[str, torch.Tensor]], max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES
) -> list[str]:
    """Stream `tensors` into safetensors shards in `folder`; return the tensor names written.

    One shard is `model.safetensors`; more are `model-0000i-of-0000n.safetensors` plus the index.
    A tensor larger than `max_shard_bytes` gets a shard of its own.
    """
    shards: list[dict[str, str]] = []  # per shard: tensor name -> temporary file name
    shard: dict[str, torch.Tensor] = {}
    shard_bytes = total_bytes = 0

    def flush() -> None:
        temp_name = f".shard-{len(shards):05d}.tmp"
        save_safetensors(shard, folder / temp_name, metadata={"format": "pt"})
        shards.append(dict.fromkeys(shard, temp_name))
        shard.clear()

    seen: set[str] = set()
    for name, tensor in tensors:
        if name in seen:
            raise AlphaRLError(f"tensor {name} given twice to the checkpoint writer")
        seen.add(name)
        nbytes = tensor.numel() * tensor.element_size()
        if shard and shard_bytes + nbytes > max_shard_bytes:
            flush()
            shard_bytes = 0
        tensor = tensor.detach().to("cpu").contiguous()
        # safetensors refuses tensors sharing memory (e.g. tied embeddings from a state_dict).
        if any(t.untyped_storage().data_ptr() == tensor.untyped_storage().data_ptr() for t in shard.values()):
            tensor = tensor.clone()
        shard[name] = tensor
        shard_bytes += nbytes
        total_bytes += nbytes
    if shard or not shards:
        flush()

    if len(shards) == 1:
        os.replace(folder / next(iter(shards[0].values())), folder / SAFETENSORS_SINGLE)
        return list(shards[0])
    weight_map: dict[str, str] = {}
    for i, names in enumerate(shards, start=1):
        final = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        os.replace(folder / next(iter(names.values())), folder / final)
        weight_map.update(dict.fromkeys(names, final))
    index = {"metadata": {"total_size": total_bytes}, "weight_map": weight_map}
    (folder / SAFETENSORS_INDEX).write_text(json.dumps(index, indent=2) + "\n")
    return list(weight_map)


def check_model_config(folder: str | os.PathLike) -> None:
    """Refuse a checkpoint whose `config.json` is missing, unreadable or not a JSON object: a predicted
    checkpoint copies it, and would not load without it."""
    path = Path(folder) / "config.json"
    if path.exists() and not stays_inside(path, Path(folder)):
        raise AlphaRLError(
            f"{path} is a link to {path.resolve()}, outside the checkpoint folder: the predicted checkpoint "
            "copies it; copy the file into the folder if it is the model's config"
        )
    limit = 16 * 1024**2  # a model config is kilobytes; bounded, so a link to /dev/zero cannot hang the read
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
        if len(data) > limit:
            raise AlphaRLError(f"{path} is over {limit // 1024**2} MB: not a model config")
        config = json.loads(data.decode("utf-8"))
    except FileNotFoundError as err:
        raise AlphaRLError(f"{path} is missing; a predicted checkpoint needs it") from err
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:  # nested too deep
        raise AlphaRLError(
            f"{path} is unreadable or not JSON ({err}): the predicted checkpoint copies it"
        ) from err
    if not isinstance(config, dict) or "model_type" not in config:
        raise AlphaRLError(
            f"{path} is not a model config (no model_type): the predicted checkpoint copies it"
        )


def copy_model_files(source_dir: str | os.PathLike, folder: Path) -> list[str]:
    """Copy config, generation config, tokenizer and chat template files; return their names. Only regular
    files that stay inside `source_dir` (see `stays_inside`) are copied, as files; a link leaving it is
    skipped and named on stderr."""
    source_dir = Path(source_dir)
    matches = sorted({p.name: p for pattern in MODEL_FILE_PATTERNS for p in source_dir.glob(pattern)}.items())
    copied = []
    for name, path in matches:
        if stays_inside(path, source_dir):
            shutil.copyfile(path.resolve(), folder / name)
            shutil.copystat(path.resolve(), folder / name)
            copied.append(name)
        elif path.is_symlink():
            print(f"not copied: {path} is a link to {path.resolve()}, outside {source_dir}", file=sys.stderr)
    return copied


def write_checkpoint(
    out_dir: str | os.PathLike,
    tensors: Iterable[tuple[str, torch.Tensor]],
    *,
    source_dir: str | os.PathLike,
    max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
    overwrite: bool = False,
) -> Path:
    """Write a checkpoint folder that loads with `from_pretrained`: streamed weights + `source_dir`'s files.

    Exactly the names given are written (a tied-embedding model whose source has no `lm_head.weight`
    must not get one). Atomic: see `atomic_output_dir`.
    """
    with atomic_output_dir(out_dir, overwrite=overwrite) as tmp:
        write_shards(tmp, tensors, max_shard_bytes)
        copy_model_files(source_dir, tmp)
    return Path(out_dir)
