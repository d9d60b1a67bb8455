"""The Slurm scripts against a fake Slurm: fake `scontrol`, `srun`, `accelerate`, `trl`, `alpharl` and `curl`
record their arguments and the node each runs on, so the tests check the exact commands every node runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TRAIN = REPO / "scripts" / "slurm" / "train.sbatch"
EVAL = REPO / "scripts" / "slurm" / "eval.sbatch"

# Every fake appends {"cmd", "args", "node_id", "cuda"} to $FAKE_LOG. `scontrol show hostnames` prints
# $FAKE_NODES; `srun` runs its command once per node of --nodelist, concurrently, with SLURM_NODEID = that
# node's index in the allocation (what Slurm sets); `accelerate` sleeps $FAKE_SLEEP seconds (requeue test).
FAKE = """#!{python}
import json, os, signal, subprocess, sys, time
name, args = os.path.basename(sys.argv[0]), sys.argv[1:]
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps({{"cmd": name, "args": args, "node_id": os.environ.get("SLURM_NODEID"),
                          "cuda": os.environ.get("CUDA_VISIBLE_DEVICES")}}) + "\\n")
if name == "scontrol" and args[:2] == ["show", "hostnames"]:
    print("\\n".join(os.environ["FAKE_NODES"].split()))
elif name == "srun":
    options = {{a.split("=")[0]: a.split("=", 1)[1] for a in args if a.startswith("--") and "=" in a}}
    command = args[next(i for i, a in enumerate(args) if not a.startswith("--")):]
    nodes = os.environ["FAKE_NODES"].split()
    tasks = [subprocess.Popen(command, env=dict(os.environ, SLURM_NODEID=str(nodes.index(host))))
             for host in options["--nodelist"].split(",")]
    signal.signal(signal.SIGTERM, lambda *_: [t.kill() for t in tasks] and sys.exit(143))  # srun forwards it
    sys.exit(max(t.wait() for t in tasks))
elif name == "accelerate":
    time.sleep(float(os.environ.get("FAKE_SLEEP", "0")))
