"""Launched by tests/test_distributed.py with `accelerate launch --config_file configs/<x>.yaml`.

One real training step of a tiny Qwen2 under the configured backend (single, DDP, ZeRO-2, ZeRO-3), then the
AlphaRL hot-swap path of `alpharl_trainer.distributed`: owners compute rank-1 factors of their matrices'
updates, factors are shared, every rank writes W + correction, and the script checks on every rank that
  0. shared factors arrive bit-exact, also when a rank owns nothing,
  1. each written tensor equals its target exactly (and so does DeepSpeed's fp32 master copy),
  2. the Adam moments of written tensors are zero (reset_moments=True),
  3. all ranks hold identical weights (checksums all-gathered),
  4. one more optimizer step starts from the swapped weights: it moves them by about one Adam step, not
     back to the pre-swap weights (which is what happens when the fp32 master is not written).
Each rank records failures instead of raising, so no rank is left waiting in a collective; all exit 1 if any
rank failed. `--hidden 33` gives tensors with an odd number of elements (ZeRO-3 partition padding).
"""

from __future__ import annotations

import argparse
import os
import sys

import torch
import torch.distributed as dist
from accelerate import Accelerator, PartialState
from transformers import Qwen2Config, Qwen2ForCausalLM

from alpharl_trainer.distributed import assign_owners, full_weight, share_factors, write_weights
from alpharl_trainer.extrapolation.rank1 import top_singular

LR = 1e-4
CORRECTION = 0.5  # Frobenius norm of the rank-1 correction; its largest entries are >100x an Adam step


def make_accelerator() -> Accelerator:
    """An Accelerator that counts CPU processes right.

    Without GPUs accelerate finds no backend for a MULTI_GPU or DEEPSPEED launch and reports one process
    (DistributedType.NO, or DEEPSPEED with num_processes=1) although torch.distributed runs two: DDP then
    never syncs gradients. A bare Accelerator needs cpu=True for DDP (MULTI_CPU over gloo) and the gloo
    backend named explicitly for DeepSpeed (cpu=True would drop DeepSpeed). HF/TRL trainers need only
    `use_cpu=True` in their TrainingArguments, which handles both.
    """
    if torch.cuda.is_available() or "LOCAL_RANK" not in os.environ:
        return Accelerator()
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "false") == "true":
        PartialState(backend="gloo")
        return Accelerator()
    return Accelerator(cpu=True)


def build(hidden: int) -> Qwen2ForCausalLM:
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=64,
        hidden_size=hidden,
        intermediate_size=45,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        max_position_embeddings=32,
        tie_word_embeddings=False,
    )
    return Qwen2ForCausalLM(config)


def train_step(model, optimizer, accelerator: Accelerator, step: int) -> None:
    gen = torch.Generator().manual_seed(1000 * step + accelerator.process_index)  # different data per rank
    ids = torch.randint(0, 64, (2, 12), generator=gen).to(accelerator.device)
    loss = model(input_ids=ids, labels=ids).loss
    accelerator.backward(loss)
    optimizer.step()
    optimizer.zero_grad()


