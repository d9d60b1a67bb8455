"""Each prediction of the reproduction harness, on a tiny checkpoint series with a planted trajectory."""

from __future__ import annotations

import pytest
import torch

from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.offline.checkpoint_window import build_trajectory, open_window
from alpharl_trainer.reproduce import methods
from alpharl_trainer.reproduce.run_evaluation import load_weights
from tests.helpers_checkpoints import make_series

STEPS = (10, 20, 30)


@pytest.fixture(scope="module")
def series(tmp_path_factory, single_thread):
    return make_series(tmp_path_factory.mktemp("toy"), STEPS, noise=1e-6)


@pytest.fixture(scope="module")
def window(series):
    traj, _ = build_trajectory(open_window(series.base, series.checkpoints), progress=False)
    base = load_weights(series.base)
    ckpts = [load_weights(c) for c in series.checkpoints]
    return traj, base, ckpts


def test_expo_first_update_lawa_along_are_the_stated_formulas(window):
    _, base, (w10, w20, w30) = window
    for name in base:
        torch.testing.assert_close(
            methods.expo(base, w30, 0.5)[name], w30[name] + 0.5 * (w30[name] - base[name])
        )
        torch.testing.assert_close(
            methods.first_update(base, w10, 3.0)[name], base[name] + 3 * (w10[name] - base[name])
        )
        torch.testing.assert_close(
            methods.lawa([w10, w20, w30])[name], (w10[name] + w20[name] + w30[name]) / 3
        )
        torch.testing.assert_close(methods.along(w20, w30, 2.0)[name], w30[name] + (w30[name] - w20[name]))
    assert methods.expo(base, w30, 0.0)["model.norm.weight"].equal(w30["model.norm.weight"])
    with pytest.raises(AlphaRLError):
        methods.lawa([])


def test_expo_on_named_matrices_moves_only_them(window):
    """The symmetric variant (`expo_matrices`): the product's tracked matrices move, the rest stay at W_K."""
    traj, base, (_, _, w30) = window
    moved = methods.expo(base, w30, 2.0, traj.names)
    assert traj.names and set(traj.names) < set(base)
    for name in base:
        expected = w30[name] + 2.0 * (w30[name] - base[name]) if name in traj.names else w30[name]
        torch.testing.assert_close(moved[name], expected)


def test_rank1_forecast_reaches_the_planted_future_and_keeps_untracked_at_last(series, window):
    traj, base, (*_, last) = window
    pred = methods.rank1_forecast(traj, base, last, 60.0)
    for name in series.slopes:
        truth = series.planted(name, 60)
        assert (pred[name] - truth).norm() < 1e-3 * (truth - base[name]).norm()
        assert (last[name] - truth).norm() > 0.3 * (truth - base[name]).norm()  # the jump is real
    untracked = [n for n in base if n not in series.slopes]
    assert untracked and all(pred[n].equal(last[n]) for n in untracked)


def test_oracle_rank1_recovers_an_update_along_the_window_direction(series, window):
    traj, base, (*_, last) = window
    final = {n: (series.planted(n, 50) if n in series.slopes else last[n]) for n in last}
    oracle = methods.oracle_rank1(traj, last, final)
    for name in series.slopes:
        assert (oracle[name] - final[name]).norm() < 1e-3 * (final[name] - last[name]).norm()
    # an update orthogonal to v_K is invisible to it
    name = next(iter(series.slopes))
    v = traj.directions(name)[-1]
    ortho = torch.randn(v.numel())
    ortho -= (ortho @ v) * v
    moved = dict(last, **{name: last[name] + torch.outer(torch.randn(last[name].shape[0]), ortho)})
    assert (methods.oracle_rank1(traj, last, moved)[name] - last[name]).norm() < 1e-4


def test_choose_applies_the_gates_bar_and_keeps_w_k_otherwise():
    """The baselines' choice is the product's gate rule on held-out outcomes: the best candidate (the first
    on a tie) must beat W_K by more than `margin_se` paired SE, else W_K is kept under its own label."""
    n = 400
    current = [1] * 200 + [0] * 200  # W_K solves half

    def outcomes(w):
        return w["outcomes"]

    def flips(k):  # W_K's outcomes with its first k failures solved
        return {"outcomes": current[:200] + [1] * k + [0] * (200 - k)}

    built = []

    def make(label, k):
        built.append(label)
        return {**flips(k), "label": label}

    # +30 of 400 with a per-problem SE of ~0.013: +0.075 is ~5.6 SE; "b" and "c" tie and "b" is listed first
    candidates = {k: (lambda k=k, x=x: make(k, x)) for k, x in {"a": 10, "b": 30, "c": 30, "d": 20}.items()}
    label, weights, scores = methods.choose(candidates, outcomes, ("keep W_K", {"outcomes": current}), 2.0)
    assert label == "b" and weights["label"] == "b" and built == ["a", "b", "c", "d"]
    assert scores == {"a": 210 / n, "b": 230 / n, "c": 230 / n, "d": 220 / n, "keep W_K": 0.5}
    # +3 of 400 is ~1.7 paired SE: under a bar of 2 SE, W_K is kept (it would pass a bar of 1 SE)
    small = {"a": lambda: flips(3)}
    kept = {"outcomes": current}
    assert methods.choose(small, outcomes, ("keep W_K", kept), 2.0)[:2] == ("keep W_K", kept)
    assert methods.choose(small, outcomes, ("keep W_K", kept), 1.0)[0] == "a"
    assert methods.choose({"a": lambda: flips(0)}, outcomes, ("keep W_K", kept), 0.0)[0] == "keep W_K"
    with pytest.raises(AlphaRLError):
        methods.choose({}, outcomes, ("keep W_K", kept), 2.0)


def test_relex_extrapolates_a_whole_model_trajectory_that_is_rank1_in_time():
    """RELEX's model is W_t = W_0 + c(t) w with c linear through the origin: on such a run it is exact, for
    every tensor at once (not per matrix), and integer tensors are left alone."""
    gen = torch.Generator().manual_seed(0)
    base = {"a": torch.randn(4, 3, generator=gen), "b": torch.randn(5, generator=gen), "n": torch.tensor([7])}
    direction = {"a": torch.randn(4, 3, generator=gen), "b": torch.randn(5, generator=gen)}
    at = lambda t: {**{k: base[k] + t * direction[k] for k in direction}, "n": base["n"]}  # noqa: E731
    window = [(t, at(t)) for t in (10, 20, 30)]
    got = methods.relex(base, window, 75.0)
    for name in direction:
        torch.testing.assert_close(got[name], at(75.0)[name], rtol=1e-5, atol=1e-5)
    assert torch.equal(got["n"], base["n"])
    with pytest.raises(AlphaRLError, match="at least two checkpoints"):
        methods.relex(base, window[:1], 75.0)
