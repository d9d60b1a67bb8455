"""Fit the rank-1 state `a_t = s_t u_t` of each matrix as a straight line in a scalar covariate.

Both fitters return the same thing, a `Trend`: `a(y) = intercept + slope * y` per coordinate, plus a line
for `||dW||_F`. That the PLS forecast is such a line is a property of the paper's pipeline (score
regressed linearly on `y`, inverted at `y*`, mapped back by the affine `inverse_transform`), so we read its
line off two evaluations of exactly that pipeline. One fit then serves any number of candidate targets,
which is what the horizon search needs.

- `linear`: ordinary least squares of every coordinate on `y`, closed form, in torch (float64).
- `pls`: scikit-learn `PLSRegression(n_components=1)` (scale=True), as in the reference scripts.

The covariate is the step number by default (no oracle needed) or a per-step measurement such as the
reward (the paper's variant; the target is then a reward level).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.cross_decomposition import PLSRegression

from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.extrapolation.trajectory import STEP, Trajectory, TrajectoryStore

FITTERS = ("linear", "pls")


@dataclass(frozen=True)
class Trend:
    """A fitted straight line of one matrix's rank-1 state (and update norm) in the covariate `y`."""

    intercept: torch.Tensor
    """(m,) float32, `a` at `y = 0`."""
    slope: torch.Tensor
    """(m,) float32, change of `a` per unit of `y`."""
    fro_intercept: float
    fro_slope: float
    r2: float
    """Linearity of the window: 1 - SS_res / SS_tot of the line, pooled over coordinates."""

    def a_at(self, y: float) -> torch.Tensor:
        return self.intercept + y * self.slope

    def fro_at(self, y: float) -> float:
        return self.fro_intercept + y * self.fro_slope


def _least_squares(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-column line `x[:, j] ~ b0[j] + b1[j] y`; `y` has nonzero variance."""
    yc = y - y.mean()
    slope = (yc[:, None] * (x - x.mean(0))).sum(0) / (yc @ yc)
    return x.mean(0) - slope * y.mean(), slope


def _pls_line(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference pipeline's forecast `x_hat(y*)`, returned as its line (value at 0, slope)."""
    xs, ys = x.numpy(), y.numpy()
    if np.ptp(xs, axis=0).max() == 0:  # a frozen matrix: PLS is undefined, the line is flat
        return x[0].clone(), torch.zeros_like(x[0])
    pls = PLSRegression(n_components=1, scale=True).fit(xs, ys)
    score = pls.transform(xs)[:, 0]
    b1, b0 = np.polyfit(score, ys, 1)  # y ~ b1 * score + b0, inverted at the target below
    if not np.isfinite(b1) or b1 == 0:
        raise AlphaRLError(
            "PLS: the covariate does not vary with the rank-1 score; the line cannot be inverted"
        )
    ends = pls.inverse_transform((np.array([[0.0], [1.0]]) - b0) / b1)
    line = torch.from_numpy(ends)
    return line[0], line[1] - line[0]


def fit_trend(traj: Trajectory, y: torch.Tensor, fitter: str = "linear") -> Trend:
    """Fit `traj.a` (K, m) and `traj.fro` against `y` (K,)."""
    if fitter not in FITTERS:
        raise AlphaRLError(f"unknown fitter '{fitter}' (choose from {', '.join(FITTERS)})")
    if len(traj) < 2:
        raise AlphaRLError(f"a forecast needs at least 2 snapshots, got {len(traj)}")
    y = y.double().cpu()
    if y.shape != (len(traj),) or not torch.isfinite(y).all():
        raise AlphaRLError(f"covariate must be {len(traj)} finite values, got {y.tolist()}")
    if float(y.max() - y.min()) == 0:
        raise AlphaRLError(f"covariate is constant over the window ({float(y[0])}); nothing to fit against")
    a = traj.a.double()
    b0, b1 = (_least_squares if fitter == "linear" else _pls_line)(a, y)
    resid = a - (b0 + y[:, None] * b1)
    total = ((a - a.mean(0)) ** 2).sum()
    r2 = 1.0 - float((resid**2).sum() / total) if total > 0 else 1.0
    f0, f1 = _least_squares(traj.fro.double()[:, None], y)
    return Trend(b0.float(), b1.float(), float(f0), float(f1), r2)


def fit_trends(
    store: TrajectoryStore,
    covariate: str = STEP,
    fitter: str = "linear",
    window: int | None = None,
    names: Iterable[str] | None = None,
) -> dict[str, Trend]:
    """A trend per matrix (all of `store`, or `names`), fitted on each one's last `window` snapshots."""
    trends = {}
    for name in store.matrices if names is None else names:
        if name not in store.matrices:
            raise AlphaRLError(f"{name}: no trajectory recorded for this matrix")
        traj = store.matrices[name].tail(window)
        try:
            trends[name] = fit_trend(traj, store.covariate(covariate, traj.steps), fitter)
        except AlphaRLError as err:
            raise AlphaRLError(f"{name}: {err}") from err
    return trends
