"""Which candidate weights are near duplicates, from small sketches of their updates.

Two candidates whose weights differ by a small fraction of the window's whole update score alike on held-out
prompts, so scoring both is wasted generation (e.g. the rank-1 line and the fixed-basis k=1 forecast to the
same step). Comparing them exactly needs every candidate's full weights at once; instead each matrix's
`W_c - W_K` is reduced to `A^T (W_c - W_K) B / w` with Gaussian `A` (m x w) and `B` (n x w) drawn from the
matrix's name, the same for every candidate. The squared norm of a sketch is an unbiased estimate of the
squared Frobenius norm, and distances between sketches track distances between weights (relative error about
`sqrt(2) / w` at `w = 8`), which is all a threshold of a few percent needs.
"""

from __future__ import annotations

import hashlib

import torch

WIDTH = 8


def _gaussian(rows: int, width: int, seed: int) -> torch.Tensor:
    return torch.randn(rows, width, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def sketch(update: torch.Tensor, name: str, width: int = WIDTH) -> torch.Tensor:
    """The `width`^2 numbers summarising `update` (a matrix, or a vector as one column) of the parameter
    `name`: the same projections for every candidate of that parameter, on every rank."""
    seed = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little") % (2**63)
    matrix = update.to(torch.float64).reshape(update.shape[0], -1)
    left = _gaussian(matrix.shape[0], width, seed)
    right = _gaussian(matrix.shape[1], width, seed + 1)
    return (left.T @ matrix @ right).flatten() / width


def twins(gram: torch.Tensor, scale: float, tolerance: float) -> dict[int, int]:
    """`{i: j}` for every candidate `i` within `tolerance x scale` of an earlier kept candidate `j` (the
    first such), from the Gram matrix of the candidates' sketches (summed over matrices). Candidates are
    kept in their order: a duplicate of a kept one is left out, a duplicate of a left-out one is not
    chained. `scale` is the window's whole update `||W_K - W_0||`; 0 leaves every candidate in."""
    if scale <= 0 or tolerance <= 0:
        return {}
    diag = gram.diagonal()
    distance = (diag[:, None] + diag[None, :] - 2 * gram).clamp_min(0).sqrt() / scale
    kept: list[int] = []
    out: dict[int, int] = {}
    for i in range(gram.shape[0]):
        near = [j for j in kept if float(distance[i, j]) <= tolerance]
        if near:
            out[i] = near[0]
        else:
            kept.append(i)
    return out
