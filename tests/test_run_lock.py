"""One `alpharl train` per output_dir: the run lock of rank 0, the other ranks of the same run, a dead
holder's file."""

from __future__ import annotations

import os
import socket

import pytest

from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.run_lock import LOCK_FILE, run_lock


def test_only_the_runs_rank_0_holds_the_lock(tmp_path, monkeypatch):
    """Every rank of an `accelerate launch` sees the same output_dir: rank 1 must not be refused as a second
    run, and a second run's rank 0 must be (a second `open` of the file is independent even in one process,
    as another process's would be)."""
    monkeypatch.setenv("RANK", "0")
    with run_lock(tmp_path):
        holder = f"host {socket.gethostname()}, pid {os.getpid()}"
        assert (tmp_path / LOCK_FILE).read_text().strip() == holder
        monkeypatch.setenv("RANK", "1")
        with run_lock(tmp_path):  # rank 1 of the same run
            pass
        monkeypatch.setenv("RANK", "0")
        refused = rf"{tmp_path} is in use by another `alpharl train` \({holder}\)"
        with pytest.raises(AlphaRLError, match=refused), run_lock(tmp_path):
            pass
    with run_lock(tmp_path):  # released when the holder leaves; the file left behind does not block
        pass


def test_a_lock_that_cannot_be_created_is_one_clear_line(tmp_path):
    (tmp_path / "a-file").write_text("")
    refused = "cannot create the run lock .*a-file/alpharl/train.lock"
    with pytest.raises(AlphaRLError, match=refused), run_lock(tmp_path / "a-file"):
        pass
