"""Sketches of candidate updates: their distances track the weights' distances, and near duplicates (and only
they) are left out, the first of each group kept."""

from __future__ import annotations

import torch

from alpharl_trainer.extrapolation.sketch import sketch, twins


def test_a_sketch_tracks_the_frobenius_distance():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(64, 48, generator=g), torch.randn(64, 48, generator=g)
    ratios = []
    for name in [f"layer{i}.weight" for i in range(40)]:
        ratios.append(float((sketch(a, name) - sketch(b, name)).norm() / (a - b).norm()))
    ratios = torch.tensor(ratios)
    assert abs(float(ratios.pow(2).mean()) - 1.0) < 0.15  # unbiased in the square, over many projections
    assert torch.equal(sketch(a, "w"), sketch(a, "w")) and not torch.equal(sketch(a, "w"), sketch(a, "v"))
    assert sketch(torch.randn(10), "bias").shape == (64,)  # a vector is one column


def test_twins_keep_the_first_of_each_group_and_nothing_else():
    g = torch.Generator().manual_seed(1)
    base = torch.randn(32, 32, generator=g)
    updates = [base, base + 1e-4 * torch.randn(32, 32, generator=g), 2 * base, -base, base * 1.001]
    sk = torch.stack([sketch(u, "w") for u in updates])
    gram = sk @ sk.T
    scale = float(base.norm())
    assert twins(gram, scale, 0.01) == {1: 0, 4: 0}
    assert twins(gram, scale, 0.0) == {} and twins(gram, 0.0, 0.01) == {}
    assert twins(gram, scale, 10.0) == {1: 0, 2: 0, 3: 0, 4: 0}  # everything within ten window updates
