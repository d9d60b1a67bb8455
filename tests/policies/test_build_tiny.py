import dataclasses
import json
import string

import pytest
import torch

from alpharl_trainer.cli import main
from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.policies.build_tiny import (
    TinyConfig,
    build_tiny_model,
    build_tokenizer,
    ensure_tiny_model,
)

# A few SFT steps: enough to check building, saving and loading, not competence.
QUICK = TinyConfig(
    hidden_size=32,
    num_layers=2,
    num_heads=2,
    intermediate_size=64,
    steps=3,
    batch_size=8,
    target_accuracy=None,
)


def test_tokenizer_round_trips_printable_ascii():
    tok = build_tokenizer()
    text = string.printable  # letters, digits, punctuation, whitespace incl. newline
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == len(text)
    assert tok.unk_token_id not in tok(string.ascii_letters + string.digits + " \n")["input_ids"]
    assert tok.decode(tok(" 12+34=\nsort ba:", add_special_tokens=False)["input_ids"]) == " 12+34=\nsort ba:"


def test_tokenizer_specials_and_padding():
    tok = build_tokenizer()
    assert tok("é", add_special_tokens=False)["input_ids"] == [tok.unk_token_id]
    assert len({tok.pad_token_id, tok.bos_token_id, tok.eos_token_id, tok.unk_token_id}) == 4
    batch = tok(["1+1=", "10+10="], padding=True)
    assert batch["input_ids"][0][:2] == [tok.pad_token_id] * 2  # left padding, for generation
    assert tok.decode([*tok("12")["input_ids"], tok.eos_token_id], skip_special_tokens=True) == "12"


def test_build_load_generate(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = build_tiny_model(tmp_path / "m", QUICK)
    assert json.loads((out / "tiny_recipe.json").read_text())["hash"] == QUICK.recipe_hash()
    model = AutoModelForCausalLM.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    assert tok.padding_side == "left" and model.config.eos_token_id == tok.eos_token_id
    batch = tok(["12+3=", "sort cba:"], return_tensors="pt", padding=True)
    gen = model.generate(**batch, max_new_tokens=4, do_sample=False)
    assert gen.shape[0] == 2 and gen.shape[1] <= batch["input_ids"].shape[1] + 4
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp dir left behind
    with pytest.raises(AlphaRLError, match="already exists"):
        build_tiny_model(out, QUICK)


def test_build_is_deterministic(tmp_path):
    from safetensors.torch import load_file

    a = load_file(build_tiny_model(tmp_path / "a", QUICK) / "model.safetensors")
    b = load_file(build_tiny_model(tmp_path / "b", QUICK) / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    other = dataclasses.replace(QUICK, seed=1)
    assert other.recipe_hash() != QUICK.recipe_hash()


def test_ensure_caches_by_recipe(tmp_path):
    first = ensure_tiny_model(QUICK, cache_root=tmp_path)
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    assert ensure_tiny_model(QUICK, cache_root=tmp_path) == first
    assert (first / "model.safetensors").stat().st_mtime_ns == stamp  # not rebuilt
    assert first.name == f"tiny-model-{QUICK.recipe_hash()}"


def test_make_tiny_cli(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("alpharl_trainer.policies.build_tiny.TinyConfig", lambda: QUICK)
    out = tmp_path / "cli"
    assert main(["make-tiny", "--out", str(out), "--task", "arithmetic", "--steps", "2"]) == 0
    report = capsys.readouterr().out
    assert "against the shipped policy" in report and "weights other shapes" in report
    recipe = json.loads((out / "tiny_recipe.json").read_text())
    assert recipe["config"]["tasks"] == {"arithmetic": 1.0} and recipe["config"]["steps"] == 2
    assert main(["make-tiny", "--out", str(out), "--task", "arithmetic", "--steps", "2"]) == 0
    assert "up to date" in capsys.readouterr().out
    assert main(["make-tiny", "--out", str(out), "--steps", "3"]) == 2  # another recipe: refused
    assert main(["make-tiny", "--out", str(tmp_path / "x"), "--task", "chess"]) == 2


@pytest.mark.slow  # the default build is minutes of SFT on a fresh machine; `make` builds it anyway
def test_default_model_loads(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert model.config.model_type == "qwen2"


def test_sft_stops_on_held_out_accuracy_not_on_a_step_count(tmp_path):
    """The rebuild's stop rule: the first check at or above the target ends SFT; a target not reached by the
    end of the schedule extends it (at its final rate) up to max_steps."""
    reached = dataclasses.replace(QUICK, target_accuracy=0.0, check_every=2, max_steps=10)
    recipe = json.loads((build_tiny_model(tmp_path / "a", reached) / "tiny_recipe.json").read_text())
    assert recipe["sft_steps"] == 2 and recipe["heldout_accuracy"] == 0.0
    unreachable = dataclasses.replace(QUICK, target_accuracy=1.01, check_every=2, max_steps=5)
    recipe = json.loads((build_tiny_model(tmp_path / "b", unreachable) / "tiny_recipe.json").read_text())
    assert recipe["sft_steps"] == 5  # past the 3-step schedule, to the cap
