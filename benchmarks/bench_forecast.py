"""What a forecast costs at the window end, per matrix (float32, CPU, one thread): the rank-1 line of the
trajectory (the product's default), the fixed-basis forecast with a linear or a saturating time profile
(k = 1 and 4) and the saturation fit of a reward curve, each next to one warm rank-1
snapshot of the same matrix, the unit the trainer already pays every `alpharl_interval` steps.

The window: `--snapshots` updates `dW_t = t/K (G + noise_t)` of an LLM-shaped matrix (G of decaying spectrum).
The rank-1 line reads the trajectory (K x (m + n + 1) numbers); the fixed-basis forecast reads the K full
updates (K x m x n), which the callback does not keep: it is a suite method and an offline forecast for now.
Best of 3 runs of each.

    python3 benchmarks/bench_forecast.py [--shapes 896x896 4864x896] [--snapshots 6] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import torch

from alpharl_trainer.extrapolation import Trajectory, forecast, top_singular
from alpharl_trainer.extrapolation.fixed_basis import fixed_basis_forecast
from alpharl_trainer.extrapolation.saturation import (
    FORMS,
    SaturationFit,
    _basis,
    _grid,
    fit_saturation,
    horizon,
)

SHAPES = ["896x896", "4864x896", "4096x4096"]


def best_of(fn, runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return min(times)


def window(m: int, n: int, k: int, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    u = torch.linalg.qr(torch.randn(m, 16, generator=g)).Q
    v = torch.linalg.qr(torch.randn(n, 16, generator=g)).Q
    signal = (u * (0.6 ** torch.arange(16.0))) @ v.T
    signal /= signal.norm()
    return [
        (t / k) * (signal + 0.3 * torch.randn(m, n, generator=g) / (m * n) ** 0.5) for t in range(1, k + 1)
    ]


def measure(deltas: list[torch.Tensor], steps: list[float]) -> list[float]:
    """CPU seconds: one warm snapshot, the rank-1 line, fixed-basis k=1 linear, k=4 linear, k=4 saturating."""
    traj = Trajectory()
    for step, delta in zip(steps, deltas, strict=True):
        warm = traj.last_v("w") if len(traj) else None
        traj.append(int(step), {"w": top_singular(delta, warm, name="w")})
    last_v, target = traj.last_v("w"), 2.5 * steps[-1]
    return [
        best_of(lambda: top_singular(deltas[-1], last_v, name="w")),
        best_of(lambda: forecast(traj, target)),
        *(
            best_of(lambda kk=kk, prof=prof: fixed_basis_forecast(steps, deltas, target, kk, prof))
            for kk, prof in ((1, "linear"), (4, "linear"), (4, "saturating"))
        ),
    ]


def grid_of_solves(steps: list[float], values: list[float]) -> SaturationFit:
    """The saturation fit as one least-squares solve per grid shape (the closed form's reference): what the
    product paid before the grid became one matrix."""
    t, y = torch.tensor(steps, dtype=torch.float64), torch.tensor(values, dtype=torch.float64)
    total, fits = float(((y - y.mean()) ** 2).sum()), []
    for form in FORMS:
        for shape in _grid(form, float(t.max())).tolist():
            x = torch.stack([torch.ones_like(t), _basis(form, shape, t)], 1)
            coef = torch.linalg.lstsq(x, y.unsqueeze(1)).solution.squeeze(1)
            sse = float(((x @ coef - y) ** 2).sum())
            fits.append(SaturationFit(form, shape, (float(coef[0]), float(coef[1])), 1.0 - sse / total))
    return max(fits, key=lambda f: f.r2)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shapes", nargs="+", default=SHAPES)
    p.add_argument("--snapshots", type=int, default=6)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    k = args.snapshots
    steps = [10.0 * t for t in range(1, k + 1)]
    rewards = [0.3 - 0.2 * 2.0 ** (-s / 30) for s in steps]
    print(f"CPU seconds, one thread, best of 3; {k} snapshots; ratio = time / one warm rank-1 snapshot")
    print(
        f"{'shape':>11} {'snapshot':>9} {'rank1 line':>11} {'fb k=1 lin':>11} {'fb k=4 lin':>11} "
        f"{'fb k=4 sat':>11} {'saturation':>11}"
    )
    saturation = best_of(lambda: horizon(fit_saturation(steps, rewards), steps[-1], 0.5, 10.0))
    solves = best_of(lambda: grid_of_solves(steps, rewards))
    closed = best_of(lambda: fit_saturation(steps, rewards))
    same = grid_of_solves(steps, rewards).shape == fit_saturation(steps, rewards).shape
    print(
        f"saturation fit ({len(FORMS)} forms x 200 shapes): one solve per shape {solves * 1e3:.2f} ms, the "
        f"closed form over the grid {closed * 1e3:.2f} ms ({solves / closed:.0f}x faster; same shape: {same})"
    )
    for shape in args.shapes:
        m, n = (int(x) for x in shape.split("x"))
        snapshot, *row = measure(window(m, n, k), steps)
        print(
            f"{shape:>11} {snapshot:8.3f}s "
            + " ".join(f"{t:.3f}s {t / snapshot:.1f}x".rjust(11) for t in row + [saturation])
        )


if __name__ == "__main__":
    main()
