"""The top singular triplet of a weight update in a few passes over the matrix, instead of a full SVD.

A full SVD of a 4096 x 4096 update takes ~23 CPU-seconds (one core; `benchmarks/bench_rank1.py`), which is
what keeps the reference scripts offline. Only the top triplet is needed, and consecutive checkpoints share
nearly the same top direction, so a block power (subspace) iteration started from the previous checkpoint's
`v` converges in a few passes (~0.05 s there). The block (the warm vector plus fixed random columns) keeps
convergence fast when the top singular values are close (Rayleigh-Ritz separates them inside the block),
estimates `s2`, and finds the *top* pair even when the warm vector has become the second one.

Every answer is checked. Each iteration makes `dW^T u = s v` exact, and the next pass over the matrix
measures the other side, `residual = ||dW v - s u||`, for free. `residual <= tol * s` bounds the error of
`s` by `tol` (relative) and the angle error of `u, v` by about `residual / (s1 - s2)`; so where the gap
is small (`s2 / s1 > gap_fallback`) the residual must also be below `tol * (s1 - s2)`. What fails goes to
`torch.svd_lowrank` with a wider subspace (its random start drawn from a forked, seeded RNG so the
training run's random stream is untouched), checked the same way, then to a full SVD.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from alpharl_trainer.errors import AlphaRLError

_BLOCK = 4  # subspace width: the warm vector + 3 random columns
_WIDE = 16  # svd_lowrank subspace width on fallback
_SEED = 0x5EED  # fixed start columns: same matrix + same warm start -> same answer on every rank and run


@dataclass
class Rank1:
    """Top singular triplet of an update `dW`, its Frobenius norm, and how it was found."""

    s: float
    """Top singular value of `dW` (>= 0)."""
    u: torch.Tensor
    """(m,) float32 unit vector (zeros if `dW == 0`)."""
    v: torch.Tensor
    """(n,) float32 unit vector (zeros if `dW == 0`)."""
    fro: float
    """`||dW||_F`; `s / fro` is the rank-1 share of the update."""
    residual: float
    """`||dW v - s u||_2`, absolute (`dW^T u = s v` holds to rounding); 0 for an exact triplet."""
    s2: float | None
    """Estimate of the second singular value (a Ritz value: a lower bound that converges), or None."""
    method: str
    """'power' (block iteration), 'svd_lowrank' or 'svd' (checked fallbacks), or 'zero'."""
    iters: int
    """Block iterations spent (each is two passes over `dW`), including ones before a fallback."""


def _as_matrix(dw: torch.Tensor, name: str) -> torch.Tensor:
    if dw.ndim == 1:
        dw = dw[:, None]
    if dw.ndim != 2:
        raise AlphaRLError(f"{name}: rank-1 factors need a matrix or a vector, got shape {tuple(dw.shape)}")
    return dw.float()


def _accepted(residual: float, s: float, s2: float, tol: float, gap_fallback: float) -> bool:
    """Converged: `s` within `tol`, and where the gap is small also `u, v` within ~`tol` radians."""
    if not residual <= tol * s:  # `not <=` also rejects NaN
        return False
    return s2 <= gap_fallback * s or residual <= tol * (s - s2)


def _exact(d: torch.Tensor, fro: float, method: str, iters: int = 0) -> Rank1:
    """Full SVD (tiny matrices, last resort)."""
    uu, sv, vh = torch.linalg.svd(d, full_matrices=False)
    u, v = uu[:, 0].contiguous(), vh[0].contiguous()
    s2 = float(sv[1]) if len(sv) > 1 else 0.0
    residual = float(torch.linalg.vector_norm(d @ v - sv[0] * u))
    return Rank1(float(sv[0]), u, v, fro, residual, s2, method, iters)


def _lowrank(d: torch.Tensor, fro: float, iters: int, tol: float, gap_fallback: float) -> Rank1:
    """svd_lowrank over a wider subspace, checked; a full SVD when it fails the check."""
    devices = [d.device] if d.device.type != "cpu" else []
    with torch.random.fork_rng(devices=devices, device_type=d.device.type):
        torch.manual_seed(_SEED)
        uu, sv, vv = torch.svd_lowrank(d, q=min(_WIDE, *d.shape), niter=8)
    u, v, s, s2 = uu[:, 0].contiguous(), vv[:, 0].contiguous(), float(sv[0]), float(sv[1])
    residual = float(torch.linalg.vector_norm(d @ v - s * u))
    if _accepted(residual, s, s2, tol, gap_fallback):
        return Rank1(s, u, v, fro, residual, s2, "svd_lowrank", iters)
    return _exact(d, fro, "svd", iters)


def _block_iteration(
    d: torch.Tensor, v0: torch.Tensor | None, tol: float, max_iters: int, gap_fallback: float
) -> tuple[float, torch.Tensor, torch.Tensor, float, float, int] | None:
    """Subspace iteration on `d` (m, n): (s, u, v, residual, s2, iters) of the first accepted pair, or None
    when none was accepted within `max_iters`. (A batched version over same-shaped matrices was measured
    against this one: 1.9x faster on the tiny policy's 28 matrices, where both take milliseconds, and 2.2x
    slower on 0.5B-sized ones; so one matrix at a time.)
    """
    n = d.shape[1]
    gen = torch.Generator().manual_seed(_SEED)
    start = torch.randn(n, _BLOCK, generator=gen).to(d.device)
    if v0 is not None and torch.linalg.vector_norm(v0) > 0:
        start[:, 0] = v0.to(device=d.device, dtype=torch.float32)
    basis = torch.linalg.qr(start).Q
    pair = None
    for it in range(max_iters + 1):
        y = d @ basis  # (m, b); column 0 is dW v for the previous pair's v
        if pair is not None:
            s, u, s2 = pair
            residual = float(torch.linalg.vector_norm(y[:, 0] - s * u))
            if _accepted(residual, s, s2, tol, gap_fallback):
                return s, u, basis[:, 0].clone(), residual, s2, it
            if it == max_iters:
                return None
        # Rayleigh-Ritz from the left: d^T P = Q S Th, so d^T (P Th[0]) = S[0] Q[:, 0] exactly.
        p = torch.linalg.qr(y).Q
        # (P^T d)^T, not d^T P: with d row-major, torch's d^T @ P is ~10x slower on CPU
        q, sv, th = torch.linalg.svd((p.T @ d).T, full_matrices=False)
        pair = float(sv[0]), p @ th[0], float(sv[1])
        basis = q
    return None


def top_singular(
    dw: torch.Tensor,
    v0: torch.Tensor | None = None,
    *,
    name: str = "tensor",
    tol: float = 1e-4,
    max_iters: int = 50,
    gap_fallback: float = 0.98,
) -> Rank1:
    """Top singular triplet of `dw` (float32 math on its device, whatever its dtype; a vector is (m, 1)).

    `v0`: warm start, normally the previous checkpoint's `v`. The sign of the result is arbitrary;
    `Trajectory.append` aligns it. An all-zero `dw` gives `method='zero'` with zero vectors.
    """
    d = _as_matrix(dw, name)
    fro = float(torch.linalg.matrix_norm(d))
    if not math.isfinite(fro):
        raise AlphaRLError(f"{name}: the update has NaN or inf values")
    if fro == 0.0:
        m, n = d.shape
        return Rank1(0.0, d.new_zeros(m), d.new_zeros(n), 0.0, 0.0, 0.0, "zero", 0)
    if min(d.shape) <= 2 * _BLOCK:  # tiny: the exact answer is cheaper than iterating
        return _exact(d, fro, "svd")
    if v0 is not None and tuple(v0.shape) != (d.shape[1],):
        raise AlphaRLError(f"{name}: warm start of shape {tuple(v0.shape)} for a {tuple(d.shape)} update")
    hit = _block_iteration(d, v0, tol, max_iters, gap_fallback)
    if hit is None:
        return _lowrank(d, fro, max_iters, tol, gap_fallback)
    s, u, v, residual, s2, iters = hit
    return Rank1(s, u, v, fro, residual, s2, "power", iters)


def top_singular_factored(left: torch.Tensor, right: torch.Tensor, *, name: str = "tensor") -> Rank1:
    """Exact top triplet of `dW = left @ right` (m x k times k x n, k small) without forming `dW`.

    A LoRA update is such a product: `scaling * B A`, or `[s B_t, -s B_0] @ [A_t; A_0]` when the adapter did
    not start at zero. With `left = Q_l R_l` and `right^T = Q_r R_r`, `dW = Q_l (R_l R_r^T) Q_r^T`: the SVD
    of the small k x k core gives every singular triplet, in O((m + n) k^2) instead of O(m n).
    """
    left, right = left.float(), right.float()
    if left.ndim != 2 or right.ndim != 2 or left.shape[1] != right.shape[0]:
        raise AlphaRLError(
            f"{name}: factors of shapes {tuple(left.shape)} @ {tuple(right.shape)} do not chain"
        )
    if not (torch.isfinite(left).all() and torch.isfinite(right).all()):
        raise AlphaRLError(f"{name}: the update has NaN or inf values")
    q_l, r_l = torch.linalg.qr(left)
    q_r, r_r = torch.linalg.qr(right.T)
    u_c, sv, vh_c = torch.linalg.svd(r_l @ r_r.T)
    fro = float(torch.linalg.vector_norm(sv))
    m, n = left.shape[0], right.shape[1]
    if fro == 0.0:
        return Rank1(0.0, left.new_zeros(m), left.new_zeros(n), 0.0, 0.0, 0.0, "zero", 0)
    s2 = float(sv[1]) if len(sv) > 1 else 0.0
    return Rank1(float(sv[0]), q_l @ u_c[:, 0], q_r @ vh_c[0], fro, 0.0, s2, "factored", 0)
