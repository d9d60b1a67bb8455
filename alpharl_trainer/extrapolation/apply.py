"""Write a forecast into a weight.

With `K` the last window step, `a_hat` the forecast state and `v = v_K`:

- `rank1_replace` (default): `W_K + scale (a_hat - a_K) v^T`. Keeps everything learned so far and moves
  only the dominant component forward.
- `rank1_only`: `W_0 + scale c a_hat v^T` with `c = fro_hat / ||a_hat||`: the paper's rank-1 model, the
  top direction rescaled to the forecast `||dW||_F`.
- `reference`: `W_K + scale a_hat v^T`, what the reference scripts do (it counts the rank-1 part already
  in `W_K` twice); for comparison only.

`scale` < 1 shrinks the jump: where accuracy saturates early an unshrunk forecast overshoots.
"""

from __future__ import annotations

import torch

from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.extrapolation.forecast import Forecast

MODES = ("rank1_replace", "rank1_only", "reference")

LARGE_JUMP = 10.0
"""A forecast that moves the weights more than this many times their whole window update (`W_K - W_0`) is
reported: far outside the window, to be evaluated before use (offline `predict`, and the swap with the gate
off)..."""
ABSURD_JUMP = 1e4
"""...and more than this many times is refused: weights 1e4 times further out than training took them."""


def predict_weight(
    w_last: torch.Tensor, w0: torch.Tensor, fc: Forecast, mode: str = "rank1_replace", scale: float = 1.0
) -> torch.Tensor:
    """The predicted weight (float32 math), in `w_last`'s dtype, device and shape (a vector is (m, 1))."""
    if mode not in MODES:
        raise AlphaRLError(f"unknown mode '{mode}' (choose from {', '.join(MODES)})")
    shape = (fc.a_hat.numel(), fc.v.numel())
    as_matrix = tuple(w_last.shape) if w_last.ndim == 2 else (*w_last.shape, 1)
    if w_last.shape != w0.shape or as_matrix != shape:
        raise AlphaRLError(
            f"{fc.name}: weights {tuple(w_last.shape)} / base {tuple(w0.shape)} do not match factors {shape}"
        )
    a_hat, v = fc.a_hat.to(w_last.device, torch.float32), fc.v.to(w_last.device, torch.float32)
    if mode == "rank1_only":
        norm = float(torch.linalg.vector_norm(a_hat))
        c = fc.fro_hat / norm if norm > 0 else 0.0
        start, left = w0, c * a_hat
    else:
        start, left = w_last, a_hat - fc.a_last.to(a_hat) if mode == "rank1_replace" else a_hat
    out = start.float().reshape(shape) + scale * torch.outer(left, v)
    return out.reshape(w_last.shape).to(w_last.dtype)
