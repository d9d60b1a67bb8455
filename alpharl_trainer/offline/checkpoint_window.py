"""The window of an offline run: a base and checkpoint folders, opened and cross-checked from their headers,
then streamed into the rank-1 trajectory (matrices are the outer loop, checkpoints the inner one, so memory
holds about two tensors of the model at a time plus the compact trajectory)."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from alpharl_trainer.adapters import AdapterReader, is_adapter_folder
from alpharl_trainer.checkpoint_names import checkpoint_step
from alpharl_trainer.checkpoints import SAFETENSORS_INDEX, SAFETENSORS_SINGLE, CheckpointReader
from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.extrapolation.forecast import MIN_STEPS
from alpharl_trainer.extrapolation.rank1 import Rank1, top_singular
from alpharl_trainer.extrapolation.select import ParamSelector
from alpharl_trainer.extrapolation.trajectory import Trajectory
from alpharl_trainer.verl_checkpoints import VerlFsdpReader, is_verl_fsdp_folder
from alpharl_trainer.zero_checkpoints import ZeroReader, is_zero_folder

# Called for every (matrix, checkpoint) with the float32 update and its rank-1 triplet.
DeltaHook = Callable[[str, int, torch.Tensor, Rank1], None]


@dataclass
class Window:
    """The opened base and checkpoints, their steps, and the tracked tensor names (validated)."""

    base: CheckpointReader
    checkpoints: list[CheckpointReader]
    steps: list[int]
    tracked: list[str]

    @property
    def last(self) -> CheckpointReader:
        return self.checkpoints[-1]


def open_window(
    base: str | os.PathLike,
    checkpoints: Sequence[str | os.PathLike],
    *,
    steps: Sequence[int] | None = None,
    selector: ParamSelector | None = None,
    allow_pickle: bool = False,
    min_checkpoints: int = MIN_STEPS,
) -> Window:
    """Open and cross-check every folder from headers only, before any heavy work."""
    if len(checkpoints) < min_checkpoints:
        raise AlphaRLError(f"need at least {min_checkpoints} checkpoints, got {len(checkpoints)}")
    _check_distinct(base, checkpoints)
    if steps is None:
        steps = [checkpoint_step(c) for c in checkpoints]
    elif len(steps) != len(checkpoints):
        raise AlphaRLError(f"--steps has {len(steps)} values for {len(checkpoints)} checkpoints")
    for k in range(1, len(steps)):
        if steps[k] == steps[k - 1]:
            raise AlphaRLError(
                f"checkpoints {checkpoints[k - 1]} and {checkpoints[k]} have the same step {steps[k]}"
            )
        if steps[k] < steps[k - 1]:
            raise AlphaRLError(
                f"checkpoint {checkpoints[k]} (step {steps[k]}) comes after {checkpoints[k - 1]} "
                f"(step {steps[k - 1]}): list checkpoints in increasing step order"
            )
    _check_steps_against_names(checkpoints, steps)
    base_reader = CheckpointReader(base, allow_pickle=allow_pickle)
    readers = [_reader(c, base_reader, allow_pickle) for c in checkpoints]
    selector = selector or ParamSelector()
    tracked = [n for n in base_reader.names() if selector(n, base_reader.shape(n))]
    if not tracked:
        raise AlphaRLError(
            f"no tensor of {base} is tracked: check --include/--exclude and the --track-* flags"
        )
    _check_same_tensors(base_reader, readers[-1])
    for reader in readers:
        for name in tracked:
            if name not in reader:
                raise AlphaRLError(f"tracked tensor {name} is missing in checkpoint {reader.folder}")
            if reader.shape(name) != base_reader.shape(name):
                raise AlphaRLError(
                    f"tensor {name} has shape {list(reader.shape(name))} in {reader.folder} "
                    f"but {list(base_reader.shape(name))} in the base {base}"
                )
            if not reader.dtype(name).is_floating_point or not base_reader.dtype(name).is_floating_point:
                raise AlphaRLError(
                    f"tracked tensor {name} is stored as {reader.dtype(name)} in {reader.folder} (base: "
                    f"{base_reader.dtype(name)}): a forecast needs floating-point weights; dequantize the "
                    "checkpoints or leave the tensor out with --exclude"
                )
    return Window(base_reader, readers, [int(s) for s in steps], tracked)


def _check_distinct(base: str | os.PathLike, checkpoints: Sequence[str | os.PathLike]) -> None:
    """Refuse a folder given twice (however spelled): a checkpoint repeated, or the base as a checkpoint,
    would be fitted as two points of the window (or found to be no update only after reading every tensor)."""
    seen: dict[Path, str] = {}
    for given, role in [(base, "the base"), *((c, "a checkpoint") for c in checkpoints)]:
        real = Path(given).resolve()
        if real in seen:
            raise AlphaRLError(
                f"{given} is given twice (as {seen[real]} and as {role}): list each folder once"
            )
        seen[real] = role


def _reader(folder: str | os.PathLike, base: CheckpointReader, allow_pickle: bool):
    """A checkpoint's tensors: a LoRA adapter folder as its base with the adapter merged in, a DeepSpeed ZeRO
    checkpoint without Hugging Face weights as its fp32 master weights, verl's FSDP `actor` folder as its
    shards joined (even when verl's merger left a copy in `actor/huggingface`: the shards are the master
    weights, the copy is bf16; give `actor/huggingface` to read the copy), any other folder as it is."""
    if is_adapter_folder(folder):
        return AdapterReader(folder, base)
    folder = Path(folder)
    hf_weights = (folder / SAFETENSORS_SINGLE).is_file() or (folder / SAFETENSORS_INDEX).is_file()
    if not hf_weights and is_zero_folder(folder):
        return ZeroReader(folder, allow_pickle=allow_pickle)
    if not hf_weights and is_verl_fsdp_folder(folder):
        return VerlFsdpReader(folder, allow_pickle=allow_pickle)
    if not hf_weights and is_verl_fsdp_folder(folder / "actor"):
        raise AlphaRLError(
            f"{folder} is a verl checkpoint: give its {folder / 'actor'} folder (FSDP shards) or, once "
            f"merged, {folder / 'actor' / 'huggingface'}"
        )
    return CheckpointReader(folder, allow_pickle=allow_pickle)


def _name_step(folder: str | os.PathLike) -> int | None:
    """The step a folder's name encodes, or None (a hub cache snapshot, a folder named by hand)."""
    try:
        return checkpoint_step(folder)
    except AlphaRLError:
        return None


