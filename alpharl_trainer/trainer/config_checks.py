"""The checks of AlphaRLConfig's fields that need no run length (`AlphaRLConfig.__post_init__` calls them):
each refuses a value that cannot work with an AlphaRLError naming the field."""

from __future__ import annotations

import math
import re

from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.extrapolation import FITS, MODES
from alpharl_trainer.trainer.candidates import check_families

OPTIMIZER_STATES = ("keep", "reset")
SCORINGS = ("sampled", "greedy", "exact", "exact_greedy")


def check_fields(config) -> None:
    """Raise AlphaRLError for a field of an AlphaRLConfig that cannot work whatever the run's length."""
    numbers = {
        "alpharl_window_end": [config.alpharl_window_end],
        "alpharl_horizons": config.alpharl_horizons,
        "alpharl_target_rewards": config.alpharl_target_rewards,
        "alpharl_scale": [config.alpharl_scale],
        "alpharl_acceptance_margin": [config.alpharl_acceptance_margin],
        "alpharl_acceptance_margin_se": [config.alpharl_acceptance_margin_se],
        "alpharl_acceptance_duplicates": [config.alpharl_acceptance_duplicates],
        "alpharl_expo_factors": config.alpharl_expo_factors,
    }
    for name, values in numbers.items():
        if any(not math.isfinite(v) for v in values):
            raise AlphaRLError(f"{name} must be finite, got {values}")
    if config.alpharl_window_end <= 0:
        raise AlphaRLError(f"alpharl_window_end must be > 0, got {config.alpharl_window_end}")
    if config.alpharl_scale <= 0:
        raise AlphaRLError(f"alpharl_scale must be > 0 (1 = the forecast itself), got {config.alpharl_scale}")
    if config.alpharl_acceptance_scoring not in SCORINGS:
        raise AlphaRLError(
            f"alpharl_acceptance_scoring must be one of {', '.join(SCORINGS)}, not "
            f"{config.alpharl_acceptance_scoring!r}"
        )
    names = ("alpharl_acceptance_prompts", "alpharl_finetune_steps", "alpharl_acceptance_margin_se")
    more = ("alpharl_acceptance_duplicates", "alpharl_acceptance_tolerance", "alpharl_acceptance_finalists")
    for name in (*names, *more, "alpharl_acceptance_finalists_at"):
        if getattr(config, name) < 0:
            raise AlphaRLError(f"{name} must be >= 0, got {getattr(config, name)}")
    if config.alpharl_acceptance_rule not in ("full", "race"):
        raise AlphaRLError(
            f"alpharl_acceptance_rule must be 'full' or 'race', not {config.alpharl_acceptance_rule!r}"
        )
    if config.alpharl_acceptance_first < 1 or not 0 < config.alpharl_acceptance_alpha < 1:
        raise AlphaRLError(
            "alpharl_acceptance_first must be >= 1 and alpharl_acceptance_alpha in (0, 1), got "
            f"{config.alpharl_acceptance_first} and {config.alpharl_acceptance_alpha}"
        )
    if config.alpharl_acceptance_prompts > 0 and config.alpharl_acceptance_samples < 1:
        raise AlphaRLError(
            "alpharl_acceptance_samples must be >= 1 when the gate is on, got "
            f"{config.alpharl_acceptance_samples}"
        )
    for name in ("alpharl_include", "alpharl_exclude"):
        try:
            re.compile(getattr(config, name) or "")
        except re.error as err:
            pattern = getattr(config, name)
            raise AlphaRLError(f"{name} {pattern!r} is not a valid regular expression: {err}") from err
    threshold = config.alpharl_saturation_threshold
    if not 0 <= threshold < 1:
        raise AlphaRLError(f"alpharl_saturation_threshold must be in [0, 1) (0 = off), got {threshold}")
    if config.alpharl_interval < 1:
        raise AlphaRLError(f"alpharl_interval must be >= 1, got {config.alpharl_interval}")
    if config.alpharl_jumps < 1:
        raise AlphaRLError(f"alpharl_jumps must be >= 1, got {config.alpharl_jumps}")
    if config.alpharl_fit not in FITS:
        raise AlphaRLError(f"alpharl_fit must be one of {FITS}, got {config.alpharl_fit!r}")
    if config.alpharl_mode not in MODES:
        raise AlphaRLError(f"alpharl_mode must be one of {MODES}, got {config.alpharl_mode!r}")
    if config.alpharl_covariate not in ("step", "reward"):
        raise AlphaRLError(f"alpharl_covariate must be 'step' or 'reward', not {config.alpharl_covariate!r}")
    if config.alpharl_optimizer_state not in OPTIMIZER_STATES:
        raise AlphaRLError(f"alpharl_optimizer_state must be one of {OPTIMIZER_STATES}")
    if not (config.alpharl_horizons if config.alpharl_covariate == "step" else config.alpharl_target_rewards):
        raise AlphaRLError("no forecast candidates: set alpharl_horizons / alpharl_target_rewards")
    if config.alpharl_covariate == "step" and min(config.alpharl_horizons) <= 1.0:
        raise AlphaRLError("alpharl_horizons are multiples of the window end and must all be > 1")
    check_families(config)
