"""Session fixtures shared by the whole suite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    """The default tiny SFT policy (tokenizer + Qwen2), built once into `<repo>/.cache` and reused.

    The first build on a fresh machine takes a few minutes; later sessions load it from the cache.
    """
    from alpharl_trainer.tiny import ensure_tiny_model

    return ensure_tiny_model()
