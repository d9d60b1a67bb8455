"""Saturating curves for a run's progress: how far is it worth forecasting?

A straight-line forecast of the rank-1 trajectory to a fixed multiple of the window assumes the run keeps
moving as fast as it did; a run that is saturating does not, and the straight line overshoots wherever
accuracy bends. Fitted to a progress signal known at the window end (the
mean training reward per snapshot, or `||W_t - W_0||`), a saturating curve says where the run is heading and
when it stops moving:

- `exponential`: `r(t) = r_inf - d exp(-t / tau)` (a run approaching a plateau);
- `power`: `r(t) = a + b t^c`, `0 < c <= 1` (a run that keeps climbing ever more slowly; `c = 1` is a line).

Each is fitted by least squares, exactly in its two linear coefficients (in closed form) for every value
of its shape parameter (`tau` or `c`) on a grid, all at once; the form with the smaller in-window residual
is kept.
`horizon` turns the fit into a forecast target: the first step at which the gain the curve predicts over the
next `window` steps falls under `threshold` times the gain seen in the window. A saturating run gets a
short jump, a climbing one a long one. `predict` at the run's last step gives the paper's reward target y*.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from alpharl_trainer.errors import AlphaRLError

FORMS = ("exponential", "power")
GRID = 200
MIN_POINTS = 4


@dataclass(frozen=True)
class SaturationFit:
    form: str
    """'exponential' or 'power'."""
    shape: float
    """`tau` (exponential) or `c` (power), in the steps' units."""
    coef: tuple[float, float]
    """(r_inf, d) for the exponential, (a, b) for the power law."""
    r2: float
    """In-window coefficient of determination."""

    def predict(self, t: float | torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=torch.float64)
        return self.coef[0] + self.coef[1] * _basis(self.form, self.shape, t)


def _basis(form: str, shape: float, t: torch.Tensor) -> torch.Tensor:
    return -torch.exp(-t / shape) if form == "exponential" else t.clamp_min(0) ** shape


def _grid(form: str, span: float) -> torch.Tensor:
    """The shape values searched: `tau` log-spaced over 0.05-100 x the window's span, or `c` in (0, 1]."""
    if form == "exponential":
        return torch.logspace(math.log10(0.05 * span), math.log10(100 * span), GRID, dtype=torch.float64)
    return torch.linspace(0.02, 1.0, GRID, dtype=torch.float64)


def _fit_one(form: str, t: torch.Tensor, y: torch.Tensor) -> SaturationFit:
    """Least squares of `y ~ c0 + c1 basis(t; shape)` for every grid shape at once: for a fixed shape the two
    coefficients have the closed form of a simple regression (slope = cov / var), so the grid is one
    (GRID x points) matrix instead of GRID separate solves."""
    grid = _grid(form, float(t.max()))
    x = -torch.exp(-t / grid[:, None]) if form == "exponential" else t.clamp_min(0) ** grid[:, None]
    xc, yc = x - x.mean(1, keepdim=True), y - y.mean()
    sxx, sxy, total = (xc * xc).sum(1), (xc * yc).sum(1), float((yc * yc).sum())
    usable = sxx > 1e-300  # a basis constant over the window fits the mean alone
    slope = torch.where(usable, sxy / sxx.clamp_min(1e-300), torch.zeros_like(sxx))
    sse = torch.where(usable, total - slope * sxy, torch.full_like(sxx, total)).clamp_min(0.0)
    best = int(torch.argmin(sse))
    c1 = float(slope[best])
    c0 = float(y.mean() - c1 * x[best].mean())
    r2 = 1.0 - float(sse[best]) / total if total > 0 else 1.0
    return SaturationFit(form, float(grid[best]), (c0, c1), r2)


def fit_saturation(steps: list[float], values: list[float], forms: tuple[str, ...] = FORMS) -> SaturationFit:
    """The best-fitting saturating curve (of `forms`) through (step, value) points of one window."""
    t = torch.tensor(steps, dtype=torch.float64)
    y = torch.tensor(values, dtype=torch.float64)
    if t.shape != y.shape or t.ndim != 1:
        raise AlphaRLError(f"saturation fit: {len(steps)} steps and {len(values)} values must pair up")
    if len(t) < MIN_POINTS:
        raise AlphaRLError(f"saturation fit: needs >= {MIN_POINTS} points, got {len(t)}")
    if not (torch.isfinite(t).all() and torch.isfinite(y).all()) or (t <= 0).any():
        raise AlphaRLError("saturation fit: steps must be positive and values finite")
    unknown = set(forms) - set(FORMS)
    if unknown or not forms:
        raise AlphaRLError(f"saturation fit: forms must be among {FORMS}, got {forms}")
    if float(y.max() - y.min()) <= 1e-12 * max(1.0, float(y.abs().max())):  # flat: no shape to fit
        return SaturationFit(forms[0], float(t.max()), (float(y.mean()), 0.0), 1.0)
    fits = [_fit_one(form, t, y) for form in forms]
    return max(fits, key=lambda f: f.r2)


def horizon(fit: SaturationFit, window_end: float, threshold: float, max_multiple: float) -> float:
    """The first step `h >= window_end` at which the gain `fit` predicts over the next `window_end` steps is
    under `threshold` times the gain over the window (`fit(window_end) - fit(0)`), capped at `max_multiple`
    x the window end. A flat or falling window gives `window_end` itself: nothing to forecast."""
    if not 0 < threshold < 1 or max_multiple <= 1:
        raise AlphaRLError("horizon: threshold must be in (0, 1) and max_multiple > 1")
    level = float(fit.predict(window_end))
    seen = level - float(fit.predict(0.0))
    if seen <= 1e-9 * max(1.0, abs(level)):  # flat or falling (up to rounding)
        return float(window_end)
    steps = torch.linspace(window_end, max_multiple * window_end, 1000, dtype=torch.float64)
    ahead = fit.predict(steps + window_end) - fit.predict(steps)
    below = (ahead < threshold * seen).nonzero()
    return float(steps[below[0, 0]]) if len(below) else float(max_multiple * window_end)


def saturation_target(
    steps: list[int],
    rewards: list[float] | None,
    *,
    origin: int,
    run_end: int,
    covariate: str,
    threshold: float,
    max_multiple: float,
) -> dict:
    """One more forecast target from a saturating fit of a window's reward per snapshot (`steps`, from the
    window's `W_0` at step `origin`; the last is the window end): with covariate 'step', the saturation
    horizon (`horizon`) as a whole step after the window end; with covariate 'reward', the reward the fit
    predicts at `run_end` (the paper's y*) when it rises beyond the window's. Returns `target` (None when
    there is none) with the fit's `form`, `shape` and `r2`, or `why` there is none (too few rewards, or a
    window that did not gain)."""
    if not rewards or len(rewards) < MIN_POINTS:
        return {"target": None, "why": f"needs the reward at >= {MIN_POINTS} snapshots"}
    fit = fit_saturation([float(s - origin) for s in steps], [float(r) for r in rewards])
    described = {"form": fit.form, "shape": fit.shape, "r2": fit.r2}
    if covariate == "reward":
        y_star = float(fit.predict(run_end - origin))
        target = round(y_star, 4) if math.isfinite(y_star) and y_star > max(rewards) else None
        why = None if target is not None else "the fitted reward does not rise beyond the window's"
        return {"target": target, **described, "why": why}
    end = steps[-1]
    reach = origin + horizon(fit, end - origin, threshold, max_multiple)
    target = float(math.floor(reach + 0.5)) if reach >= end + 1 else None
    why = None if target is not None else "the fitted reward does not rise beyond the window"
    return {"target": target, **described, "why": why}
