"""What AlphaRL keeps on disk: which shares a checkpoint's state says are its own."""

from __future__ import annotations

import pytest
import torch

from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.trainer.state import leftovers, save_base, save_window, saved_world


def test_a_checkpoint_older_than_the_world_record_uses_the_one_world_on_disk(tmp_path):
    """State saved before the number of processes was recorded: the W_0 shares tell it, unless an earlier
    attempt with another number of processes left its own beside them (then a clear error, not a guess)."""
    assert saved_world({"world": 4}, tmp_path, 0) == 4
    assert saved_world({}, tmp_path, 0) == 1  # nothing saved yet: load_base names what is missing
    for rank in (0, 1):
        save_base(tmp_path, rank, 2, {"w": torch.zeros(2)})
    assert saved_world({}, tmp_path, 0) == 2
    save_base(tmp_path, 0, 1, {"w": torch.zeros(2)})
    with pytest.raises(AlphaRLError, match=r"shares of \[1, 2\] processes .* remove the files"):
        saved_world({}, tmp_path, 0)


def test_leftovers_are_the_shares_of_other_numbers_of_processes(tmp_path):
    save_base(tmp_path, 0, 1, {"w": torch.zeros(2)})
    save_base(tmp_path, 1, 2, {"w": torch.zeros(2)}, start=4)
    save_window(tmp_path, 3, 0, 2, {"w": torch.zeros(2)})
    assert [p.relative_to(tmp_path).as_posix() for p in leftovers(tmp_path, {1})] == [
        "alpharl/base-000004/rank00001-of-00002.safetensors",
        "alpharl/window/step-000003/rank00000-of-00002.safetensors",
    ]
    assert leftovers(tmp_path, {1, 2}) == []
