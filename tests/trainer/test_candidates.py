"""The gate's candidate families: labels, order, and each family's weight of one matrix, without a trainer."""

from __future__ import annotations

import torch

from alpharl_trainer.extrapolation.fixed_basis import fixed_basis_weight
from alpharl_trainer.trainer.candidates import Candidate, build_candidates, describe, families_left_out
from alpharl_trainer.trainer.config import AlphaRLConfig


def test_every_family_is_labelled_in_the_configured_order():
    config = AlphaRLConfig(
        alpharl_candidates=["rank1", "fixed_basis", "expo", "average"],
        alpharl_basis_ranks=[1, 4],
        alpharl_expo_factors=[0.5, 1.0],
        alpharl_average_snapshots=4,
    )
    labels = [c.label for c in build_candidates(config, [75.0, 150.0], 30, 300, snapshots=6)]
    assert labels == [
        "75",
        "150",
        "fixed-basis k=1 step 75",
        "fixed-basis k=1 step 150",
        "fixed-basis k=4 step 75",
        "fixed-basis k=4 step 150",
        "expo a=0.5",
        "expo a=1",
        "expo a=9",  # the straight line to max_steps: 300 / 30 - 1
        "average of 4",
    ]
    few = build_candidates(AlphaRLConfig(alpharl_candidates=["average", "expo"]), [9.0], 6, 6, snapshots=3)
    assert [c.label for c in few] == [
        "average of 3",
        "expo a=0.1",
        "expo a=0.25",
        "expo a=0.5",
        "expo a=1",
        "expo a=2",
    ]


def test_labels_read_as_sentences():
    assert (
        describe("75") == "the forecast to step 75" and describe("1", "reward") == "the forecast to reward 1"
    )
    assert describe("expo a=0.5") == "expo a=0.5"


def _window(seed=0, shape=(6, 4), steps=(2, 4, 6, 8)):
    g = torch.Generator().manual_seed(seed)
    w0 = torch.randn(shape, generator=g)
    direction = torch.randn(shape, generator=g)
    weights = {s: w0 + (1 - 0.8**s) * direction + 1e-3 * torch.randn(shape, generator=g) for s in steps}
    return w0, weights, list(steps)


def test_each_family_computes_its_weight_from_the_window():
    w0, weights, steps = _window()
    w_k, read = weights[steps[-1]], weights.__getitem__
    expo = Candidate("expo", 0.5).weight(w_k, w0, steps, read)
    torch.testing.assert_close(expo, w_k + 0.5 * (w_k - w0))
    average = Candidate("average", 3.0).weight(w_k, w0, steps, read)
    torch.testing.assert_close(average, (weights[4] + weights[6] + weights[8]) / 3)
    fixed = Candidate("fixed_basis", 20.0, rank=2).weight(w_k, w0, steps, read, "saturating")
    expected = fixed_basis_weight(
        [2.0, 4.0, 6.0, 8.0], w0, [weights[s] for s in steps], 20.0, 2, "saturating"
    )
    torch.testing.assert_close(fixed, expected.float(), rtol=0, atol=0)
    assert float((fixed - w_k).norm()) > 0


def test_an_untouched_matrix_stays_at_w_k():
    w0 = torch.randn(5, 3)
    out = Candidate("fixed_basis", 20.0, rank=1).weight(w0.clone(), w0, [2, 4, 6, 8], lambda s: w0)
    torch.testing.assert_close(out, w0, rtol=0, atol=0)


def test_the_window_store_reads_shares_of_any_world_size(tmp_path):
    import pytest

    from alpharl_trainer.errors import AlphaRLError
    from alpharl_trainer.trainer.state import WindowStore, save_window

    a, b = torch.randn(3, 2), torch.randn(4, 4)
    save_window(tmp_path, 10, 0, 2, {"a": a})
    save_window(tmp_path, 10, 1, 2, {"b": b})
    reader = WindowStore(tmp_path, 2)
    torch.testing.assert_close(reader.read(10, "b"), b, rtol=0, atol=0)
    torch.testing.assert_close(reader.read(10, "a"), a, rtol=0, atol=0)
    with pytest.raises(AlphaRLError, match="weights of a at the snapshot of step 20 are missing"):
        reader.read(20, "a")


def test_one_fixed_basis_fit_serves_every_target_exactly():
    w0, weights, steps = _window()
    w_k, read = weights[steps[-1]], weights.__getitem__
    reads: list[int] = []

    def counted(step: int) -> torch.Tensor:
        reads.append(step)
        return read(step)

    fits: dict = {}
    for target in (12.0, 20.0, 40.0):
        cached = Candidate("fixed_basis", target, rank=2).weight(w_k, w0, steps, counted, fits=fits)
        fresh = Candidate("fixed_basis", target, rank=2).weight(w_k, w0, steps, read)
        torch.testing.assert_close(cached, fresh, rtol=0, atol=0)
    assert list(fits) == [2] and len(reads) == len(steps) - 1  # the window was read once, for the first


def test_relex_is_offered_at_the_forecast_steps_with_the_step_covariate_only():
    config = AlphaRLConfig(alpharl_candidates=["relex", "expo"], alpharl_expo_factors=[0.5])
    assert [c.label for c in build_candidates(config, [75.0, 150.0], 30, 30, snapshots=6)] == [
        "relex step 75",
        "relex step 150",
        "expo a=0.5",
    ]
    by_reward = AlphaRLConfig(alpharl_candidates=["relex", "expo"], alpharl_covariate="reward")
    assert "relex" in families_left_out(by_reward, 6) and "expo" not in families_left_out(by_reward, 6)
