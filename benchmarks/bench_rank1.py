"""Rank-1 factors of an RL update on LLM shapes (float32, CPU): ours cold and warm vs svd_lowrank vs full SVD.

The update is realistic in shape: a decaying spectrum (16 directions, s_k = 0.6^k) plus dense noise, rank-1
share of the Frobenius norm ~0.7. The warm start is what a trainer has: the top `v` of the same matrix at
the previous snapshot (directions rotated by 0.05 rad, 90% of the norm, fresh noise). Errors are against
the full SVD. Fast methods: best of 3 runs; the full SVD runs once. Times are CPU seconds of one thread by
default, so the numbers mean the same on a loaded machine. Also: the size of a K-snapshot trajectory of
these matrices on disk against one checkpoint of them.

    python3 benchmarks/bench_rank1.py [--shapes 896x896 4096x4096] [--snapshots 30] [--threads 1] [--json f]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from pathlib import Path

import torch

from alpharl_trainer.extrapolation import Trajectory, top_singular

SHAPES = ["896x896", "4864x896", "4096x4096", "11008x4096"]
TARGET_SPEEDUP, TARGET_S1_ERROR = 50.0, 1e-3
# (title, width, format, key); times in CPU seconds (wall times are in the JSON), errors: relative s1 error
# and angle of u in radians, both against the full SVD
COLUMNS = [
    ("shape", 11, "", "shape"),
    ("share", 5, ".2f", "rank1_share"),
    ("s2/s1", 5, ".2f", "s2_over_s1"),
    ("SVD_s", 7, ".2f", "svd_s"),
    ("lowrank_s", 9, ".3f", "svd_lowrank_s"),
    ("s1_err", 7, ".1e", "svd_lowrank_s1_err"),
    ("u_angle", 7, ".1e", "svd_lowrank_u_angle"),
    ("cold_s", 7, ".3f", "cold_s"),
    ("it", 3, "d", "cold_iters"),
    ("s1_err", 7, ".1e", "cold_s1_err"),
    ("u_angle", 7, ".1e", "cold_u_angle"),
    ("warm_s", 7, ".3f", "warm_s"),
    ("it", 3, "d", "warm_iters"),
    ("s1_err", 7, ".1e", "warm_s1_err"),
    ("u_angle", 7, ".1e", "warm_u_angle"),
    ("x_cold", 6, ".0f", "speedup_cold"),
    ("x_warm", 6, ".0f", "speedup_warm"),
    ("x_lowr", 6, ".0f", "speedup_svd_lowrank"),
]


def _orthonormal(rows: int, cols: int, gen: torch.Generator) -> torch.Tensor:
    return torch.linalg.qr(torch.randn(rows, cols, generator=gen)).Q


def updates(m: int, n: int, seed: int = 0, rank: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """(update at the previous snapshot, update now)."""
    gen = torch.Generator().manual_seed(seed)
    spectrum = 0.6 ** torch.arange(rank, dtype=torch.float32)
    x, y, x_drift, y_drift = (_orthonormal(k, rank, gen) for k in (m, n, m, n))
    noise_std = 0.6 / math.sqrt(m * n)  # noise Frobenius norm 0.6 against s1 = 1
    now = (x * spectrum) @ y.T + noise_std * torch.randn(m, n, generator=gen)
    c, s = math.cos(0.05), math.sin(0.05)
    earlier = 0.9 * ((c * x + s * x_drift) * spectrum) @ (c * y + s * y_drift).T
    earlier += noise_std * torch.randn(m, n, generator=gen)
    return earlier, now


def best_of(fn, repeats: int):
    """(result, CPU seconds, wall seconds) of the fastest of `repeats` calls. CPU time of this process does
    not count other processes' load, which on a shared machine makes wall time unreliable."""
    result, cpu, wall = None, math.inf, math.inf
    for _ in range(repeats):
        c0, w0 = time.process_time(), time.perf_counter()
        result = fn()
        cpu, wall = min(cpu, time.process_time() - c0), min(wall, time.perf_counter() - w0)
    return result, cpu, wall


def errors(s: float, u: torch.Tensor, exact_s: float, exact_u: torch.Tensor) -> tuple[float, float]:
    """(relative error of s1, angle of u in radians) against the full SVD."""
    cos = min(1.0, abs(float(u.double() @ exact_u.double())))
    return abs(s - exact_s) / exact_s, math.acos(cos)


