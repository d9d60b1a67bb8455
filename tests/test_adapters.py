"""A LoRA run's adapter checkpoints in `alpharl predict`: the forecast equals the one from the same weights
saved as merged Hugging Face folders, and a bad adapter is one clear error that leaves nothing."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.offline.predict import predict
from alpharl_trainer.policies import shipped_policy

STEPS = (10, 20, 30)


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory):
    """The tiny policy with a LoRA adapter at three steps (B growing along a line, plus noise), saved as
    adapter folders (TRL's `checkpoint-N`, verl's `global_step_N/actor/lora_adapter`) and as the merged models
    `merge_and_unload` makes."""
    root = tmp_path_factory.mktemp("lora")
    base = shipped_policy("tiny")
    config = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "v_proj"])
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base), config)
    g = torch.Generator().manual_seed(0)
    directions = {}
    for step in STEPS:
        with torch.no_grad():
            for name, param in model.named_parameters():
                if "lora_" in name:
                    direction = directions.setdefault(name, torch.randn(param.shape, generator=g))
                    param.copy_(0.01 * step * direction + 0.002 * torch.randn(param.shape, generator=g))
        model.save_pretrained(root / "adapters" / f"checkpoint-{step}")
        model.save_pretrained(root / "verl" / f"global_step_{step}" / "actor" / "lora_adapter")
        copy.deepcopy(model).merge_and_unload().save_pretrained(root / "merged" / f"checkpoint-{step}")
    return base, root


def test_an_adapter_window_forecasts_as_its_merged_folders_do(lora_run, tmp_path):
    base, root = lora_run
    results = {}
    folders = {
        "adapters": [root / "adapters" / f"checkpoint-{s}" for s in STEPS],
        "merged": [root / "merged" / f"checkpoint-{s}" for s in STEPS],
        "verl": [root / "verl" / f"global_step_{s}" / "actor" / "lora_adapter" for s in STEPS],  # step: N
    }
    for kind, checkpoints in folders.items():
        predict(base, checkpoints, tmp_path / kind, target_step=50, progress=False)
        results[kind] = load_file(tmp_path / kind / "model.safetensors")
    for kind in ("adapters", "verl"):
        assert results[kind].keys() == results["merged"].keys()
        for name, tensor in results["merged"].items():
            torch.testing.assert_close(results[kind][name], tensor, rtol=1e-5, atol=1e-6)
    assert (tmp_path / "adapters" / "config.json").is_file()  # the base's files come along


def test_a_bad_adapter_is_one_clear_error_and_leaves_nothing(lora_run, tmp_path):
    base, root = lora_run
    folders = [root / "adapters" / f"checkpoint-{s}" for s in STEPS]
    broken = tmp_path / "checkpoint-40"
    broken.mkdir()
    (broken / "adapter_config.json").write_text((folders[-1] / "adapter_config.json").read_text())
    with pytest.raises(AlphaRLError, match="no adapter_model.safetensors"):
        predict(base, [*folders, broken], tmp_path / "out", target_step=60, progress=False)
    dora = json.loads((folders[-1] / "adapter_config.json").read_text()) | {"use_dora": True}
    (broken / "adapter_config.json").write_text(json.dumps(dora))
    (broken / "adapter_model.safetensors").write_bytes(
        (folders[-1] / "adapter_model.safetensors").read_bytes()
    )
    with pytest.raises(AlphaRLError, match="use_dora is set; only plain LoRA adapters are merged"):
        predict(base, [*folders, broken], tmp_path / "out", target_step=60, progress=False)
    assert not (tmp_path / "out").exists()