def _check_steps_against_names(checkpoints: Sequence[str | os.PathLike], steps: Sequence[int]) -> None:
    """`--steps` may shift or rescale the steps the folders' names encode (to count samples, say), but not
    reorder or respace them: that forecasts from the wrong end of the window, or bends its line. Folders
    whose names hold no step are not compared."""
    named = [(n, s) for n, s in zip(map(_name_step, checkpoints), steps, strict=True) if n is not None]
    if len(named) < 2:
        return
    (n0, s0), (n1, s1) = named[0], named[-1]
    same_line = all((s - s0) * (n1 - n0) == (n - n0) * (s1 - s0) for n, s in named)
    if not (same_line and (n1 - n0) * (s1 - s0) > 0):
        raise AlphaRLError(
            f"--steps {' '.join(str(s) for _, s in named)} contradict the steps "
            f"{' '.join(str(n) for n, _ in named)} in the folders' names: --steps may shift or rescale "
            "them, not reorder or respace them; list the checkpoints in step order"
        )


def _check_same_tensors(base: CheckpointReader, last: CheckpointReader) -> None:
    """The written checkpoint is the last one with forecasts in it: a tensor only one side has would be
    silently dropped (missing from the last) or silently copied without a forecast (missing from the base)."""
    only_base = [n for n in base.names() if n not in last]
    only_last = [n for n in last.names() if n not in base]
    for names, where, other in ((only_base, base.folder, last.folder), (only_last, last.folder, base.folder)):
        if names:
            more = f" and {len(names) - 1} more" if len(names) > 1 else ""
            raise AlphaRLError(
                f"tensor {names[0]}{more} is in {where} but not in {other}: the base and the last "
                "checkpoint must hold the same tensors (the same model, saved the same way)"
            )


def build_trajectory(
    window: Window,
    covariates: dict[str, Sequence[float]] | None = None,
    *,
    on_delta: DeltaHook | None = None,
    progress: bool = True,
) -> tuple[Trajectory, list[str]]:
    """Rank-1 factors of every tracked update; returns the trajectory and the frozen tensors.

    A tensor whose update is zero at every step (frozen during training) is left out of the
    trajectory. A checkpoint whose every tracked update is zero is an error: it is the base again.
    """
    covariates = covariates or {}
    factors: list[dict[str, Rank1]] = [{} for _ in window.steps]
    frozen: list[str] = []
    for name in tqdm(
        window.tracked, desc="rank-1 factors", unit="tensor", disable=None if progress else True
    ):
        w0 = window.base.get(name).float()
        row: list[Rank1] = []
        v_prev = None
        for k, reader in enumerate(window.checkpoints):
            delta = reader.get(name).float() - w0
            r1 = top_singular(delta, v_prev, name=f"{name} in {reader.folder}")  # NaN/inf -> AlphaRLError
            if on_delta is not None:
                on_delta(name, k, delta, r1)
            if r1.s > 0:
                v_prev = r1.v
            row.append(r1)
        if all(r.s == 0 for r in row):
            frozen.append(name)
            continue
        for k, r1 in enumerate(row):
            factors[k][name] = r1
    for k, reader in enumerate(window.checkpoints):
        if not any(r.s > 0 for r in factors[k].values()):
            raise AlphaRLError(
                f"checkpoint {reader.folder} is identical to the base in every tracked tensor: no update"
            )
    traj = Trajectory()
    for k, step in enumerate(window.steps):
        traj.append(step, factors[k], {c: float(values[k]) for c, values in covariates.items()})
    return traj, frozen


def finite_mean(values: Sequence[float]) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return sum(finite) / len(finite) if finite else None
