"""The two cheap candidates beside the forecasts: ExPO's straight step from `W_0` through `W_K`, and the
average of the window's last weights (LAWA). Neither fits anything; the gate decides whether they help.

ExPO (Zheng et al., 2024) extrapolates the whole update `W_K - W_0` by a factor; averaging the last few
weights denoises them instead, which is what helps when the window's updates are mostly noise.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from alpharl_trainer.errors import AlphaRLError


def expo_weight(w_k: torch.Tensor, w0: torch.Tensor, a: float) -> torch.Tensor:
    """`W_K + a (W_K - W_0)` in float32 arithmetic, in `w_k`'s dtype."""
    if w_k.shape != w0.shape:
        raise AlphaRLError(f"ExPO: W_K {tuple(w_k.shape)} and W_0 {tuple(w0.shape)} differ in shape")
    return ((1.0 + a) * w_k.float() - a * w0.float()).to(w_k.dtype)


def average_weight(weights: Iterable[torch.Tensor]) -> torch.Tensor:
    """The mean of `weights` (one shape; may be a generator, one read at a time), in the first's dtype."""
    total, count, first = None, 0, None
    for w in weights:
        if first is None:
            first = w
        elif w.shape != first.shape:
            raise AlphaRLError(f"average: shapes {tuple(first.shape)} and {tuple(w.shape)} differ")
        total = w.double() if total is None else total + w.double()
        count += 1
    if not count:
        raise AlphaRLError("average: no weights to average")
    return (total / count).to(first.dtype)
