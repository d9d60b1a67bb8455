"""vLLM server mode after an AlphaRL swap, tested without vLLM: the callback invalidates the trainer's loaded
step; TRL 1.16 then calls `VLLMGeneration.sync_weights()`, which in server mode streams every weight to the
server from the main process (other ranks only join the gathers) and resets the server's prefix cache."""

from __future__ import annotations

import inspect
from types import SimpleNamespace

import pytest
import torch
from trl import GRPOTrainer, RLOOTrainer
from trl.generation.vllm_generation import VLLMGeneration

from alpharl_trainer.trainer.callback import AlphaRLCallback
from alpharl_trainer.trainer.config import AlphaRLConfig


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
    callback = AlphaRLCallback(AlphaRLConfig())
    callback.trainer = trainer
    callback._invalidate_rollouts()
    assert trainer._buffered_inputs is None
    assert trainer.state.global_step != trainer._last_loaded_step  # TRL's test above: sync_weights() runs


class RecordingClient:
    def __init__(self):
        self.calls = []

    def update_named_params(self, metadata, params):
        self.calls.append(("update", metadata, [(n, p.clone()) for n, p in params]))

    def reset_prefix_cache(self):
        self.calls.append(("reset",))


def _server_generation(is_main: bool, weights: dict[str, torch.Tensor]) -> tuple[VLLMGeneration, list]:
    """A VLLMGeneration in server mode with its network client and parameter walk replaced by recorders."""
    generation = VLLMGeneration.__new__(VLLMGeneration)  # no __init__: it would connect to a server
    walks = []

    def iter_named_params():
        walks.append(True)
        yield from weights.items()

    generation.mode, generation.enable_sleep_mode = "server", False
    generation.accelerator = SimpleNamespace(is_main_process=is_main)
    generation.vllm_client = RecordingClient()
    generation._weight_metadata = None
    generation._iter_named_params = iter_named_params
    return generation, walks


def test_server_sync_streams_the_swapped_weights_from_the_main_process():
    weights = {"model.layers.0.mlp.up_proj.weight": torch.randn(4, 3), "lm_head.weight": torch.randn(5, 4)}
    generation, _ = _server_generation(True, weights)
    generation.sync_weights()
    (update, metadata, sent), reset = generation.vllm_client.calls
    assert update == "update" and reset == ("reset",)
    assert metadata == [(n, "float32", list(t.shape)) for n, t in weights.items()]
    assert all(torch.equal(t, weights[n]) for n, t in sent)
    swapped = {n: t + 1 for n, t in weights.items()}  # an AlphaRL swap changed the live weights
    weights.update(swapped)
    generation.sync_weights()
    assert all(torch.equal(t, swapped[n]) for n, t in generation.vllm_client.calls[2][2])


def test_server_sync_on_other_ranks_only_joins_the_gathers():
    generation, walks = _server_generation(False, {"w": torch.zeros(2, 2)})
    generation.sync_weights()
    assert generation.vllm_client.calls == [] and len(walks) == 2  # metadata walk + streaming walk
