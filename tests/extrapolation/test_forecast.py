import numpy as np
import pytest
import torch
from sklearn.cross_decomposition import PLSRegression
from sklearn.linear_model import LinearRegression

from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.extrapolation.forecast import forecast
from alpharl_trainer.extrapolation.rank1 import Rank1
from alpharl_trainer.extrapolation.trajectory import Trajectory

STEPS = [10, 20, 30, 40]
TARGET = 100


def _relative(x: torch.Tensor, truth: torch.Tensor) -> float:
    return float((x - truth).norm() / truth.norm())


def _from_states(states: list[torch.Tensor], fro: list[float] | None = None, **covariates) -> Trajectory:
    """A one-matrix trajectory with the given states `a_t` (and a fixed direction)."""
    traj, v = Trajectory(), torch.nn.functional.normalize(torch.ones(3), dim=0)
    for k, a in enumerate(states):
        s = float(a.norm())
        u = a / s if s > 0 else torch.zeros_like(a)
        f = fro[k] if fro else 2 * s
        traj.append(
            k + 1, {"w": Rank1(s, u, v, f, 0.0, None, "svd", 0)}, {c: x[k] for c, x in covariates.items()}
        )
    return traj


@pytest.mark.parametrize("fit", ["linear", "pls"])
@pytest.mark.parametrize(("noise", "seed"), [(3e-3, 0), (3e-3, 1), (1e-2, 2)])
def test_forecast_lands_on_the_planted_future_within_the_noise(planted, record_trajectory, fit, noise, seed):
    p = planted(noise=noise, seed=seed)
    traj = record_trajectory({"w": p}, STEPS)
    # the noise level: how far each window snapshot's own rank-1 term is from the planted one
    level = max(
        _relative(torch.outer(traj.state("w")[k], traj.directions("w")[k]), p.rank1_term(t))
        for k, t in enumerate(STEPS)
    )
    fc = forecast(traj, TARGET, fit=fit)["w"]
    truth = p.rank1_term(TARGET)
    error = _relative(torch.outer(fc.a_hat, fc.v), truth)
    assert error < level
    assert error < _relative(torch.outer(fc.a_last, fc.v), truth) / 5  # it really moved
    assert 0.99 < fc.fit_r2 <= 1.0


def test_reward_covariate_linear_in_step_gives_the_step_forecast(planted, record_trajectory):
    rewards = [0.2 + 0.004 * t for t in STEPS]
    traj = record_trajectory({"w": planted()}, STEPS, {"reward": rewards})
    by_step = forecast(traj, TARGET)["w"]
    by_reward = forecast(traj, 0.2 + 0.004 * TARGET, covariate="reward")["w"]
    torch.testing.assert_close(by_reward.a_hat, by_step.a_hat, rtol=1e-4, atol=1e-6)
    assert by_reward.fro_hat == pytest.approx(by_step.fro_hat, rel=1e-6)


