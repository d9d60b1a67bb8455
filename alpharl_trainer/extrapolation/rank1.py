"""The top singular triplet of a weight update, in a few passes over the matrix instead of a full SVD.

A full SVD of a 4096 x 4096 update takes ~50 s on two CPU cores and is the cost that makes the reference
scripts offline-only. We need only the top triplet, and consecutive checkpoints have nearly the same top
direction, so a block power (subspace) iteration started from the previous checkpoint's `v` converges in
one or two iterations. The block (the warm vector plus a few fixed random columns) does two jobs: it
keeps convergence fast when the top singular values are close (Rayleigh-Ritz separates them inside the
block), and it guarantees we find the *top* pair even if the warm vector is now the second one.

Every result is checked: the Ritz pair satisfies `dW v = s u` exactly by construction, so the residual
reported is the other half, `||dW^T u - s v|| / s`. Above `tol` we retry with a 4x wider block, then fall
back to a full SVD, and say which method answered. (The wider block plays the role of `torch.svd_lowrank`,
which we avoid because it draws its start from the global RNG and would perturb the training run's
random stream.)
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

DEFAULT_TOL = 1e-4
"""Relative residual accepted. An angle error of about `tol * s1 / (s1 - s2)` in `u` and `v`: far below
the movement of the top direction between checkpoints for any gap above ~1%."""

_SEED = 0x5EED  # fixed start columns: same matrix + same warm start -> same answer on every rank and run


@dataclass(frozen=True)
class Rank1:
    """Top singular triplet of an update `dW`, with its Frobenius norm and how it was found."""

    s: float
    u: torch.Tensor
    """Left singular vector, float32, shape (m,)."""
    v: torch.Tensor
    """Right singular vector, float32, shape (n,)."""
    fro: float
    """`||dW||_F`; `s / fro` is the rank-1 share of the update."""
    residual: float
    """`||dW^T u - s v|| / s` (the other side, `dW v - s u`, is zero by construction); 0 for a zero update."""
    method: str
    """'block' (block power iteration), 'svd' (full SVD fallback) or 'zero' (a zero update)."""
    iters: int = 0
    """Block iterations spent, including failed attempts before a fallback (each is two passes over `dW`)."""


def _start_block(delta: torch.Tensor, v0: torch.Tensor | None, block: int) -> torch.Tensor:
    n = delta.shape[1]
    gen = torch.Generator().manual_seed(_SEED)
    start = torch.randn(n, block, generator=gen).to(delta.device)
    if v0 is not None and torch.linalg.vector_norm(v0) > 0:
        start[:, 0] = v0.to(device=delta.device, dtype=torch.float32)
    return torch.linalg.qr(start).Q


def top_singular(
    delta: torch.Tensor,
    v0: torch.Tensor | None = None,
    *,
    tol: float = DEFAULT_TOL,
    block: int = 4,
    max_iters: int = 30,
) -> Rank1:
    """Top singular triplet of `delta` (any float dtype, computed in float32 on its device).

    `v0`: warm start, normally the previous checkpoint's `v`. The sign of the result is arbitrary;
    trajectories align it (see `Trajectory.append`).
    """
    if delta.ndim != 2 or max_iters < 1:
        raise ValueError(
            f"top_singular needs a matrix and max_iters >= 1, got {tuple(delta.shape)}, {max_iters}"
        )
    d = delta.float()
    m, n = d.shape
    fro = float(torch.linalg.matrix_norm(d))
    if fro == 0.0:
        return Rank1(0.0, d.new_zeros(m), d.new_zeros(n), 0.0, 0.0, "zero")
    spent = 0
    # Not converged means a cluster of >= `block` near-equal top values: retry with a 4x wider block.
    for width in (block, 4 * block):
        if min(m, n) <= 2 * width:  # small matrix: the exact answer is cheaper than iterating
            break
        found = _block_iteration(d, fro, v0, width, tol, max_iters)
        if found.residual <= tol:
            return replace(found, iters=spent + found.iters)
        spent += found.iters
    uu, sv, vh = torch.linalg.svd(d, full_matrices=False)
    s, u, v = sv[0], uu[:, 0].contiguous(), vh[0].contiguous()
    residual = float(torch.linalg.vector_norm(d.T @ u - s * v) / s)
    return Rank1(float(s), u, v, fro, residual, "svd", spent)


def _block_iteration(
    d: torch.Tensor, fro: float, v0: torch.Tensor | None, block: int, tol: float, max_iters: int
) -> Rank1:
    """Subspace iteration with Rayleigh-Ritz; returns the last pair even when it has not converged."""
    basis = _start_block(d, v0, block)
    iters = 0
    while True:
        iters += 1
        # Rayleigh-Ritz on span(basis): d @ basis = P S Th, so d (basis Th^T) = P S exactly.
        p, sv, th = torch.linalg.svd(d @ basis, full_matrices=False)
        s, u, v = sv[0], p[:, 0], basis @ th[0]
        back = d.T @ p  # the next subspace; its first column also gives the residual of (s, u, v)
        residual = float(torch.linalg.vector_norm(back[:, 0] - s * v) / s) if s > 0 else float("inf")
        if residual <= tol or iters == max_iters:
            return Rank1(float(s), u.contiguous(), v.contiguous(), fro, residual, "block", iters)
        basis = torch.linalg.qr(back).Q
