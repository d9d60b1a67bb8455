"""RELEX split over matrices equals RELEX on the whole flattened model (the suite's `methods.relex`)."""

from __future__ import annotations

import pytest
import torch

from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.extrapolation.relex import RelexFit, gram
from alpharl_trainer.reproduce.methods import relex


def test_summed_grams_give_the_whole_model_forecast():
    g = torch.Generator().manual_seed(0)
    base = {
        "a": torch.randn(5, 3, generator=g, dtype=torch.float64),
        "b": torch.randn(4, 4, generator=g, dtype=torch.float64),
    }
    steps = [2, 4, 6, 8]
    window = [
        (
            s,
            {
                n: w + s * 0.01 * torch.randn(w.shape, generator=g, dtype=torch.float64)
                for n, w in base.items()
            },
        )
        for s in steps
    ]
    whole = relex(base, window, 20.0)
    deltas = {n: [w[n] - base[n] for _, w in window] for n in base}
    fit = RelexFit.from_gram(steps, sum(gram(d) for d in deltas.values()))
    for name in base:
        torch.testing.assert_close(
            base[name] + fit.update(deltas[name], 20.0), whole[name], rtol=1e-10, atol=1e-12
        )


def test_zero_updates_are_refused():
    with pytest.raises(AlphaRLError, match="all zero"):
        RelexFit.from_gram([1, 2, 3], torch.zeros(3, 3, dtype=torch.float64))
