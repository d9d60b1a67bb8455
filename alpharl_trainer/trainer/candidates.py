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
target alone (`"75"`). The rules of the families (which a run can offer, how far an unscored one may jump)
are here too, so the config, the callback and the planner apply the same ones.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.extrapolation.apply import ABSURD_JUMP, LARGE_JUMP
from alpharl_trainer.extrapolation.averaging import average_weight, expo_weight
from alpharl_trainer.extrapolation.fixed_basis import PROFILES, FixedBasisFit, fit_fixed_basis
from alpharl_trainer.extrapolation.saturation import MIN_POINTS as SATURATION_POINTS

if TYPE_CHECKING:
    from alpharl_trainer.trainer.schedule import Schedule

logger = logging.getLogger(__name__)

FAMILIES = ("rank1", "fixed_basis", "expo", "average", "relex")
"""The gate's candidate families (`alpharl_candidates`)."""
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
        read: Callable[[int], torch.Tensor] | None,
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
    left_out = families_left_out(config, snapshots, lora)
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


# the families' rules -----------------------------------------------------------------------------------
def check_families(config) -> None:
    """Raise AlphaRLError for an `alpharl_candidates` list or a family knob that cannot work."""
    families = list(config.alpharl_candidates)
    unknown = sorted(set(families) - set(FAMILIES))
    if unknown or not families:
        raise AlphaRLError(f"alpharl_candidates must be a non-empty subset of {FAMILIES}, got {families}")
    if "fixed_basis" in families:
        if not config.alpharl_basis_ranks or min(config.alpharl_basis_ranks) < 1:
            raise AlphaRLError(f"alpharl_basis_ranks must be >= 1, got {config.alpharl_basis_ranks}")
        if config.alpharl_basis_profile not in PROFILES:
            raise AlphaRLError(f"alpharl_basis_profile must be one of {PROFILES}")
    if "expo" in families and (not config.alpharl_expo_factors or min(config.alpharl_expo_factors) <= 0):
        raise AlphaRLError(f"alpharl_expo_factors must all be > 0, got {config.alpharl_expo_factors}")
    if "average" in families and config.alpharl_average_snapshots < 2:
        raise AlphaRLError(
            "alpharl_average_snapshots must be >= 2 (1 is W_K itself), got "
            f"{config.alpharl_average_snapshots}"
        )


def families_left_out(config, snapshots: int, lora: bool = False) -> dict[str, str]:
    """The families of `config.alpharl_candidates` a window of `snapshots` snapshots cannot offer, and why.
    The portfolio leaves them out (the callback warns); a run that can offer none of its families is
    refused."""
    out = {}
    saturating = config.alpharl_basis_profile == "saturating"
    for family in config.alpharl_candidates:
        if lora and family != "rank1":
            out[family] = "a LoRA run's candidates are rank-1 forecasts of its merged update"
        elif family in ("fixed_basis", "relex") and config.alpharl_covariate != "step":
            out[family] = "it forecasts to steps: it needs alpharl_covariate step"
        elif family == "fixed_basis" and saturating and snapshots < SATURATION_POINTS:
            out[family] = (
                f"a saturating profile needs {SATURATION_POINTS} snapshots, the window holds {snapshots} "
                "(lower alpharl_interval)"
            )
    return out


def unscored_jump(config, schedule: Schedule) -> tuple[str, float] | None:
    """With the gate off the first candidate is applied unscored: its label and about how far it moves the
    weights, in units of their whole window update `W_K - W_0` (offline `predict`'s unit): the distance
    beyond the window end in window lengths for a forecast (times `alpharl_scale` for rank-1), `a` for ExPO.
    None with the gate on (the gate judges the jump), or when it cannot be priced before the run: a reward
    target, or an average (inside the window)."""
    if config.alpharl_acceptance_prompts > 0:
        return None
    end, snapshots = schedule.length, len(schedule.snapshot_steps())
    first = build_candidates(config, schedule.targets(), end, schedule.max_steps, snapshots)[0]
    if first.family == "expo":
        return describe(first.label), first.value
    if first.family == "average" or config.alpharl_covariate != "step":
        return None
    beyond = (first.value - end) / end + (1 if config.alpharl_mode == "reference" else 0)
    return describe(first.label), beyond * (config.alpharl_scale if first.family == "rank1" else 1.0)


def unscored_jump_warning(config, schedule: Schedule) -> str | None:
    """The rule offline `predict` applies to a far forecast, for the candidate the gate-off swap applies
    unscored: over `ABSURD_JUMP` window updates it is refused (AlphaRLError), over `LARGE_JUMP` the returned
    warning says so; None otherwise."""
    unscored = unscored_jump(config, schedule)
    if unscored is None or unscored[1] <= LARGE_JUMP:
        return None
    label, jump = unscored
    what = (
        f"with the acceptance gate off (alpharl_acceptance_prompts 0) {label} is applied unscored and "
        f"moves the weights about {jump:.3g} times their whole window update"
    )
    if jump > ABSURD_JUMP:
        raise AlphaRLError(
            f"{what}: far outside what the window can predict; choose a nearer target (alpharl_horizons, "
            "alpharl_expo_factors) or a smaller alpharl_scale, or turn the gate on"
        )
    return f"{what}: far outside the window, evaluate before use"


def refuse_far_jump(label: str, jump: float, unit: str) -> str | None:
    """The same rule on the jump a gate-off swap has just written (`jump` window updates): over
    `ABSURD_JUMP` the reason it is refused (the current weights are then kept), over `LARGE_JUMP` a
    warning and None. The gate judges its own winners; unscored, this is the only guard left."""
    what = f"{describe(label, unit)} moved the weights {jump:.3g} times their whole window update"
    if jump > ABSURD_JUMP:
        refused = f"{what}, far outside what the window can predict"
        logger.warning("AlphaRL: refused: %s; kept the current weights", refused)
        return refused
    if jump > LARGE_JUMP:
        logger.warning("AlphaRL: %s, far outside the window: evaluate before use", what)
    return None
