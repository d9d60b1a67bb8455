"""Every prediction of the suite as a function of what is known at the window end.

A "weights" value is a full state dict as saved in a checkpoint (name -> tensor). Each method takes
the window's weights (and, for the diagnostics, the run's true final weights) and returns a new state
dict; nothing here trains or evaluates. Rank-1 forecasts use the project's engine on the window's
trajectory (built by `alpharl_trainer.offline.build_trajectory` from the checkpoints on disk).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.extrapolation import Trajectory, forecast, predict_weight
from alpharl_trainer.extrapolation.averaging import expo_weight
from alpharl_trainer.extrapolation.fixed_basis import fixed_basis_weight
from alpharl_trainer.trainer.racing import best_over_bar

Weights = dict[str, torch.Tensor]


def _combine(terms: Sequence[tuple[float, Weights]]) -> Weights:
    """sum_i c_i W_i for every floating tensor (float32 math, each tensor back in its dtype); integer
    tensors (none in these models, but buffers exist elsewhere) are taken from the first term."""
    first = terms[0][1]
    out = {}
    for name, ref in first.items():
        if not ref.is_floating_point():
            out[name] = ref
            continue
        acc = sum(c * w[name].float() for c, w in terms)
        out[name] = acc.to(ref.dtype)
    return out


def expo(base: Weights, last: Weights, a: float, names: Sequence[str] | None = None) -> Weights:
    """ExPO: `W_K + a (W_K - W_0)` on every floating parameter, or only on `names` (the product's tracked
    matrices, as its `expo` candidate moves them) with the rest at W_K (`extrapolation.averaging.expo_weight`
    per tensor); integer tensors are W_K's."""
    moved = set(last if names is None else names)
    return {
        n: expo_weight(w, base[n], a) if w.is_floating_point() and n in moved else w for n, w in last.items()
    }


def first_update(base: Weights, first: Weights, c: float) -> Weights:
    """The replication's baseline: the first RL update scaled, `W_0 + c (W_1 - W_0)`."""
    return _combine([(1.0 - c, base), (c, first)])


def lawa(window: Sequence[Weights]) -> Weights:
    """LAWA: the plain average of the given checkpoints (the last k of the window)."""
    if not window:
        raise AlphaRLError("LAWA needs at least one checkpoint")
    return _combine([(1.0 / len(window), w) for w in window])


def along(origin: Weights, target: Weights, s: float) -> Weights:
    """`origin + s (target - origin)`: a point of the scan from `origin` (s=0) through `target` (s=1)."""
    return _combine([(1.0 - s, origin), (s, target)])


def relex(base: Weights, window: Sequence[tuple[int, Weights]], target: float) -> Weights:
    """RELEX (arXiv 2605.21468): rank-1 *in time* of the whole-model deltas. Stack `vec(W_t - W_0)` of every
    floating tensor over the window's steps (K x P), take the top singular pair `sigma u_t w^T`: one time
    profile `c_t = sigma u_t` and one direction `w`; fit `c_t` by a line through the origin in the step
    (`W_0` is step 0) and move every tensor to `W_0 + c(target) w`."""
    if len(window) < 2:
        raise AlphaRLError("RELEX needs at least two checkpoints in the window")
    names = [n for n, t in base.items() if t.is_floating_point()]
    steps = torch.tensor([float(step) for step, _ in window], dtype=torch.float64)
    deltas = torch.stack(
        [torch.cat([(w[n].double() - base[n].double()).flatten() for n in names]) for _, w in window]
    )
    u, sv, vh = torch.linalg.svd(deltas, full_matrices=False)
    profile = u[:, 0] * sv[0]
    slope = float(profile @ steps / (steps @ steps))
    moved = (slope * target) * vh[0]
    out, at = dict(base), 0
    for name in names:
        size = base[name].numel()
        out[name] = (base[name].double() + moved[at : at + size].reshape(base[name].shape)).to(
            base[name].dtype
        )
        at += size
    return out


def fixed_basis(
    base: Weights,
    window: Sequence[tuple[int, Weights]],
    names: Sequence[str],
    target: float,
    k: int,
    profile: str,
) -> Weights:
    """The denoised fixed-basis forecast (`extrapolation.fixed_basis`) of every tracked matrix (`names`) at
    step `target` from the window's checkpoints; untracked tensors stay at `W_K` (the window's last)."""
    steps = [float(step) for step, _ in window]
    out = dict(window[-1][1])
    for name in names:
        weights = [w[name] for _, w in window]
        out[name] = fixed_basis_weight(steps, base[name], weights, target, k, profile).to(base[name].dtype)
    return out


def rank1_forecast(
    traj: Trajectory,
    base: Weights,
    last: Weights,
    target: float,
    *,
    fit: str = "linear",
    covariate: str = "step",
    mode: str = "rank1_replace",
    scale: float = 1.0,
) -> Weights:
    """The engine's forecast of every tracked matrix at `target` (a step or a reward level), written with
    `mode`; untracked tensors stay at `W_K`."""
    out = dict(last)
    for name, fc in forecast(traj, target, fit=fit, covariate=covariate).items():
        out[name] = predict_weight(last[name], base[name], fc, mode=mode, scale=scale)
        if not torch.isfinite(out[name]).all():
            raise AlphaRLError(f"the forecast of {name} at {target:g} has NaN or inf values")
    return out


def oracle_rank1(traj: Trajectory, last: Weights, final: Weights) -> Weights:
    """Diagnostic: the true remaining update of each tracked matrix projected on the window's direction,
    `W_K + ((W_T - W_K) v_K) v_K^T`: the best any forecast that only moves along `v_K` could do."""
    out = dict(last)
    for name in traj.names:
        v = traj.directions(name)[-1].to(torch.float32)
        w_k = last[name].float().reshape(-1, v.numel())
        left = (final[name].float().reshape(w_k.shape) - w_k) @ v
        out[name] = (w_k + torch.outer(left, v)).reshape(last[name].shape).to(last[name].dtype)
    return out


def choose(
    candidates: dict[str, Callable[[], Weights]],
    outcomes: Callable[[Weights], list[int]],
    current: tuple[str, Weights],
    margin_se: float,
) -> tuple[str, Weights, dict[str, float]]:
    """The gate's rule (`trainer.racing.best_over_bar`) on held-out outcomes: the best-scoring candidate
    that beats the `current` weights by more than `margin_se` paired standard errors, else the current
    weights. Returns (label, weights, every held-out score, the current one under its label)."""
    if not candidates:
        raise AlphaRLError("no candidates to choose from")
    keep, kept = current
    per_problem = {"current": outcomes(kept)}
    built: dict[str, Weights] = {}
    for label, build in candidates.items():
        built[label] = build()
        per_problem[label] = outcomes(built[label])
    scores = {k: sum(v) / len(v) for k, v in per_problem.items()}
    label = best_over_bar(scores, list(candidates), 0.0, per_prompt=per_problem, margin_se=margin_se)
    scores[keep] = scores.pop("current")
    return (keep, kept, scores) if label is None else (label, built[label], scores)
