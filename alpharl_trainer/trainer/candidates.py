"""What the gate chooses from at the window end: labelled candidates of four families, and how each one
becomes a weight of one tracked matrix.

    rank1        the rank-1 forecast at each target (a step, or a reward level with the reward covariate)
    fixed_basis  the denoised fixed-basis forecast at each target step, per basis rank
    expo         W_K + a (W_K - W_0), per factor, plus the straight line to max_steps
    average      the mean of the window's last snapshots' weights
    relex        RELEX at each target step: rank-1 in time of the whole model's deltas (the callback fits it
                 across ranks; `extrapolation/relex.py`)

Every candidate is scored on the same held-out prompts and applied only if it beats the current weights by
the gate's bar (`decision.py`); keeping `W_K` is always an option. A rank-1 candidate is labelled by its
target alone (`"75"`), as before the portfolio existed, so the scores of a rank-1-only run read the same.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from alpharl_trainer.extrapolation.averaging import average_weight, expo_weight
from alpharl_trainer.extrapolation.fixed_basis import FixedBasisFit, fit_fixed_basis

WINDOW_FAMILIES = ("fixed_basis", "average", "relex")
"""Families that read the weights of every snapshot (kept on disk under output_dir/alpharl/window/)."""


@dataclass(frozen=True)
class Candidate:
    family: str
    value: float
    """The target (rank1, fixed_basis), the factor a (expo) or the number of snapshots averaged (average)."""
    rank: int = 0
    """fixed_basis: the rank of the basis."""

    @property
    def label(self) -> str:
        if self.family == "rank1":
            return f"{self.value:g}"
        if self.family == "fixed_basis":
            return f"fixed-basis k={self.rank} step {self.value:g}"
        if self.family == "expo":
            return f"expo a={self.value:.3g}"
        if self.family == "relex":
            return f"relex step {self.value:g}"
        return f"average of {self.value:g}"

    def weight(
        self,
        w_k: torch.Tensor,
        w0: torch.Tensor,
        steps: Sequence[int],
        read: Callable[[int], torch.Tensor],
        profile: str = "saturating",
        origin: int = 0,
        fits: dict[int, FixedBasisFit] | None = None,
    ) -> torch.Tensor:
        """This candidate's weight for one matrix (not rank1: the callback writes those from the trajectory),
        from `W_K`, `W_0` (the weights at step `origin`: the run's start or the previous jump) and
        `read(step)`, the matrix's weight at each snapshot `steps` (the last is W_K). `fits` caches this
        matrix's fixed-basis fit per rank: the fit does not depend on the target, so the candidates at other
        steps reuse it instead of reading the window again."""
        if self.family == "expo":
            return expo_weight(w_k, w0, self.value)
        if self.family == "average":
            last = steps[-int(self.value) :]
            return average_weight(w_k if s == steps[-1] else read(s) for s in last)
        if self.family == "fixed_basis":
            if not bool((w_k != w0).any()):  # an untouched matrix: nothing to forecast
                return w_k
            base = w0.to(torch.float64)
            fit = None if fits is None else fits.get(self.rank)
            if fit is None:
                times = [float(s - origin) for s in steps]  # the fit runs through W_0 at time 0
                weights = (w_k if s == steps[-1] else read(s) for s in steps)
                deltas = [(w.to(torch.float64) - base).reshape(base.shape[0], -1) for w in weights]
                fit = fit_fixed_basis(times, deltas, min(self.rank, *deltas[-1].shape), profile)
                if fits is not None:
                    fits[self.rank] = fit
            last = (w_k.to(torch.float64) - base).reshape(base.shape[0], -1)
            return (base + fit.update(last, self.value - origin).reshape(base.shape)).to(w_k.dtype)
        raise ValueError(f"no per-matrix weight for family {self.family!r}")


def build_candidates(
    config,
    targets: Sequence[float],
    window_end: int,
    max_steps: int,
    snapshots: int,
    lora: bool = False,
    start: int = 0,
) -> list[Candidate]:
    """The gate's candidates for a window ending at `window_end` with `snapshots` snapshots, in the order
    they are scored: every family of `config.alpharl_candidates` in that order (a saturating fixed-basis
    profile needs 4 snapshots: shorter windows leave it out). `targets` are the forecast
    targets (the horizons, and the saturation horizon when on): steps for fixed_basis, which the config only
    allows with the step covariate."""
    out: list[Candidate] = []
    left_out = config.left_out(snapshots, lora)
    for family in config.alpharl_candidates:
        if family in left_out:
            continue
        if family == "rank1":
            out += [Candidate("rank1", float(t)) for t in targets]
        elif family == "fixed_basis":
            out += [
                Candidate("fixed_basis", float(t), k) for k in config.alpharl_basis_ranks for t in targets
            ]
        elif family == "expo":
            factors = [*config.alpharl_expo_factors]
            if max_steps > window_end:
                factors.append((max_steps - window_end) / (window_end - start))  # the line to the run's end
            out += [Candidate("expo", float(a)) for a in sorted(set(factors))]
        elif family == "relex":
            out += [Candidate("relex", float(t)) for t in targets]
        elif family == "average":
            out.append(Candidate("average", float(min(config.alpharl_average_snapshots, snapshots))))
    unique = {c.label: c for c in out}
    return list(unique.values())


def short(label: str, unit: str = "step") -> str:
    """A candidate's label for a table cell: a rank-1 label is its bare target ('step 75')."""
    try:
        value = float(label)
    except ValueError:
        return label
    return f"{unit} {value:g}" if math.isfinite(value) else label


def describe(label: str, unit: str = "step") -> str:
    """A candidate's label for a sentence: 'the forecast to step 75' for a rank-1 one."""
    name = short(label, unit)
    return label if name == label else f"the forecast to {name}"
