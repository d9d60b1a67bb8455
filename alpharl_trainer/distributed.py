"""Extrapolation in a distributed run without moving weight matrices between ranks.

Each tracked matrix has one owner rank (`assign_owners`), which computes its rank-1 factors; only those
small vectors cross the network (`share_factors`), and then every rank computes the same new weights from
the same factors and writes them (`write_weights`), so data-parallel replicas stay bit-identical without
broadcasting a single matrix. Under ZeRO-3 a matrix exists whole only inside a collective gather
(`full_weight`).

`share_factors`, and under ZeRO-3 `full_weight` and `write_weights`, are collectives: every rank must call
them in the same order, with the arguments their docstrings say must agree. Nothing here imports TRL;
DeepSpeed is imported only when a DeepSpeed engine or ZeRO-3 parameter is actually in use.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING

import torch
import torch.distributed as dist

from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.extrapolation.rank1 import Rank1

if TYPE_CHECKING:
    from deepspeed import DeepSpeedEngine

ADAM_MOMENTS = ("exp_avg", "exp_avg_sq")


def _is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def assign_owners(sizes: Mapping[str, int], world_size: int) -> dict[str, int]:
    """Give each matrix to one rank so that the ranks' total sizes (e.g. numel) are balanced.

    Greedy largest-first onto the least-loaded rank (ties: lowest rank; equal sizes: by name). It is a pure
    function of its arguments, so every rank computes the same assignment without communicating.
    """
    if world_size < 1:
        raise AlphaRLError(f"world_size must be >= 1, got {world_size}")
    load = [0] * world_size
    owners: dict[str, int] = {}
    for name in sorted(sizes, key=lambda n: (-sizes[n], n)):
        if sizes[name] < 0:
            raise AlphaRLError(f"negative size {sizes[name]} for tensor {name!r}")
        rank = min(range(world_size), key=lambda r: (load[r], r))
        owners[name] = rank
        load[rank] += sizes[name]
    return owners


def _comm_device() -> torch.device:
    # NCCL only moves CUDA tensors; gloo (CPU runs, tests) only CPU ones.
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _split_fields(name: str, factors: Rank1) -> tuple[dict, dict[str, torch.Tensor]]:
    """(plain fields, tensor fields flattened to float32) of one Rank1."""
    plain, tensors = {}, {}
    for field in dataclasses.fields(factors):
        value = getattr(factors, field.name)
        if isinstance(value, torch.Tensor):
            if value.ndim != 1:
                raise AlphaRLError(
                    f"factor {field.name} of {name!r} must be a vector, got shape {tuple(value.shape)}"
                )
            tensors[field.name] = value.detach().float()
        else:
            plain[field.name] = value
    return plain, tensors


def share_factors(local: Mapping[str, Rank1], owners: Mapping[str, int]) -> dict[str, Rank1]:
    """Give every rank the rank-1 factors of every matrix, each computed by its owner alone.

    `local`: the factors of exactly the matrices this rank owns in `owners` (same `owners` on every rank).
    Two collectives: `all_gather_object` of the scalars (s, fro, method, vector lengths: a few bytes per
    matrix) and one `all_gather` of every rank's vectors packed into a flat float32 tensor, padded to the
    longest. Vectors travel bit-exactly; every rank, the owner included, returns the unpacked copies, on
    the communication device (CPU for gloo, the current GPU for NCCL). Single process: `dict(local)`.
    """
    rank = dist.get_rank() if _is_distributed() else 0
    mine = sorted(n for n, r in owners.items() if r == rank)
    if sorted(local) != mine:
        missing, extra = sorted(set(mine) - set(local)), sorted(set(local) - set(mine))
        raise AlphaRLError(
            f"rank {rank} must provide the factors it owns: missing {missing}, not owned {extra}"
        )
    if not _is_distributed():
        return dict(local)

    device = _comm_device()
    meta, chunks = [], []
    for name in mine:
        plain, tensors = _split_fields(name, local[name])
        meta.append((name, plain, [(k, t.numel()) for k, t in tensors.items()]))
        chunks.extend(t.to(device) for t in tensors.values())
    flat = torch.cat(chunks) if chunks else torch.zeros(0, device=device)

    world = dist.get_world_size()
    all_meta: list[list] = [[] for _ in range(world)]
    dist.all_gather_object(all_meta, meta)
    longest = max(sum(n for _, _, shapes in m for _, n in shapes) for m in all_meta)
    padded = torch.zeros(longest, dtype=torch.float32, device=device)
    padded[: flat.numel()] = flat
    gathered = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(gathered, padded)

    shared: dict[str, Rank1] = {}
    for rank_meta, buffer in zip(all_meta, gathered, strict=True):
        offset = 0
        for name, plain, shapes in rank_meta:
            fields = dict(plain)
            for key, n in shapes:
                fields[key] = buffer[offset : offset + n].clone()
                offset += n
            shared[name] = Rank1(**fields)
    return shared


@contextmanager
def full_weight(param: torch.nn.Parameter, *, zero3: bool) -> Iterator[torch.Tensor]:
    """The whole tensor of `param`, read-only, valid inside the `with` block only (clone it to keep it).

    Without ZeRO-3 every rank already holds the full tensor: no communication. Under ZeRO-3 the tensor is
    all-gathered (`deepspeed.zero.GatheredParameters`, read-only: changes are discarded or rejected) onto
    every rank: DeepSpeed has no gather-to-one, so all ranks must enter for the same parameters in the
    same order, even those that will not use it; one matrix at a time keeps the extra memory to one matrix.
    """
    if hasattr(param, "ds_id") and not zero3:  # outside a gather it is an empty placeholder
        raise AlphaRLError("parameter is partitioned by DeepSpeed ZeRO-3 (it has a ds_id): pass zero3=True")
    if not zero3:
        yield param.detach()
        return
    import deepspeed

    with deepspeed.zero.GatheredParameters([param], modifier_rank=None):
        yield param.detach()


@contextmanager
def gathered_model(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """`model` with every parameter whole on every rank inside the `with` block (read-only), for a forward
    pass outside DeepSpeed's engine, e.g. scoring a policy that `from_pretrained` partitioned under ZeRO-3
    before the engine exists. Collective under ZeRO-3 (every rank must enter); a no-op otherwise."""
    partitioned = [p for p in model.parameters() if hasattr(p, "ds_id")]
    if not partitioned:
        yield model
        return
    import deepspeed

    with deepspeed.zero.GatheredParameters(partitioned, modifier_rank=None):
        yield model


def _zero3_local_slice(param: torch.nn.Parameter, value: torch.Tensor) -> torch.Tensor:
    """This rank's piece of `value` in ZeRO-3's layout: contiguous, equal, zero-padded partitions.

    `deepspeed.utils.safe_set_full_fp32_param` slices the same way but without the padding, so it fails on
    the last rank whenever numel is not a multiple of the world size; slicing here avoids that.
    """
    part = param.ds_tensor.ds_numel
    rank = dist.get_rank(group=param.ds_process_group)
    flat = torch.zeros(part * dist.get_world_size(group=param.ds_process_group), device=value.device)
    flat[: value.numel()] = value.flatten()
    return flat[rank * part : (rank + 1) * part]


def _layout(param: torch.nn.Parameter) -> str:
    """How the optimizer holds this parameter: 'zero3' (partitioned, with a partitioned fp32 master),
    'master' (ZeRO-1/2 or DeepSpeed's bf16 optimizer: replicated weight + fp32 master fragment) or 'plain'
    (the optimizer updates the module's own tensor)."""
    if hasattr(param, "ds_id"):
        return "zero3"
    if hasattr(param, "_hp_mapping"):
        return "master"
    return "plain"


def _write_one(param: torch.nn.Parameter, value: torch.Tensor, layout: str) -> None:
    """Write the module weight and, where DeepSpeed keeps one, the optimizer's fp32 master copy.

    DeepSpeed's optimizer updates its own fp32 copy (ZeRO-1/2: this rank's flat partition; ZeRO-3: the
    partition of each parameter) and then copies it over the module weights. Writing only the module weight
    would therefore be silently undone by the next optimizer step; writing only the master would leave the
    model generating with the old weights until then. The master gets the float32 value, so a bf16 model
    does not round the forecast twice.
    """
    if layout == "plain":
        param.data.copy_(value)
        return
    from deepspeed import zero
    from deepspeed.utils import safe_set_full_fp32_param, safe_set_local_fp32_param

    value = value.to(device=param.device, dtype=torch.float32)
    if layout == "zero3":
        # modifier_rank=0: rank 0's tensor is broadcast and re-partitioned on exit; every rank writes the
        # same value, so the broadcast changes nothing but keeps DeepSpeed's bookkeeping consistent.
        with zero.GatheredParameters([param], modifier_rank=0):
            param.data.copy_(value)
        if param.requires_grad:
            safe_set_local_fp32_param(param, _zero3_local_slice(param, value))
    else:
        param.data.copy_(value)
        safe_set_full_fp32_param(param, value)


def _reset_moments(name: str, param: torch.nn.Parameter, layout: str, optimizer) -> None:
    if layout == "plain":
        state = optimizer.state.get(param)
        if not state:  # not stepped yet: no moments
            return
        for key in ADAM_MOMENTS:
            if key not in state:
                raise AlphaRLError(f"optimizer keeps no Adam moment {key!r} for {name!r}; cannot reset it")
            state[key].zero_()
        return
    if not param.requires_grad:  # frozen: DeepSpeed keeps no optimizer state for it
        return
    from deepspeed.utils import safe_set_full_optimizer_state, safe_set_local_optimizer_state

    for key in ADAM_MOMENTS:
        if layout == "zero3":
            safe_set_local_optimizer_state(param, torch.zeros_like(param.ds_tensor, dtype=torch.float32), key)
        else:
            safe_set_full_optimizer_state(param, torch.zeros(param.shape, device=param.device), key)


def write_weights(
    model: torch.nn.Module,
    new_values: Mapping[str, torch.Tensor],
    *,
    deepspeed_engine: DeepSpeedEngine | None = None,
    reset_moments: bool = False,
    optimizer: torch.optim.Optimizer | None = None,
) -> None:
    """Overwrite named parameters of the live model, identically on every rank.

    `model`: the unwrapped module (`trainer.model`, `accelerator.unwrap_model(...)`, `engine.module`), whose
    `named_parameters()` names are the keys of `new_values`. Call on every rank with identical values
    (e.g. computed from `share_factors` output); parameters are written in sorted-name order because under
    ZeRO-3 each write is a collective. Everything is validated before anything is written, so a bad value
    leaves the model untouched.

    `deepspeed_engine` (`trainer.deepspeed`): required when DeepSpeed manages the parameters; their fp32
    master copy is then written too (see `_write_one`). Otherwise the optimizer's parameters are the
    module's own tensors and a plain copy is the whole job.

    `reset_moments`: zero Adam's `exp_avg` and `exp_avg_sq` of the written parameters (they were
    accumulated at the old weights). The step counter is kept on every backend, because DeepSpeed keeps
    one counter per flattened parameter group: bias correction is not restarted, so the first update after
    a reset is up to (1 - beta1) / sqrt(1 - beta2) (~3.2 for the defaults) times a steady-state one.
    Needs `optimizer` (a torch optimizer or accelerate's wrapper of one) or `deepspeed_engine`. Parameters
    not yet stepped have no moments and are skipped.
    """
    params = dict(model.named_parameters())
    names = sorted(new_values)
    for name in names:
        value = new_values[name]
        if name not in params:
            raise AlphaRLError(f"model has no parameter named {name!r}")
        shape = tuple(getattr(params[name], "ds_shape", params[name].shape))  # ZeRO-3: the full shape
        if tuple(value.shape) != shape:
            raise AlphaRLError(
                f"new value for {name!r} has shape {tuple(value.shape)}, parameter has {shape}"
            )
        if not torch.isfinite(value).all():
            raise AlphaRLError(f"new value for {name!r} has non-finite entries")
        if deepspeed_engine is None and _layout(params[name]) != "plain":
            raise AlphaRLError(
                f"{name!r} is managed by DeepSpeed: pass deepspeed_engine so its fp32 master is written"
            )
    if deepspeed_engine is not None:
        if deepspeed_engine.zero_optimization_stage() == 0 and deepspeed_engine.fp16_enabled():
            raise AlphaRLError(
                "DeepSpeed fp16 without ZeRO keeps an fp32 master this cannot write: use ZeRO >= 1"
            )
        optimizer = deepspeed_engine.optimizer  # ZeRO stage 0 in fp32: the plain torch optimizer
    if reset_moments and optimizer is None:
        raise AlphaRLError("reset_moments needs the optimizer (or the DeepSpeed engine)")
    # DeepSpeed creates its moment fragments at the first step; before it there is nothing to reset.
    stepped = deepspeed_engine is None or deepspeed_engine.global_steps > 0

    with torch.no_grad():
        for name in names:
            layout = _layout(params[name])
            _write_one(params[name], new_values[name], layout)
            if reset_moments and stepped:
                _reset_moments(name, params[name], layout, optimizer)


def rank_world() -> tuple[int, int]:
    """(rank, world size) of this process; (0, 1) outside a process group."""
    return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)


class OwnedWeights:
    """The tracked matrices of a live model, each owned by one rank (`assign_owners`): whole-matrix reads that
    keep only the owner's copy, an owner's tensor sent to every rank, and writes on every rank.

    Every method that walks matrices is collective (under ZeRO-3 each gather is; with several processes each
    broadcast is): all ranks call it with the same names in the same order. `written` maps a tracked name to
    the parameter that holds it (a LoRA layer's frozen base weight; the name itself otherwise).
    """

    def __init__(self, model: torch.nn.Module, owners: Mapping[str, int], written: Mapping[str, str], device):
        self.model, self.owners, self.written, self.device = model, owners, written, device
        self.rank, self.world = rank_world()
        self.zero3 = any(hasattr(p, "ds_id") for p in model.parameters())

    def owned_copies(self, entries: list[tuple[str, str, str]]) -> dict[str, torch.Tensor]:
        """`{key: CPU copy of parameter}` for each `(tracked name, key, parameter)` of `entries` whose tracked
        matrix this rank owns."""
        params, out = dict(self.model.named_parameters()), {}
        for name, key, param in entries:
            with full_weight(params[param], zero3=self.zero3) as w:
                if self.owners[name] == self.rank:
                    out[key] = w.detach().to("cpu", copy=True)
        return out

    def stash(self, names: list[str]) -> dict[str, torch.Tensor]:
        """`W_K` of the owned matrices of `names` on CPU: the copy candidates start from and rollback
        restores. Only the owner keeps one, so a node holds one copy of the tracked weights in host memory
        whatever its number of ranks; the others receive each matrix from its owner when it is written."""
        return self.owned_copies([(n, n, self.written.get(n, n)) for n in names])

    def from_owner(self, name: str, local: torch.Tensor | None) -> torch.Tensor:
        """The owner's tensor for `name` on every rank (`local` on the owner, None elsewhere)."""
        if self.world == 1:
            return local
        param = dict(self.model.named_parameters())[self.written.get(name, name)]
        shape = tuple(getattr(param, "ds_shape", param.shape))
        buf = (
            local.to(self.device)
            if local is not None
            else torch.empty(shape, dtype=param.dtype, device=self.device)
        )
        dist.broadcast(buf, src=self.owners[name])
        return buf

    def write(
        self, name: str, value: torch.Tensor, *, engine=None, optimizer=None, reset: bool = False
    ) -> None:
        """Write `value` (the same on every rank) into the parameter holding `name` (`write_weights`)."""
        write_weights(
            self.model,
            {self.written.get(name, name): value},
            deepspeed_engine=engine,
            optimizer=optimizer,
            reset_moments=reset,
        )

    def all_reduce(self, total: torch.Tensor) -> torch.Tensor:
        """`total` summed over the ranks (itself in a single process)."""
        if self.world == 1:
            return total
        total = total.to(self.device)
        dist.all_reduce(total)
        return total.cpu()
