"""Rank-1 weight extrapolation (AlphaRL) as pure tensor math: no trainer, TRL or DeepSpeed imports.

Flow per tracked matrix: `TrajectoryStore.record` (top singular triplet of `W_t - W_0`, sign-aligned) at
each snapshot -> `fit_trends` (a straight line of `a_t = s_t u_t` in the step or a reward) ->
`make_corrections` at a target (mode + shrink) -> `apply_correction_` on every replica.
"""

from alpharl_trainer.extrapolation.apply import (
    DEFAULT_MODE,
    MODES,
    Correction,
    apply_correction_,
    make_correction,
    make_corrections,
)
from alpharl_trainer.extrapolation.forecast import FITTERS, Trend, fit_trend, fit_trends
from alpharl_trainer.extrapolation.rank1 import DEFAULT_TOL, Rank1, top_singular
from alpharl_trainer.extrapolation.select import IN_BLOCK, select_matrices
from alpharl_trainer.extrapolation.trajectory import STEP, Trajectory, TrajectoryStore

__all__ = [
    "DEFAULT_MODE",
    "DEFAULT_TOL",
    "FITTERS",
    "IN_BLOCK",
    "MODES",
    "STEP",
    "Correction",
    "Rank1",
    "Trajectory",
    "TrajectoryStore",
    "Trend",
    "apply_correction_",
    "fit_trend",
    "fit_trends",
    "make_correction",
    "make_corrections",
    "select_matrices",
    "top_singular",
]
