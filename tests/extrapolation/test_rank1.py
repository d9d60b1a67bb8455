import pytest
import torch

from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.extrapolation.rank1 import top_singular


def _with_spectrum(m: int, n: int, values: torch.Tensor, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    left = torch.linalg.qr(torch.randn(m, len(values), generator=gen)).Q
    right = torch.linalg.qr(torch.randn(n, len(values), generator=gen)).Q
    return (left * values) @ right.T


def _low_rank_plus_noise(m: int, n: int, seed: int = 0) -> torch.Tensor:
    """A decaying spectrum on top of noise, rank-1 share of the norm ~0.6 (an RL update's shape)."""
    gen = torch.Generator().manual_seed(seed)
    signal = _with_spectrum(m, n, torch.tensor([6.0, 3.0, 2.0, 1.5, 1.0]), seed)
    return signal + 0.02 * torch.randn(m, n, generator=gen)


def _assert_matches_svd(r, d: torch.Tensor, tol: float = 1e-4) -> None:
    uu, sv, vh = torch.linalg.svd(d.double(), full_matrices=False)
    assert abs(r.s - sv[0].item()) <= tol * sv[0].item()
    assert abs(float(r.u.double() @ uu[:, 0])) > 1 - 1e-6
    assert abs(float(r.v.double() @ vh[0])) > 1 - 1e-6
    assert r.fro == pytest.approx(torch.linalg.matrix_norm(d.double()).item(), rel=1e-5)
    assert r.residual <= tol * r.s
    assert r.u.dtype == r.v.dtype == torch.float32


@pytest.mark.parametrize("shape", [(120, 90), (70, 200)])
def test_matches_full_svd_on_low_rank_plus_noise(shape):
    d = _low_rank_plus_noise(*shape)
    r = top_singular(d)
    assert r.method == "power"
    _assert_matches_svd(r, d)
    assert r.s2 == pytest.approx(torch.linalg.svdvals(d)[1].item(), rel=1e-3)


def test_matches_full_svd_on_pure_noise():
    d = torch.randn(150, 100, generator=torch.Generator().manual_seed(3))
    _assert_matches_svd(top_singular(d), d)


def test_warm_start_from_the_previous_step_converges_faster():
    before = _low_rank_plus_noise(200, 160, seed=1)
    after = before + 0.05 * _low_rank_plus_noise(200, 160, seed=2)  # the same update a little later
    cold, warm = top_singular(after), top_singular(after, top_singular(before).v)
    assert warm.iters < cold.iters
    _assert_matches_svd(warm, after)


def test_warm_vector_that_became_the_second_still_gives_the_top_pair():
    d = _low_rank_plus_noise(100, 80)
    second = torch.linalg.svd(d, full_matrices=False).Vh[1]
    _assert_matches_svd(top_singular(d, second), d)


def test_near_degenerate_gap_falls_back_to_full_svd():
    values = torch.cat([torch.tensor([1.0, 0.9995]), torch.full((6,), 0.999), torch.linspace(0.5, 0.1, 40)])
    d = _with_spectrum(120, 90, values)
    r = top_singular(d)
    assert r.method == "svd"
    assert r.iters == 50  # the block iteration was tried first
    _assert_matches_svd(r, d, tol=1e-5)


def test_unconverged_iteration_falls_back_to_checked_svd_lowrank():
    d = _with_spectrum(120, 90, torch.tensor([1.0, 0.95, 0.9, 0.85, 0.8, 0.75, 0.1, 0.05]))
    rng_before = torch.random.get_rng_state()
    r = top_singular(d, max_iters=1)
    assert r.method == "svd_lowrank"
    _assert_matches_svd(r, d)
    assert torch.equal(torch.random.get_rng_state(), rng_before)  # the training RNG is untouched


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_input_is_computed_in_float32(dtype):
    d = _low_rank_plus_noise(96, 64).to(dtype)
    r = top_singular(d)
    _assert_matches_svd(r, d.float())


def test_zero_update():
    r = top_singular(torch.zeros(30, 20, dtype=torch.bfloat16))
    assert (r.method, r.s, r.fro, r.residual) == ("zero", 0.0, 0.0, 0.0)
    assert r.u.shape == (30,) and r.v.shape == (20,) and not r.u.any() and not r.v.any()


def test_vector_is_a_single_column():
    x = torch.randn(50)
    r = top_singular(x)
    assert r.s == pytest.approx(x.norm().item(), rel=1e-6)
    assert r.v.shape == (1,)
    torch.testing.assert_close(r.s * torch.outer(r.u, r.v)[:, 0], x)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_update_names_the_tensor(bad):
    d = torch.randn(20, 20)
    d[3, 4] = bad
    with pytest.raises(AlphaRLError, match="layers.0.q_proj"):
        top_singular(d, name="layers.0.q_proj")


def test_bad_shapes_are_refused():
    with pytest.raises(AlphaRLError, match="q"):
        top_singular(torch.randn(2, 3, 4), name="q")
    with pytest.raises(AlphaRLError, match="warm start"):
        top_singular(torch.randn(40, 30), torch.randn(40))


def test_deterministic():
    d = _low_rank_plus_noise(80, 60)
    a, b = top_singular(d), top_singular(d)
    assert a.s == b.s and torch.equal(a.u, b.u) and torch.equal(a.v, b.v)
