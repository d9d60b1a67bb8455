"""Rank-1 weight extrapolation (AlphaRL) as pure tensor math: no trainer, TRL, DeepSpeed or accelerate.

Per tracked matrix: `top_singular` of `W_t - W_0` at each snapshot -> `Trajectory.append` (compact,
sign-aligned) -> `forecast` (a straight line of `a_t = s_t u_t` in the step or a reward, at a target)
-> `predict_weight` (mode + scale).
"""

from alpharl_trainer.extrapolation.apply import MODES, predict_weight
from alpharl_trainer.extrapolation.forecast import FITS, Forecast, forecast
from alpharl_trainer.extrapolation.rank1 import Rank1, top_singular, top_singular_factored
from alpharl_trainer.extrapolation.select import ParamSelector
from alpharl_trainer.extrapolation.trajectory import Trajectory

__all__ = [
    "FITS",
    "MODES",
    "Forecast",
    "ParamSelector",
    "Rank1",
    "Trajectory",
    "forecast",
    "predict_weight",
    "top_singular",
    "top_singular_factored",
]
