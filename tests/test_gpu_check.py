"""scripts/gpu_check.py's preflight: without a GPU, CUDA torch, vLLM or the pinned TRL it refuses (exit 2)
and names each missing piece, before anything is loaded. (The check itself needs a GPU: README, GPU.)"""

from __future__ import annotations

import importlib.util
import runpy
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
import trl

REPO = Path(__file__).resolve().parents[1]


def test_preflight_names_everything_that_is_missing(monkeypatch, capsys):
    check = runpy.run_path(str(REPO / "scripts" / "gpu_check.py"))
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(torch.version, "cuda", None)
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "vllm" else real_find_spec(n, *a)
    )
    monkeypatch.setattr(trl, "__version__", "1.17.0")
    assert check["main"]() == 2
    out = capsys.readouterr()
    missing = [line for line in out.out.splitlines() if line.startswith("MISSING")]
    assert len(missing) == 4
    assert "nvidia-smi" in missing[0] and "CPU build" in missing[1] and "vllm is not installed" in missing[2]
    assert "trl 1.17.0 is installed; the gate is written against trl 1.16.0" in missing[3]
    assert "refused" in out.err


def test_a_cuda_torch_without_a_device_is_named(monkeypatch):
    check = runpy.run_path(str(REPO / "scripts" / "gpu_check.py"))
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/nvidia-smi")
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert any("sees no CUDA device" in line for line in check["preflight"]())


@pytest.mark.skipif(
    torch.cuda.is_available(), reason="a GPU machine runs the real check: bash scripts/gpu_check.sh"
)
def test_the_script_refuses_here_with_exit_2_when_this_machine_lacks_a_gpu():
    """On a CPU machine (this one, CI) the real script stops at the preflight, in seconds."""
    done = subprocess.run(["bash", str(REPO / "scripts" / "gpu_check.sh")], capture_output=True, text=True)
    assert done.returncode == 2 and "MISSING" in done.stdout and "refused" in done.stderr