def test_pls_with_a_reward_covariate_is_the_reference_scripts_computation(planted, record_trajectory):
    rewards = [0.31, 0.36, 0.35, 0.43, 0.44]
    steps = [10, 20, 30, 40, 50]
    traj = record_trajectory(
        {"q": planted(seed=3), "k": planted(m=40, n=24, seed=4)}, steps, {"reward": rewards}
    )
    got = forecast(traj, 0.8, fit="pls", covariate="reward")
    for name in ("q", "k"):
        x, y = traj.state(name).double().numpy(), np.array(rewards)
        pls = PLSRegression(n_components=1, scale=True).fit(x, y)
        line = LinearRegression().fit(pls.transform(x), y)
        z = (0.8 - line.intercept_) / line.coef_[0]
        expected = pls.inverse_transform(np.array([[z]]))[0]
        np.testing.assert_allclose(got[name].a_hat.numpy(), expected, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(got[name].a_last, traj.state(name)[-1])
        torch.testing.assert_close(got[name].v, traj.directions(name)[-1])


def test_r2_separates_straight_from_curved_paths():
    direction = torch.tensor([1.0, -2.0, 0.5])
    straight = _from_states([t * direction for t in (1, 2, 3, 4, 5)])
    curved = _from_states([t * direction + t**3 * torch.tensor([0.0, 0.0, 0.05]) for t in (1, 2, 3, 4, 5)])
    for fit in ("linear", "pls"):
        assert forecast(straight, 8, fit=fit)["w"].fit_r2 == pytest.approx(1.0, abs=1e-9)
        assert forecast(curved, 8, fit=fit)["w"].fit_r2 < 0.98


def test_exact_line_is_extrapolated_exactly():
    direction = torch.tensor([1.0, -2.0, 0.5])
    traj = _from_states([t * direction for t in (1, 2, 3)], fro=[3.0, 5.0, 7.0])
    fc = forecast(traj, 10)["w"]
    torch.testing.assert_close(fc.a_hat, 10 * direction)
    assert fc.fro_hat == pytest.approx(21.0)
    assert forecast(traj, -10)["w"].fro_hat == 0.0  # clamped: a norm is never negative


def test_a_state_that_never_moves_is_forecast_in_place():
    a = torch.tensor([0.5, 0.0, -1.0])
    traj = _from_states([a, a, a])
    for fit in ("linear", "pls"):
        fc = forecast(traj, 50, fit=fit)["w"]
        torch.testing.assert_close(fc.a_hat, a)
        assert fc.fit_r2 == 1.0


def test_names_selects_matrices(planted, record_trajectory):
    traj = record_trajectory({"q": planted(seed=0), "k": planted(seed=1)}, STEPS)
    assert set(forecast(traj, TARGET)) == {"q", "k"}
    assert set(forecast(traj, TARGET, names=["k"])) == {"k"}


def test_bad_requests_are_refused():
    direction = torch.tensor([1.0, -2.0, 0.5])
    traj = _from_states([t * direction for t in (1, 2, 3)], reward=[0.1, 0.2, 0.3], flat=[0.5, 0.5, 0.5])
    with pytest.raises(AlphaRLError, match="at least 3"):
        forecast(traj.window(2), 10)
    with pytest.raises(AlphaRLError, match="unknown fit"):
        forecast(traj, 10, fit="cubic")
    with pytest.raises(AlphaRLError, match="no covariate 'accuracy'"):
        forecast(traj, 10, covariate="accuracy")
    with pytest.raises(AlphaRLError, match="vary"):
        forecast(traj, 10, covariate="flat")
    with pytest.raises(AlphaRLError, match="finite"):
        forecast(traj, float("nan"))
    with pytest.raises(AlphaRLError, match="nope"):
        forecast(traj, 10, names=["nope"])


def test_reward_r2_is_the_papers_statistic_and_differs_from_the_line_fit():
    """The paper's R^2 (reward on the PLS score), checked against sklearn directly, is not the line fit's."""
    gen = torch.Generator().manual_seed(0)
    states = [torch.randn(3, generator=gen) for _ in range(6)]
    rewards = [0.1, 0.35, 0.2, 0.5, 0.45, 0.6]
    traj = _from_states(states, reward=rewards)
    x = traj.state("w").double().numpy()
    pls = PLSRegression(n_components=1, scale=True).fit(x, rewards)
    score = pls.transform(x)[:, 0][:, None]
    expected = LinearRegression().fit(score, rewards).score(score, rewards)
    for fit in ("linear", "pls"):
        fc = forecast(traj, 0.8, fit=fit, covariate="reward")["w"]
        assert fc.reward_r2 == pytest.approx(expected, abs=1e-9)
        assert fc.fit_r2 != pytest.approx(expected, abs=1e-3)
    assert forecast(traj, 9, covariate="step")["w"].reward_r2 is None  # the paper's R^2 needs a reward