def snapshot(module, names: list[str], zero3: bool) -> dict[str, torch.Tensor]:
    params = dict(module.named_parameters())
    out = {}
    for name in names:  # same order on every rank: a ZeRO-3 gather is collective
        with full_weight(params[name], zero3=zero3) as w:
            out[name] = w.detach().float().clone()
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--world", type=int, required=True, help="number of processes the config must start")
    args = parser.parse_args()
    torch.set_num_threads(1)

    accelerator = make_accelerator()
    if accelerator.num_processes != args.world:
        print(
            f"accelerate runs {accelerator.num_processes} process(es), expected {args.world}", file=sys.stderr
        )
        return 1
    plugin = accelerator.state.deepspeed_plugin
    if plugin is not None:  # no dataloader is prepared, so "auto" cannot be inferred
        plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = 2
    model = build(args.hidden)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR)
    model, optimizer = accelerator.prepare(model, optimizer)
    engine = model if plugin is not None else None
    zero3 = plugin is not None and plugin.zero_stage == 3
    module = accelerator.unwrap_model(model)
    rank, world = accelerator.process_index, accelerator.num_processes
    failures: list[str] = []

    def check(ok: bool, what: str) -> None:
        if not ok:
            failures.append(f"rank {rank}: {what}")

    names = sorted(n for n, p in module.named_parameters() if n.endswith("proj.weight"))
    written = [*names, "model.norm.weight"]
    w0 = snapshot(module, names, zero3)
    train_step(model, optimizer, accelerator, step=1)
    w1 = snapshot(module, written, zero3)

    owners = assign_owners({n: w0[n].numel() for n in names}, world)
    local = {n: top_singular(w1[n] - w0[n]) for n in names if owners[n] == rank}
    shared = share_factors(local, owners)
    check(sorted(shared) == names, f"shared factors cover {sorted(shared)}")
    for name, mine in local.items():
        theirs = shared[name]
        same = (theirs.s, theirs.fro, theirs.method) == (mine.s, mine.fro, mine.method)
        check(same and torch.equal(theirs.u.cpu(), mine.u), f"factors of {name} changed in transit")
    # a rank that owns nothing sends an empty buffer and still receives everything
    lone = share_factors({names[0]: shared[names[0]]} if rank == 0 else {}, {names[0]: 0})
    check(torch.equal(lone[names[0]].v.cpu(), shared[names[0]].v.cpu()), "one-owner share differs")
    target = {n: w1[n] + CORRECTION * torch.outer(shared[n].u.cpu(), shared[n].v.cpu()) for n in names}
    target["model.norm.weight"] = w1["model.norm.weight"] + 0.25

    write_weights(module, target, deepspeed_engine=engine, reset_moments=True, optimizer=optimizer)

    swapped = snapshot(module, written, zero3)
    params = dict(module.named_parameters())
    for name in written:
        check(torch.equal(swapped[name], target[name]), f"{name} differs from its target after the swap")
        if engine is not None:
            from deepspeed.utils import safe_get_full_fp32_param, safe_get_full_optimizer_state

            master = safe_get_full_fp32_param(params[name]).cpu()
            check(torch.equal(master, target[name]), f"fp32 master of {name} differs from its target")
            moments = [
                safe_get_full_optimizer_state(params[name], k).cpu() for k in ("exp_avg", "exp_avg_sq")
            ]
        else:
            state = optimizer.state[params[name]]
            moments = [state["exp_avg"], state["exp_avg_sq"]]
        check(all(not m.any() for m in moments), f"Adam moments of {name} not reset")

    checksum = torch.tensor([float(sum(swapped[n].double().sum() for n in written))], dtype=torch.float64)
    if world > 1:
        everyone = [torch.zeros_like(checksum) for _ in range(world)]
        dist.all_gather(everyone, checksum.to(accelerator.device))
        check(all(torch.equal(c.cpu(), checksum) for c in everyone), f"ranks disagree: {everyone}")

    train_step(model, optimizer, accelerator, step=2)
    w2 = snapshot(module, written, zero3)
    for name in written:
        moved = (w2[name] - target[name]).abs().max().item()
        check(0 < moved < 3 * LR, f"{name}: step after the swap moved it by {moved:.2e}, not ~{LR:.0e}")

    flags = torch.tensor([len(failures)], device=accelerator.device)
    if world > 1:
        dist.all_reduce(flags)
    for failure in failures:
        print(failure, file=sys.stderr)
    if rank == 0 and not flags.item():
        print(f"OK: {len(written)} tensors swapped on {world} rank(s), zero3={zero3}")
    accelerator.free_memory()  # destroys the DeepSpeed engine (a ZeRO-3 engine aborts at exit otherwise)
    accelerator.end_training()
    return 1 if flags.item() else 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # The engine and process group are closed: skip the interpreter's teardown of torch, transformers and
    # DeepSpeed modules, which takes several seconds per process and dominates a launch's wall time.
    os._exit(code)
