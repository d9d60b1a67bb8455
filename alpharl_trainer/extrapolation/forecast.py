"""Forecast each matrix's rank-1 state `a_t = s_t u_t` at a target by a straight-line fit over the window.

The covariate is the step number (default: needs no oracle) or a per-step measurement such as the reward
(the paper's variant; the target is then a reward level). Two fits:

- `linear`: ordinary least squares of every coordinate of `a_t` on the covariate, closed form, vectorized
  over coordinates in torch (float64).
- `pls`: the reference scripts exactly: scikit-learn `PLSRegression(n_components=1, scale=True)` of
  `X = a_t` (K, m) against `y`, a linear regression of `y` on the PLS score, `z* = (target - b) / a`,
  `a_hat = pls.inverse_transform(z*)`.

`||dW||_F` is forecast by least squares in the covariate either way (the `rank1_only` mode rescales to it).

Two R^2 values, which answer different questions:
- `fit_r2`: how straight a line `a_t` follows in the covariate, `1 - SS_res / SS_tot` of the fit pooled over
  the coordinates (ours; for the step covariate it is "is the trajectory linear in time").
- `reward_r2`: the paper's "linearity R^2", the covariate (a reward or accuracy) regressed on the
  one-component PLS score of `a_t`, i.e. how well one direction of the rank-1 state predicts the reward.
  Only with a covariate other than the step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.cross_decomposition import PLSRegression

from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.extrapolation.trajectory import Trajectory

FITS = ("linear", "pls")
MIN_STEPS = 3
"""Two points always lie on a line: at least three are needed for the fit (and its R^2) to mean anything."""


@dataclass
class Forecast:
    name: str
    a_hat: torch.Tensor
    """(m,) forecast rank-1 state at the target."""
    a_last: torch.Tensor
    """(m,) state at the last window step."""
    v: torch.Tensor
    """(n,) direction at the last window step (aligned)."""
    fro_hat: float
    """Forecast `||dW||_F` at the target (linear in the covariate, clamped >= 0)."""
    fit_r2: float
    """In-window R^2 of the fit of `a_t` on the covariate, pooled over coordinates (1.0 for a state that
    does not move). Not the paper's R^2: that is `reward_r2`."""
    reward_r2: float | None = None
    """The paper's R^2: the covariate regressed on the PLS score of `a_t`; None for the step covariate or a
    state that does not move."""


def _least_squares(x: torch.Tensor, y: torch.Tensor, at: torch.Tensor) -> torch.Tensor:
    """Per column of `x` (K, p), the least-squares line in `y` (K,) evaluated at the points `at` (J,)."""
    yc = y - y.mean()
    slope = (yc[:, None] * (x - x.mean(0))).sum(0) / (yc @ yc)
    return x.mean(0) + (at - y.mean())[:, None] * slope


@dataclass
class _PlsLine:
    """The reference scripts' model of one matrix: PLS of `x` (K, m) on `y`, then `y ~ a * score + b`."""

    pls: PLSRegression
    a: float
    b: float
    r2: float
    """R^2 of `y ~ a * score + b`: the paper's linearity R^2."""

    @classmethod
    def fit(cls, x: torch.Tensor, y: torch.Tensor) -> _PlsLine | None:
        """None for a state that never moves (PLS is undefined)."""
        xs, ys = x.numpy(), y.numpy()
        if np.ptp(xs, axis=0).max() == 0:
            return None
        pls = PLSRegression(n_components=1, scale=True).fit(xs, ys)
        score = pls.transform(xs)[:, 0]
        a, b = np.polyfit(score, ys, 1)
        total = float(((ys - ys.mean()) ** 2).sum())
        r2 = 1.0 - float(((ys - (a * score + b)) ** 2).sum()) / total
        return cls(pls, float(a), float(b), r2)

    def at(self, targets: torch.Tensor, name: str) -> torch.Tensor:
        """The state forecast at each covariate value in `targets` (J,): `z* = (y* - b) / a`, inverted."""
        if not np.isfinite(self.a) or self.a == 0:
            raise AlphaRLError(f"{name}: the covariate does not vary with the PLS score; cannot invert it")
        z = (targets.numpy() - self.b) / self.a
        return torch.from_numpy(self.pls.inverse_transform(z[:, None]))


def _covariate(traj: Trajectory, covariate: str) -> torch.Tensor:
    if covariate == "step":
        y = torch.tensor(traj.steps, dtype=torch.float64)
    elif covariate in traj.covariates:
        y = torch.tensor(traj.covariates[covariate], dtype=torch.float64)
    else:
        raise AlphaRLError(f"no covariate '{covariate}' recorded (have: step, {', '.join(traj.covariates)})")
    if not torch.isfinite(y).all() or float(y.max() - y.min()) == 0:
        raise AlphaRLError(
            f"covariate '{covariate}' must be finite and vary over the window, got {y.tolist()}"
        )
    return y


def forecast(
    traj: Trajectory,
    target: float,
    *,
    fit: str = "linear",
    covariate: str = "step",
    names: Sequence[str] | None = None,
) -> dict[str, Forecast]:
    """Forecast every matrix of `traj` (or `names`) at covariate value `target` (a step, or e.g. a reward)."""
    if fit not in FITS:
        raise AlphaRLError(f"unknown fit '{fit}' (choose from {', '.join(FITS)})")
    if len(traj) < MIN_STEPS:
        raise AlphaRLError(f"a forecast needs at least {MIN_STEPS} snapshot steps, got {len(traj)}")
    if not np.isfinite(target):
        raise AlphaRLError(f"forecast target must be finite, got {target}")
    y = _covariate(traj, covariate)
    at = torch.cat([torch.tensor([float(target)], dtype=torch.float64), y])  # the target, then in-window
    out = {}
    for name in traj.names if names is None else names:
        a = traj.state(name).double()
        pls = _PlsLine.fit(a, y) if fit == "pls" or covariate != "step" else None
        if fit == "linear":
            line = _least_squares(a, y, at)
        else:  # a state that never moves has no PLS model: its forecast is flat
            line = pls.at(at, name) if pls is not None else a[:1].expand(len(at), -1)
        total = float(((a - a.mean(0)) ** 2).sum())
        fit_r2 = 1.0 - float(((a - line[1:]) ** 2).sum()) / total if total > 0 else 1.0
        fro_hat = float(_least_squares(traj.fro(name).double()[:, None], y, at[:1])[0, 0])
        out[name] = Forecast(
            name,
            line[0].float(),
            a[-1].float(),
            traj.directions(name)[-1],
            max(fro_hat, 0.0),
            fit_r2,
            pls.r2 if pls is not None and covariate != "step" else None,
        )
    return out