def bench_shape(m: int, n: int) -> dict:
    earlier, now = updates(m, n)
    previous_v = top_singular(earlier).v
    (uu, sv, vh), t_svd, wall_svd = best_of(lambda: torch.linalg.svd(now, full_matrices=False), 1)
    exact_s, exact_u = float(sv[0]), uu[:, 0]
    del uu, vh
    row = {
        "shape": [m, n],
        "rank1_share": exact_s / float(torch.linalg.matrix_norm(now)),
        "s2_over_s1": float(sv[1] / sv[0]),
        "svd_s": t_svd,
        "svd_wall_s": wall_svd,
    }
    low, row["svd_lowrank_s"], row["svd_lowrank_wall_s"] = best_of(
        lambda: torch.svd_lowrank(now, q=6, niter=2), 3
    )
    row["svd_lowrank_s1_err"], row["svd_lowrank_u_angle"] = errors(
        float(low[1][0]), low[0][:, 0], exact_s, exact_u
    )
    for kind, v0 in (("cold", None), ("warm", previous_v)):
        r, row[f"{kind}_s"], row[f"{kind}_wall_s"] = best_of(lambda v0=v0: top_singular(now, v0), 3)
        row[f"{kind}_s1_err"], row[f"{kind}_u_angle"] = errors(r.s, r.u, exact_s, exact_u)
        row[f"{kind}_iters"], row[f"{kind}_method"] = r.iters, r.method
        row[f"{kind}_factors"] = r
    for name in ("cold", "warm", "svd_lowrank"):
        row[f"speedup_{name}"] = t_svd / row[f"{name}_s"]
    return row


def trajectory_size(rows: list[dict], snapshots: int) -> dict:
    """Bytes on disk of a `snapshots`-step trajectory of these matrices vs one checkpoint of them."""
    traj = Trajectory()
    for step in range(1, snapshots + 1):
        traj.append(step, {"x".join(map(str, r["shape"])): r["warm_factors"] for r in rows})
    with tempfile.TemporaryDirectory() as tmp:
        traj.save(Path(tmp) / "traj")
        on_disk = sum(f.stat().st_size for f in (Path(tmp) / "traj").iterdir())
    params = sum(r["shape"][0] * r["shape"][1] for r in rows)
    return {
        "snapshots": snapshots,
        "trajectory_bytes": on_disk,
        "checkpoint_bytes_bf16": 2 * params,
        "checkpoint_bytes_fp32": 4 * params,
        "ratio_vs_bf16_checkpoint": on_disk / (2 * params),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", default=SHAPES, help="m x n shapes, e.g. 4096x4096")
    parser.add_argument("--snapshots", type=int, default=30, help="K for the trajectory size")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: CPU time = work)")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}"
    )
    print(" ".join(f"{title:>{width}}" for title, width, _, _ in COLUMNS), "target")
    rows = []
    for spec in args.shapes:
        m, n = (int(x) for x in spec.lower().split("x"))
        r = bench_shape(m, n)
        rows.append(r)
        met = r["speedup_warm"] >= TARGET_SPEEDUP and r["warm_s1_err"] <= TARGET_S1_ERROR
        cells = [f"{spec:>{COLUMNS[0][1]}}"] + [
            f"{r[key]:>{width}{fmt}}" for _, width, fmt, key in COLUMNS[1:]
        ]
        print(" ".join(cells), "met" if met else "MISSED", flush=True)
    size = trajectory_size(rows, args.snapshots)
    print(
        f"trajectory of {size['snapshots']} snapshots of these {len(rows)} matrices: "
        f"{size['trajectory_bytes'] / 1e6:.2f} MB on disk; one bf16 checkpoint of them: "
        f"{size['checkpoint_bytes_bf16'] / 1e6:.1f} MB (ratio {size['ratio_vs_bf16_checkpoint']:.4f})"
    )
    print(f"target: warm >= {TARGET_SPEEDUP:.0f}x faster than full SVD with s1 error <= {TARGET_S1_ERROR:g}")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    if args.json:
        for r in rows:
            del r["cold_factors"], r["warm_factors"]
        args.json.write_text(json.dumps({"rows": rows, "trajectory": size}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
