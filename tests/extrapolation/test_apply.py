import pytest
import torch

from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.extrapolation.apply import predict_weight
from alpharl_trainer.extrapolation.forecast import Forecast, forecast


def _forecast(m: int = 6, n: int = 4, seed: int = 0) -> Forecast:
    gen = torch.Generator().manual_seed(seed)
    v = torch.nn.functional.normalize(torch.randn(n, generator=gen), dim=0)
    return Forecast(
        "w", torch.randn(m, generator=gen), torch.randn(m, generator=gen), v, fro_hat=3.0, fit_r2=0.9
    )


def _weights(m: int = 6, n: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return torch.randn(m, n, generator=gen), torch.randn(m, n, generator=gen)


@pytest.mark.parametrize("scale", [1.0, 0.3])
def test_the_three_modes(scale):
    fc, (w_last, w0) = _forecast(), _weights()
    replace = predict_weight(w_last, w0, fc, "rank1_replace", scale)
    torch.testing.assert_close(replace, w_last + scale * torch.outer(fc.a_hat - fc.a_last, fc.v))
    reference = predict_weight(w_last, w0, fc, "reference", scale)
    torch.testing.assert_close(reference, w_last + scale * torch.outer(fc.a_hat, fc.v))
    only = predict_weight(w_last, w0, fc, "rank1_only", scale)
    c = fc.fro_hat / fc.a_hat.norm()
    torch.testing.assert_close(only, w0 + scale * c * torch.outer(fc.a_hat, fc.v))
    # the rank-1 model's update has the forecast Frobenius norm (times the scale)
    assert float(torch.linalg.matrix_norm(only - w0)) == pytest.approx(scale * fc.fro_hat, rel=1e-5)


def test_default_mode_is_rank1_replace_and_scale_zero_keeps_the_last_weights():
    fc, (w_last, w0) = _forecast(), _weights()
    torch.testing.assert_close(
        predict_weight(w_last, w0, fc), predict_weight(w_last, w0, fc, "rank1_replace")
    )
    assert torch.equal(predict_weight(w_last, w0, fc, scale=0.0), w_last)


def test_dtype_shape_and_vectors_are_preserved():
    fc, (w_last, w0) = _forecast(), _weights()
    out = predict_weight(w_last.bfloat16(), w0.bfloat16(), fc)
    assert out.dtype == torch.bfloat16 and out.shape == (6, 4)
    exact = predict_weight(w_last.bfloat16().float(), w0.bfloat16().float(), fc)
    torch.testing.assert_close(
        out.float(), exact, rtol=1e-2, atol=1e-2
    )  # float32 math, one rounding at the end
    col = Forecast("bias", torch.randn(6), torch.randn(6), torch.ones(1), 1.0, 1.0)
    bias = predict_weight(torch.zeros(6), torch.zeros(6), col)
    assert bias.shape == (6,)
    torch.testing.assert_close(bias, col.a_hat - col.a_last)


def test_mismatches_are_refused():
    fc, (w_last, w0) = _forecast(), _weights()
    with pytest.raises(AlphaRLError, match="unknown mode"):
        predict_weight(w_last, w0, fc, "expo")
    with pytest.raises(AlphaRLError, match="w: weights"):
        predict_weight(w_last.T, w0.T, fc)
    with pytest.raises(AlphaRLError, match="w: weights"):
        predict_weight(w_last, w0[:5], fc)


def test_forecast_from_a_40_percent_window_recovers_the_final_weights(planted, record_trajectory):
    """The paper's use: train 40% of the steps, jump to the end. The jump must land near the true W_T."""
    p = planted(noise=3e-3)
    window, final = [10, 20, 30, 40], 100
    traj = record_trajectory({"w": p}, window)
    fc = forecast(traj, final)["w"]
    w_last, truth = p.weight(window[-1]), p.weight(final)

    def error(w: torch.Tensor) -> float:
        return float((w - truth).norm())

    gap = error(w_last)
    # the best a rank-1 move can do: the planted rank-1 step; the slower second term and the noise remain
    floor = error(w_last + p.rank1_term(final) - p.rank1_term(window[-1]))
    assert floor < 0.15 * gap
    assert error(predict_weight(w_last, p.w0, fc, "rank1_replace")) < 1.15 * floor
    # the rank-1 model drops everything but the top direction, so it lands farther, but still far better
    assert error(predict_weight(w_last, p.w0, fc, "rank1_only")) < 0.3 * gap
    # the scripts' double count lands far off
    assert error(predict_weight(w_last, p.w0, fc, "reference")) > 0.5 * gap
