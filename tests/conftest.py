"""Session fixtures shared by the whole suite."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    """The tiny SFT policy shipped in the repository (tokenizer + Qwen2), checksum-verified: the same
    weights on every machine, so no test depends on where a policy was built."""
    from alpharl_trainer.policies import shipped_policy

    return shipped_policy("tiny")


@pytest.fixture(autouse=True)
def seeded_global_rng():
    """Every test starts from the same global random state, so a value drawn without a generator does not
    depend on which tests ran before it (or on `-k`, `-x` or test order)."""
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def single_thread():
    """Run a module's tiny models and tensor math on one thread: on a loaded 2-core machine torch's thread
    pool oversubscribes (the offline tests ran 3x slower, tiny training up to 20x). Restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
