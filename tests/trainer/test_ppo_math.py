"""PPO's math against hand-computed numbers: GAE, whitening, explained variance, policy and value clipping."""

from __future__ import annotations

import pytest
import torch

from alpharl_trainer.trainer.ppo_math import explained_variance, gae, policy_loss, value_loss, whiten

MASK = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])


def test_gae_matches_a_hand_computed_example():
    rewards = torch.tensor([[0.0, 0.0, 1.0], [0.0, 2.0, 5.0]])  # 5.0 sits on padding: ignored
    values = torch.tensor([[0.5, 0.4, 0.3], [0.1, 0.2, 9.0]])  # 9.0 sits on padding: ignored
    adv, ret = gae(rewards, values, MASK, gamma=0.9, lam=0.8)
    # row 0: d2 = 1 - .3 = .7; d1 = .9*.3 - .4 = -.13; d0 = .9*.4 - .5 = -.14; A_t = d_t + .72 A_{t+1}
    # row 1: the state after token 1 is terminal: d1 = 2 - .2 = 1.8; d0 = .9*.2 - .1 = .08
    expected = torch.tensor(
        [[-0.14 + 0.72 * (-0.13 + 0.72 * 0.7), -0.13 + 0.72 * 0.7, 0.7], [0.08 + 0.72 * 1.8, 1.8, 0]]
    )
    torch.testing.assert_close(adv, expected)
    torch.testing.assert_close(ret, expected + values * MASK)


def test_gae_with_gamma_and_lambda_one_is_reward_to_go_minus_value():
    rewards = torch.tensor([[0.5, 0.0, 1.0], [0.0, 2.0, 0.0]])
    values = torch.tensor([[0.5, 0.4, 0.3], [0.1, 0.2, 0.0]])
    adv, ret = gae(rewards, values, MASK, gamma=1.0, lam=1.0)
    torch.testing.assert_close(ret, torch.tensor([[1.5, 1.0, 1.0], [2.0, 2.0, 0.0]]))
    torch.testing.assert_close(adv, ret - values * MASK)


def test_whiten_uses_masked_tokens_only():
    x = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 100.0]])
    w = whiten(x, MASK)
    real = w[MASK.bool()]
    assert w[1, 2] == 0
    assert float(real.mean()) == pytest.approx(0.0, abs=1e-6)
    assert float(real.pow(2).mean()) == pytest.approx(1.0, abs=1e-5)  # population variance 1


def test_explained_variance():
    returns = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 0.0]])
    assert explained_variance(returns, returns, MASK) == pytest.approx(1.0)
    assert explained_variance(torch.zeros_like(returns), returns, MASK) == pytest.approx(0.0)
    # values = returns - 1: the error has zero variance, so the critic explains everything
    assert explained_variance(returns - 1, returns, MASK) == pytest.approx(1.0)


def test_policy_clipping_stops_gradient_only_past_the_trust_region():
    old = torch.zeros(1, 4)
    # ratios: 1.5 (A>0, past 1+eps: clipped), 0.5 (A>0: pessimistic, unclipped),
    # 0.5 (A<0, past 1-eps: clipped), 1.1 (inside the region)
    logps = torch.log(torch.tensor([[1.5, 0.5, 0.5, 1.1]])).requires_grad_()
    adv = torch.tensor([[1.0, 1.0, -1.0, 2.0]])
    loss, clipped = policy_loss(logps, old, adv, torch.ones(1, 4), epsilon_low=0.2, epsilon_high=0.3)
    # per token: -min(r A, clip(r) A) = -1.3, -0.5, 0.8, -2.2
    assert loss.item() == pytest.approx((-1.3 - 0.5 + 0.8 - 2.2) / 4)
    assert float(clipped) == pytest.approx(0.5)
    loss.backward()
    grad = logps.grad[0]
    assert grad[0] == 0 and grad[2] == 0  # clipped: no push further out
    assert grad[1] == pytest.approx(-0.5 / 4) and grad[3] == pytest.approx(-2.2 / 4)  # d(-r A)/d log r = -r A


def test_value_clipping_keeps_the_pessimistic_term():
    old = torch.zeros(1, 3)
    returns = torch.ones(1, 3)
    values = torch.tensor([[1.0, 0.1, -0.5]], requires_grad=True)
    loss, clipped = value_loss(values, old, returns, torch.ones(1, 3), clip=0.2)
    # token 0 moved 1.0 > 0.2: the clipped value 0.2 gives the larger error 0.64 (and no gradient);
    # token 1 inside the clip: 0.81; token 2 moved away: clipped -0.2 gives 1.44 < 2.25 unclipped
    assert loss.item() == pytest.approx(0.5 * (0.64 + 0.81 + 2.25) / 3)
    assert float(clipped) == pytest.approx(1 / 3)
    loss.backward()
    assert values.grad[0, 0] == 0
    assert float(values.grad[0, 1]) == pytest.approx((0.1 - 1.0) / 3)
    assert float(values.grad[0, 2]) == pytest.approx((-0.5 - 1.0) / 3)
