"""Every check of `AlphaRLConfig` (its `__post_init__` for a field, `validate_alpharl` for a run's length; the
PPO config's `__post_init__`) that test_decision.py does not cover: each refuses a bad value with an
AlphaRLError naming the field."""

from __future__ import annotations

import math
import re

import pytest

from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.trainer.config import AlphaRLConfig
from alpharl_trainer.trainer.ppo_config import AlphaRLPPOConfig, PPOConfig

GOOD = dict(alpharl_interval=2, alpharl_window_end=10)
"""Valid for max_steps 30 (snapshots at 2, 4, ..., 10): each test changes one thing."""


def refused(max_steps: int = 30, **fields) -> str:
    with pytest.raises(AlphaRLError) as err:
        AlphaRLConfig(**{**GOOD, **fields}).validate_alpharl(max_steps)
    return str(err.value)


def test_the_good_settings_pass():
    AlphaRLConfig(**GOOD).validate_alpharl(30)
    AlphaRLConfig(**GOOD, alpharl_covariate="reward").validate_alpharl(30)


@pytest.mark.parametrize("interval", [0, -1])
def test_interval_below_one(interval):
    assert f"alpharl_interval must be >= 1, got {interval}" in refused(alpharl_interval=interval)


def test_unknown_fit():
    message = refused(alpharl_fit="quadratic")
    assert "alpharl_fit must be one of" in message and "'quadratic'" in message


def test_unknown_mode():
    message = refused(alpharl_mode="rank2")
    assert "alpharl_mode must be one of" in message and "'rank2'" in message


def test_unknown_covariate():
    message = refused(alpharl_covariate="accuracy")
    assert "alpharl_covariate must be 'step' or 'reward'" in message and "'accuracy'" in message


def test_unknown_optimizer_state():
    message = refused(alpharl_optimizer_state="zero")
    assert "alpharl_optimizer_state must be one of" in message and "'keep', 'reset'" in message


@pytest.mark.parametrize(
    ("covariate", "empty"), [("step", "alpharl_horizons"), ("reward", "alpharl_target_rewards")]
)
def test_no_candidates(covariate, empty):
    message = refused(alpharl_covariate=covariate, **{empty: []})
    assert "no forecast candidates" in message and empty in message


@pytest.mark.parametrize("horizons", [[1.0, 2.0], [1.5, 0.5]])
def test_a_horizon_not_beyond_the_window(horizons):
    message = refused(alpharl_horizons=horizons)
    assert "alpharl_horizons are multiples of the window end and must all be > 1" in message
    # target rewards are levels, not multiples: the same numbers are fine with the reward covariate
    AlphaRLConfig(**GOOD, alpharl_covariate="reward", alpharl_horizons=horizons).validate_alpharl(30)


def test_a_fractional_window_needs_max_steps():
    assert "fractional alpharl_window_end needs max_steps > 0" in refused(0, alpharl_window_end=0.4)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"alpharl_horizons": [1.5, math.nan]}, "alpharl_horizons must be finite"),
        ({"alpharl_horizons": [math.inf]}, "alpharl_horizons must be finite"),
        (
            {"alpharl_covariate": "reward", "alpharl_target_rewards": [math.nan]},
            "alpharl_target_rewards must be",
        ),
        ({"alpharl_window_end": math.nan}, "alpharl_window_end must be finite"),
        ({"alpharl_window_end": -0.4}, "alpharl_window_end must be > 0"),
        ({"alpharl_scale": 0.0}, "alpharl_scale must be > 0"),
        ({"alpharl_scale": math.nan}, "alpharl_scale must be finite"),
        ({"alpharl_acceptance_margin": math.nan}, "alpharl_acceptance_margin must be finite"),
        ({"alpharl_acceptance_prompts": -1}, "alpharl_acceptance_prompts must be >= 0"),
        ({"alpharl_finetune_steps": -2}, "alpharl_finetune_steps must be >= 0"),
        (
            {"alpharl_acceptance_prompts": 8, "alpharl_acceptance_samples": 0},
            "alpharl_acceptance_samples must",
        ),
        ({"alpharl_acceptance_margin_se": -1.0}, "alpharl_acceptance_margin_se must be >= 0"),
        ({"alpharl_acceptance_margin_se": math.inf}, "alpharl_acceptance_margin_se must be finite"),
        ({"alpharl_acceptance_scoring": "beam"}, "acceptance_scoring must be one of sampled, greedy, exact"),
        ({"alpharl_include": "q_proj("}, "alpharl_include 'q_proj\\(' is not a valid regular expression"),
    ],
)
def test_values_that_would_fail_only_at_the_window_end_are_refused_up_front(fields, message):
    """These used to pass validation and then fail (or roll back silently) after the window was trained."""
    assert re.search(message, refused(**fields))


