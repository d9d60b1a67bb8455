"""Session fixtures shared by the whole suite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    """The tiny SFT policy shipped in the repository (tokenizer + Qwen2), checksum-verified: the same
    weights on every machine, so no test depends on where a policy was built."""
    from alpharl_trainer.policies import shipped_policy

    return shipped_policy("tiny")
