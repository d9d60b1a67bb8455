"""Launched by tests/test_verl_checkpoints.py with `torch.distributed.run --nproc_per_node 2` (gloo, CPU).

Writes what verl's FSDP2 checkpoint manager writes for the shipped tiny policy at a few steps, and the same
weights as merged Hugging Face folders:
  <out>/raw/global_step_N/actor/model_world_size_2_rank_R.pt   `model.state_dict()` of the model wrapped
      with FSDP2's `fully_shard` on a 1-D CPU mesh: DTensors, Shard(0); as placements verl also meets,
      `model.norm.weight` is redistributed to Replicate() and one layer norm saved as a plain tensor
  <out>/raw/global_step_N/actor/huggingface/                   config and tokenizer only, fsdp_config.json
  <out>/merged/global_step_N/actor/huggingface/                the same weights, `save_pretrained`
Each step's weights are base + step * (a fixed rank-1 direction per projection) + small noise, the same on
both ranks (one seeded generator).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch
import torch.distributed as dist
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import Replicate
from transformers import AutoModelForCausalLM

from alpharl_trainer.policies import shipped_policy

HF_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json")


def perturbed(base: Path, step: int) -> torch.nn.Module:
    model = AutoModelForCausalLM.from_pretrained(base)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("proj.weight"):
                a, v = torch.randn(param.shape[0], generator=gen), torch.randn(param.shape[1], generator=gen)
                direction = torch.outer(a, v) * (0.01 * param.norm() / (a.norm() * v.norm()))
                param.add_(step * direction)
        noise = torch.Generator().manual_seed(step)
        for param in model.parameters():
            param.add_(1e-4 * torch.randn(param.shape, generator=noise))
    return model


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, nargs="+", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    mesh = init_device_mesh("cpu", (world,), mesh_dim_names=("fsdp",))
    base = shipped_policy("tiny")
    for step in args.steps:
        model = perturbed(base, step)
        actor = args.out / "raw" / f"global_step_{step}" / "actor"
        if rank == 0:
            merged = args.out / "merged" / f"global_step_{step}" / "actor" / "huggingface"
            model.save_pretrained(merged)
            (actor / "huggingface").mkdir(parents=True)
            for name in HF_FILES:
                shutil.copyfile(base / name, actor / "huggingface" / name)
                shutil.copyfile(base / name, merged / name)
            (actor / "fsdp_config.json").write_text(json.dumps({"FSDP_version": 2, "world_size": world}))
        dist.barrier()
        for layer in model.model.layers:
            fully_shard(layer, mesh=mesh)
        fully_shard(model, mesh=mesh)
        state = model.state_dict()
        state["model.norm.weight"] = state["model.norm.weight"].redistribute(mesh, [Replicate()])
        name = "model.layers.0.input_layernorm.weight"
        state[name] = state[name].full_tensor()
        torch.save(state, actor / f"model_world_size_{world}_rank_{rank}.pt")
        dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