"""


@pytest.fixture
def fake_slurm(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("scontrol", "srun", "accelerate", "trl", "alpharl", "curl"):
        path = bin_dir / name
        path.write_text(FAKE.format(python=sys.executable))
        path.chmod(0o755)
    log = tmp_path / "calls.jsonl"

    def env(nodes: str, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "FAKE_LOG": str(log),
            "FAKE_NODES": nodes,
            "SLURM_JOB_NODELIST": "gpu[01-99]",  # only the fake scontrol reads it
            "SLURM_JOB_ID": "4242",
            "SLURM_SUBMIT_DIR": str(REPO),
            **extra,
        }

    def calls(cmd: str | None = None) -> list[dict]:
        rows = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        return [r for r in rows if cmd is None or r["cmd"] == cmd]

    return env, calls


def _flag(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def _run(script: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=60)


def test_one_node(fake_slurm):
    env, calls = fake_slurm
    result = _run(TRAIN, env("gpu01", RECIPE="recipes/paper/dapo_8b.yaml"))
    assert result.returncode == 0, result.stderr
    (launch,) = calls("accelerate")
    args = launch["args"]
    assert args[0] == "launch" and _flag(args, "--config_file") == "configs/zero3.yaml"
    assert _flag(args, "--num_machines") == "1" and _flag(args, "--num_processes") == "8"
    assert _flag(args, "--machine_rank") == "0" and _flag(args, "--main_process_ip") == "gpu01"
    assert _flag(args, "--main_process_port") == "29500"
    assert args[-4:] == ["-m", "alpharl_trainer.train", "--config", "recipes/paper/dapo_8b.yaml"]
    (preflight,) = calls("alpharl")  # the dry run checks this launch's numbers first
    assert preflight["args"][:3] == ["train", "--dry-run", "recipes/paper/dapo_8b.yaml"]
    assert _flag(preflight["args"], "--num-processes") == "8"
    assert not calls("trl")


def test_three_nodes_one_launch_per_node(fake_slurm):
    env, calls = fake_slurm
    result = _run(TRAIN, env("gpu01 gpu02 gpu03", RECIPE="r.yaml", PREFLIGHT="0", EXTRA_ARGS="--max_steps 9"))
    assert result.returncode == 0, result.stderr
    launches = calls("accelerate")
    assert sorted(_flag(c["args"], "--machine_rank") for c in launches) == ["0", "1", "2"]
    assert all(_flag(c["args"], "--machine_rank") == c["node_id"] for c in launches)
    assert {_flag(c["args"], "--num_processes") for c in launches} == {"24"}
    assert {_flag(c["args"], "--num_machines") for c in launches} == {"3"}
    assert {_flag(c["args"], "--main_process_ip") for c in launches} == {"gpu01"}
    assert all(c["args"][-2:] == ["--max_steps", "9"] for c in launches)
    (srun,) = calls("srun")
    assert "--nodes=3" in srun["args"] and "--nodelist=gpu01,gpu02,gpu03" in srun["args"]
    assert not calls("alpharl")


def test_vllm_server_on_the_last_node(fake_slurm):
    env, calls = fake_slurm
    result = _run(TRAIN, env("gpu01 gpu02 gpu03", RECIPE="recipes/paper/grpo_8b.yaml", PREFLIGHT="0",
                             VLLM_SERVER="1", VLLM_TP="2"))  # fmt: skip
    assert result.returncode == 0, result.stderr
    (serve,) = calls("trl")
    assert serve["args"][:3] == ["vllm-serve", "--model", "/models/Qwen3-8B-Base"]
    assert serve["node_id"] == "2"  # the last node of the allocation
    assert _flag(serve["args"], "--tensor_parallel_size") == "2"
    assert _flag(serve["args"], "--data_parallel_size") == "4"
    assert calls("curl")[0]["args"][-1] == "http://gpu03:8000/health"
    launches = calls("accelerate")
    assert sorted(c["node_id"] for c in launches) == ["0", "1"]
    for call in launches:
        args = call["args"]
        assert _flag(args, "--num_processes") == "16" and _flag(args, "--num_machines") == "2"
        assert _flag(args, "--vllm_mode") == "server" and _flag(args, "--vllm_server_host") == "gpu03"


def test_vllm_server_needs_two_nodes(fake_slurm):
    env, calls = fake_slurm
    result = _run(TRAIN, env("gpu01", RECIPE="r.yaml", PREFLIGHT="0", VLLM_SERVER="1"))
    assert result.returncode == 2 and "at least 2 nodes" in result.stderr
    assert not calls("accelerate")


def test_requeue_on_usr1(fake_slurm):
    env, calls = fake_slurm
    process = subprocess.Popen(
        ["bash", str(TRAIN)], env=env("gpu01", RECIPE="r.yaml", PREFLIGHT="0", FAKE_SLEEP="30"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    # Generous bounds, not timings: the fake accelerate starts in well under a second when idle, but a
    # bash start-up on a machine loaded by other tests can take seconds; only a hang should fail here.
    deadline = time.time() + 120
    while not calls("accelerate") and time.time() < deadline:
        time.sleep(0.1)
    assert calls("accelerate"), "training never started"
    process.send_signal(signal.SIGUSR1)  # what `--signal=B:USR1@600` sends before the time limit
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    assert ["requeue", "4242"] in [c["args"] for c in calls("scontrol")]
    assert "requeueing" in out


def test_recipe_is_required(fake_slurm):
    env, _ = fake_slurm
    result = _run(TRAIN, {k: v for k, v in env("gpu01").items() if k != "RECIPE"})
    assert result.returncode != 0 and "set RECIPE" in result.stderr


def test_eval_runs_each_benchmark_on_its_own_gpu(fake_slurm):
    env, calls = fake_slurm
    result = _run(EVAL, env("gpu01", CHECKPOINT="runs/x", BENCHMARK_DIR="/b"))
    assert result.returncode == 0, result.stderr
    evals = calls("alpharl")
    names = [Path(_flag(c["args"], "--benchmark")).stem for c in evals]
    assert sorted(names) == sorted(["aime24", "aime25", "math500", "minerva", "gsm8k"])
    assert sorted(c["cuda"] for c in evals) == ["0", "1", "2", "3", "4"]
    for call in evals:
        args = call["args"]
        assert args[:2] == ["eval", "runs/x"] and "--no-greedy" in args
        assert _flag(args, "--samples") == "32" and _flag(args, "--temperature") == "0.6"
        assert _flag(args, "--engine") == "vllm" and _flag(args, "--max-new-tokens") == "20480"