# ---- PPOConfig.__post_init__ (AlphaRLPPOConfig inherits it) ----------------------------------------------
def ppo_refused(tmp_path, **fields) -> str:
    with pytest.raises(AlphaRLError) as err:
        AlphaRLPPOConfig(output_dir=str(tmp_path), use_cpu=True, report_to="none", **fields)
    return str(err.value)


def test_ppo_good_settings_pass(tmp_path):
    config = PPOConfig(output_dir=str(tmp_path), use_cpu=True, report_to="none", gamma=0.0, lam=1.0)
    assert (config.gamma, config.lam) == (0.0, 1.0)


def test_ppo_unknown_value_model(tmp_path):
    message = ppo_refused(tmp_path, value_model="twin")
    assert "value_model must be one of" in message and "'twin'" in message


def test_ppo_unknown_kl_estimator(tmp_path):
    message = ppo_refused(tmp_path, kl_estimator="k4")
    assert "kl_estimator must be one of" in message and "'k4'" in message


@pytest.mark.parametrize(("gamma", "lam"), [(1.5, 0.95), (-0.1, 0.95), (1.0, 1.01), (1.0, -0.5)])
def test_ppo_gamma_or_lam_outside_the_unit_interval(tmp_path, gamma, lam):
    message = ppo_refused(tmp_path, gamma=gamma, lam=lam)
    assert f"gamma and lam must lie in [0, 1], got {gamma} and {lam}" in message


@pytest.mark.parametrize(
    ("field", "value"), [("epsilon_value", 0.0), ("epsilon_value", -0.2), ("vf_coef", -1.0)]
)
def test_ppo_value_clip_and_coefficient(tmp_path, field, value):
    message = ppo_refused(tmp_path, **{field: value})
    assert "epsilon_value must be > 0 and vf_coef >= 0" in message and field in message


def test_the_choice_fields_are_typed_with_the_engine_s_choices():
    """`Literal` types make TRL's parser offer and check the choices; they must be the engine's own."""
    import typing

    from alpharl_trainer.extrapolation import FITS, MODES
    from alpharl_trainer.trainer.config_checks import OPTIMIZER_STATES, SCORINGS

    hints = typing.get_type_hints(AlphaRLConfig)
    assert typing.get_args(hints["alpharl_fit"]) == FITS
    assert typing.get_args(hints["alpharl_mode"]) == MODES
    assert typing.get_args(hints["alpharl_optimizer_state"]) == OPTIMIZER_STATES
    assert typing.get_args(hints["alpharl_covariate"]) == ("step", "reward")
    assert typing.get_args(hints["alpharl_acceptance_scoring"]) == SCORINGS


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"alpharl_candidates": ["rank1", "lawa"]}, "subset of"),
        ({"alpharl_candidates": []}, "non-empty"),
        ({"alpharl_candidates": ["fixed_basis"], "alpharl_covariate": "reward"}, "covariate step"),
        ({"alpharl_candidates": ["fixed_basis"], "alpharl_basis_ranks": [0]}, "basis_ranks"),
        (
            {"alpharl_candidates": ["fixed_basis"], "alpharl_interval": 20},
            "a saturating profile needs 4 snapshots",
        ),
        ({"alpharl_candidates": ["expo"], "alpharl_expo_factors": [-0.5]}, "expo_factors"),
        ({"alpharl_candidates": ["average"], "alpharl_average_snapshots": 1}, "average_snapshots"),
        ({"alpharl_jumps": 0}, "alpharl_jumps must be >= 1"),
        ({"alpharl_jumps": 3}, "3 windows of 60 steps end at step 180, after max_steps 150"),
    ],
)
def test_portfolios_and_jumps_that_cannot_work_are_refused(settings, message):
    with pytest.raises(AlphaRLError, match=message):
        AlphaRLConfig(**{"alpharl_window_end": 60, "alpharl_interval": 10, **settings}).validate_alpharl(150)


def test_an_absurd_unscored_jump_is_refused_and_a_large_one_warned():
    """With the gate off the first candidate is applied unscored: the forecast to 20001 x the window end moves
    the weights ~2e4 times their window update (offline `predict` refuses over 1e4, warns over 10)."""
    message = refused(alpharl_acceptance_prompts=0, alpharl_horizons=[20001])
    assert "acceptance gate off" in message and "about 2e+04 times their whole window update" in message
    large = AlphaRLConfig(**GOOD, alpharl_acceptance_prompts=0, alpharl_horizons=[50])
    warning = large.validate_alpharl(30)
    assert "the forecast to step 500 is applied unscored" in warning
    assert "about 49 times their whole window update" in warning
    gated = AlphaRLConfig(**GOOD, alpharl_horizons=[20001])  # the gate scores it: no estimate needed
    assert gated.validate_alpharl(30) is None
    expo = AlphaRLConfig(**GOOD, alpharl_acceptance_prompts=0, alpharl_candidates=["expo", "rank1"])
    assert expo.validate_alpharl(30) is None  # ExPO a=0.1 first: a tenth of the window's update
