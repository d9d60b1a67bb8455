"""vLLM server mode after an AlphaRL swap, tested without vLLM: the callback invalidates the trainer's loaded
step; TRL 1.16 then calls `VLLMGeneration.sync_weights()`, which in server mode streams every weight to the
server from the main process (other ranks only join the gathers) and resets the server's prefix cache."""

from __future__ import annotations

import contextlib
import inspect
from types import SimpleNamespace

import pytest
import torch
from transformers import AutoModelForCausalLM
from trl import GRPOTrainer, RLOOTrainer
from trl.generation.vllm_generation import VLLMGeneration

from alpharl_trainer.distributed import write_weights
from alpharl_trainer.trainer.config import AlphaRLConfig
from alpharl_trainer.trainer.swap import WindowSwap
from tests.trainer import harness


@pytest.mark.parametrize("trainer_cls", [GRPOTrainer, RLOOTrainer])
def test_trl_resyncs_when_the_loaded_step_differs(trainer_cls):
    """The pinned TRL contract the callback relies on (fails loudly if an upgrade changes it)."""
    source = inspect.getsource(trainer_cls._generate_single_turn)
    assert "self.state.global_step != self._last_loaded_step" in source
    assert "self.vllm_generation.sync_weights()" in source


def test_swap_makes_the_next_generation_resync():
    trainer = SimpleNamespace(
        _last_loaded_step=12, _buffered_inputs=["old rollouts"], state=SimpleNamespace()
    )
    trainer.state.global_step = 12  # weights were pushed at this step, before the swap
    WindowSwap(trainer, SimpleNamespace(config=AlphaRLConfig()), notify=print)._use_new_weights()
    assert trainer._buffered_inputs is None
    assert trainer.state.global_step != trainer._last_loaded_step  # TRL's test above: sync_weights() runs


class RecordingClient:
    def __init__(self):
        self.calls = []

    def update_named_params(self, metadata, params):
        self.calls.append(("update", metadata, {n: p.clone() for n, p in params}))

    def reset_prefix_cache(self):
        self.calls.append(("reset",))


def _server_generation(model: torch.nn.Module, is_main: bool) -> VLLMGeneration:
    """TRL's own VLLMGeneration in server mode over a real model: only the network client (a recorder) and
    the distributed helper (one process: nothing to gather) stand in; the parameter walk is TRL's."""
    generation = VLLMGeneration.__new__(VLLMGeneration)  # no __init__: it would connect to a server
    generation.mode, generation.enable_sleep_mode = "server", False
    generation.model = model
    generation.accelerator = SimpleNamespace(is_main_process=is_main)
    generation._dist = SimpleNamespace(is_fsdp=False, gather_params=lambda params: contextlib.nullcontext())
    generation.vllm_client = RecordingClient()
    generation._weight_metadata = None
    return generation


@pytest.fixture
def model():
    return AutoModelForCausalLM.from_pretrained(harness.test_model_dir())


def test_server_sync_streams_the_weights_alpharl_wrote(model):
    """The swap writes through `write_weights` (the callback's path); the next sync streams those values."""
    name = "model.layers.0.mlp.up_proj.weight"
    generation = _server_generation(model, is_main=True)
    generation.sync_weights()
    (update, metadata, before), reset = generation.vllm_client.calls
    assert update == "update" and reset == ("reset",)
    assert dict((n, shape) for n, _, shape in metadata)[name] == list(model.get_parameter(name).shape)
    forecast = model.get_parameter(name).detach() + torch.randn(model.get_parameter(name).shape)
    write_weights(model, {name: forecast})  # what CandidateWriter.write_exact does on one process
    generation.sync_weights()
    after = generation.vllm_client.calls[2][2]
    torch.testing.assert_close(after[name], forecast, rtol=0, atol=0)
    assert not torch.equal(after[name], before[name])
    assert all(torch.equal(after[n], before[n]) for n in before if n != name)  # nothing else changed


def test_server_sync_on_other_ranks_only_joins_the_walk(model):
    generation = _server_generation(model, is_main=False)
    walked, real_walk = [], generation._iter_named_params

    def counted_walk():
        walked.append(1)
        yield from real_walk()

    generation._iter_named_params = counted_walk
    generation.sync_weights()
    assert generation.vllm_client.calls == [] and len(walked) == 2  # metadata walk + streaming walk
