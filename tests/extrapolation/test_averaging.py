"""ExPO and the average of the last weights: known answers and refused input."""

from __future__ import annotations

import pytest
import torch

from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.extrapolation.averaging import average_weight, expo_weight


def test_expo_steps_along_the_whole_update():
    w0, w_k = torch.zeros(3, 2), torch.full((3, 2), 2.0)
    torch.testing.assert_close(expo_weight(w_k, w0, 0.5), torch.full((3, 2), 3.0), rtol=0, atol=0)
    assert expo_weight(w_k.to(torch.bfloat16), w0.to(torch.bfloat16), 1.0).dtype == torch.bfloat16
    with pytest.raises(AlphaRLError, match="differ in shape"):
        expo_weight(w_k, torch.zeros(2, 3), 0.5)


def test_the_average_is_the_mean_and_reads_a_generator_once():
    weights = [torch.full((2, 2), float(v)) for v in (1, 2, 6)]
    reads = []

    def one_at_a_time():
        for w in weights:
            reads.append(1)
            yield w

    torch.testing.assert_close(average_weight(one_at_a_time()), torch.full((2, 2), 3.0), rtol=0, atol=0)
    assert len(reads) == 3
    with pytest.raises(AlphaRLError, match="no weights"):
        average_weight([])
    with pytest.raises(AlphaRLError, match="differ"):
        average_weight([torch.zeros(2, 2), torch.zeros(2, 3)])
