"""PPO's math on (batch, completion tokens) tensors: GAE, whitening, the clipped policy and value losses.

Pure functions, no trainer; checked against hand-computed numbers in tests/trainer/test_ppo_math.py.
`mask` marks real completion tokens (1) against right padding (0); a completion's tokens are contiguous
from position 0.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (x * mask).sum() / mask.sum().clamp(min=1)


def gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalized advantage estimation: (advantages, returns), both zero on padding.

    `values[:, t]` is V(s_t), the value of the state before token t; the state after the last token is
    terminal (value 0). `delta_t = r_t + gamma V(s_{t+1}) - V(s_t)`, `A_t = delta_t + gamma lam A_{t+1}`,
    returns `A + V`.
    """
    values = values * mask
    rewards = rewards * mask
    advantages = torch.zeros_like(values)
    running = torch.zeros_like(values[:, 0])
    for t in reversed(range(values.shape[1])):
        next_value = values[:, t + 1] if t + 1 < values.shape[1] else torch.zeros_like(running)
        running = rewards[:, t] + gamma * next_value - values[:, t] + gamma * lam * running
        advantages[:, t] = running
    advantages = advantages * mask
    return advantages, (advantages + values) * mask


def _global_sums(*xs: torch.Tensor) -> list[torch.Tensor]:
    """Sums of each tensor over this rank's batch, then over all ranks (one all-reduce)."""
    sums = torch.stack([x.sum().to(torch.float64) for x in xs])
    if dist.is_initialized():
        dist.all_reduce(sums)
    return list(sums)


def whiten(x: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """(x - mean) / std over the masked tokens of every rank's batch, so all ranks use the same statistics."""
    n, total, total_sq = _global_sums(mask, x * mask, x * x * mask)
    n = n.clamp(min=1)
    mean = total / n
    var = (total_sq / n - mean * mean).clamp(min=0)
    return ((x - mean.to(x.dtype)) * torch.rsqrt(var.to(x.dtype) + eps)) * mask


def explained_variance(values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor) -> float:
    """1 - Var(returns - values) / Var(returns) over the masked tokens of all ranks (1: a perfect critic)."""
    err = returns - values
    n, r, r_sq, e, e_sq = _global_sums(mask, returns * mask, returns**2 * mask, err * mask, err**2 * mask)
    n = n.clamp(min=1)
    var_returns = r_sq / n - (r / n) ** 2
    var_err = e_sq / n - (e / n) ** 2
    return float(1 - var_err / var_returns) if var_returns > 0 else float("nan")


def policy_loss(
    logps: torch.Tensor,
    old_logps: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    epsilon_low: float,
    epsilon_high: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO's clipped surrogate, token mean: (loss, share of tokens where the clipped term was used)."""
    ratio = torch.exp(logps - old_logps)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1 - epsilon_low, 1 + epsilon_high)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    return loss, masked_mean((clipped > unclipped).float(), mask)


def value_loss(
    values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor, clip: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Clipped value loss `0.5 max((V - R)^2, (V_clipped - R)^2)`, V_clipped kept within `clip` of the
    rollout's value, token mean: (loss, share of tokens where the clipped term was used)."""
    clipped_values = old_values + torch.clamp(values - old_values, -clip, clip)
    unclipped = (values - returns) ** 2
    clipped = (clipped_values - returns) ** 2
    loss = 0.5 * masked_mean(torch.maximum(unclipped, clipped), mask)
    return loss, masked_mean((clipped > unclipped).float(), mask)
