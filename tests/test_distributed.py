"""alpharl_trainer.distributed: ownership, factor sharing, weight writes; real launches for each backend."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from alpharl_trainer.distributed import assign_owners, full_weight, share_factors, write_weights
from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.extrapolation.rank1 import top_singular

REPO = Path(__file__).resolve().parents[1]


# ---- assign_owners -------------------------------------------------------------------------------------


def test_assign_owners_balances_largest_first():
    sizes = {"a": 10, "b": 7, "c": 5, "d": 3, "e": 2}
    owners = assign_owners(sizes, 2)
    load = [sum(s for n, s in sizes.items() if owners[n] == r) for r in range(2)]
    assert owners == {"a": 0, "b": 1, "c": 1, "d": 0, "e": 1}
    assert load == [13, 14]


def test_assign_owners_is_independent_of_insertion_order_and_breaks_ties_by_name():
    sizes = {f"m{i}": 4 for i in range(5)}
    forward = assign_owners(sizes, 3)
    backward = assign_owners(dict(reversed(list(sizes.items()))), 3)
    assert forward == backward == {"m0": 0, "m1": 1, "m2": 2, "m3": 0, "m4": 1}


def test_assign_owners_edge_cases():
    assert assign_owners({"x": 5, "y": 1}, 1) == {"x": 0, "y": 0}
    assert assign_owners({}, 4) == {}
    with pytest.raises(AlphaRLError, match="world_size"):
        assign_owners({"x": 1}, 0)
    with pytest.raises(AlphaRLError, match="'x'"):
        assign_owners({"x": -1}, 2)


# ---- share_factors -------------------------------------------------------------------------------------


def test_share_factors_single_process_is_identity_and_checks_ownership():
    factors = {"w": top_singular(torch.randn(4, 3))}
    assert share_factors(factors, {"w": 0})["w"] is factors["w"]
    with pytest.raises(AlphaRLError, match=r"missing \['v'\]"):
        share_factors(factors, {"w": 0, "v": 0})


# ---- full_weight / write_weights without DeepSpeed -----------------------------------------------------


def _model_and_adam() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(5, 4)).sum().backward()
    optimizer.step()
    return model, optimizer


def test_full_weight_without_zero3_yields_the_tensor_and_refuses_partitioned_params():
    model, _ = _model_and_adam()
    with full_weight(model[0].weight, zero3=False) as w:
        assert torch.equal(w, model[0].weight)
    model[0].weight.ds_id = 7  # what a ZeRO-3 partitioned parameter carries
    with pytest.raises(AlphaRLError, match="zero3=True"), full_weight(model[0].weight, zero3=False):
        pass


def test_write_weights_writes_values_and_resets_only_the_written_moments():
    model, optimizer = _model_and_adam()
    target = {"0.weight": torch.full((3, 4), 0.5), "1.bias": torch.tensor([1.0, -1.0])}
    untouched = optimizer.state[model[1].weight]["exp_avg"].clone()
    write_weights(model, target, optimizer=optimizer, reset_moments=True)
    assert torch.equal(model[0].weight, target["0.weight"]) and torch.equal(model[1].bias, target["1.bias"])
    for param in (model[0].weight, model[1].bias):
        assert not optimizer.state[param]["exp_avg"].any() and not optimizer.state[param]["exp_avg_sq"].any()
    assert torch.equal(optimizer.state[model[1].weight]["exp_avg"], untouched) and untouched.any()


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ({"0.weight": torch.zeros(3, 4), "nope": torch.zeros(1)}, "no parameter named 'nope'"),
        ({"0.weight": torch.zeros(3, 4), "1.bias": torch.zeros(3)}, r"'1.bias' has shape \(3,\)"),
        (
            {"0.weight": torch.zeros(3, 4), "1.bias": torch.tensor([0.0, float("nan")])},
            "'1.bias' has non-finite",
        ),
    ],
)
def test_write_weights_validates_everything_before_writing(values, match):
    model, _ = _model_and_adam()
    before = model[0].weight.detach().clone()
    with pytest.raises(AlphaRLError, match=match):
        write_weights(model, values)
    assert torch.equal(model[0].weight, before)  # the valid entry was not written either


def test_write_weights_refuses_deepspeed_params_without_engine_and_reset_without_optimizer():
    model, _ = _model_and_adam()
    with pytest.raises(AlphaRLError, match="needs the optimizer"):
        write_weights(model, {"1.bias": torch.zeros(2)}, reset_moments=True)
    model[1].bias._hp_mapping = None  # what ZeRO-1/2 attaches to the parameters it keeps an fp32 master of
    with pytest.raises(AlphaRLError, match="pass deepspeed_engine"):
        write_weights(model, {"1.bias": torch.zeros(2)})


def test_write_weights_reset_before_any_step_is_a_no_op():
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.Adam(model.parameters())
    write_weights(model, {"bias": torch.ones(2)}, optimizer=optimizer, reset_moments=True)
    assert torch.equal(model.bias, torch.ones(2)) and not optimizer.state


# ---- real launches: one training step, swap, one more step (see tests/distributed_scripts/swap_weights.py)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(config: str, world: int, *extra: str) -> None:
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        f"configs/{config}.yaml",
        "--main_process_port",
        str(_free_port()),  # helpers and CI jobs may launch concurrently
        "tests/distributed_scripts/swap_weights.py",
        "--world",
        str(world),
        *extra,
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    # 300 s: the first DeepSpeed launch on a machine compiles its CPU communication op (~1 min).
    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    assert f"swapped on {world} rank(s)" in result.stdout


def test_swap_single_process():
    _launch("single", 1)


def test_swap_ddp_two_processes():
    _launch("ddp", 2)


@pytest.mark.deepspeed
def test_swap_zero2():
    _launch("zero2", 2)


@pytest.mark.deepspeed
def test_swap_zero3_with_odd_sized_tensors():
    _launch("zero3", 2, "--hidden", "33")  # numel not divisible by 2: exercises partition padding
