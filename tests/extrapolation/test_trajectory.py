import json
import math

import pytest
import torch

from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.extrapolation.rank1 import Rank1
from alpharl_trainer.extrapolation.trajectory import META_FILE, TENSORS_FILE, Trajectory


def _factor(u: torch.Tensor, v: torch.Tensor, s: float = 1.0, s2: float | None = 0.5) -> Rank1:
    u, v = torch.nn.functional.normalize(u, dim=0), torch.nn.functional.normalize(v, dim=0)
    return Rank1(s, u, v, fro=2 * s, residual=1e-6, s2=s2, method="power", iters=2)


def _smooth_path(k: int, m: int = 12, n: int = 9, seed: int = 0) -> list[Rank1]:
    """Top triplets that rotate slowly, as consecutive checkpoints' do."""
    gen = torch.Generator().manual_seed(seed)
    u0, u1, v0, v1 = (
        torch.randn(m, generator=gen),
        torch.randn(m, generator=gen),
        torch.randn(n),
        torch.randn(n),
    )
    return [_factor(u0 + 0.1 * t * u1, v0 + 0.1 * t * v1, s=1.0 + t) for t in range(k)]


def _filled(k: int = 4, covariates: bool = True) -> Trajectory:
    traj = Trajectory()
    paths = {"a.weight": _smooth_path(k), "b.weight": _smooth_path(k, m=5, n=7, seed=1)}
    for t in range(k):
        cov = {"reward": 0.1 * t} if covariates else None
        traj.append(10 * (t + 1), {name: path[t] for name, path in paths.items()}, cov)
    return traj


def test_sign_flips_at_random_steps_are_undone():
    path = _smooth_path(12)
    gen = torch.Generator().manual_seed(5)
    flips = torch.rand(12, generator=gen) < 0.5
    assert flips.any() and not flips.all()
    traj = Trajectory()
    for t, (r, flip) in enumerate(zip(path, flips, strict=True)):
        sign = -1.0 if flip else 1.0
        traj.append(t, {"w": Rank1(r.s, sign * r.u, sign * r.v, r.fro, r.residual, r.s2, r.method, r.iters)})
    first = -1.0 if flips[0] else 1.0  # the first step's sign is the reference
    expected_state = torch.stack([first * r.s * r.u for r in path])
    torch.testing.assert_close(traj.state("w"), expected_state)
    torch.testing.assert_close(traj.directions("w"), torch.stack([first * r.v for r in path]))


def test_alignment_uses_earlier_steps_only():
    path = _smooth_path(6)
    traj = Trajectory()
    for t, r in enumerate(path[:3]):
        traj.append(t, {"w": r})
    before = traj.state("w").clone()
    flipped = path[3]
    traj.append(3, {"w": Rank1(flipped.s, -flipped.u, -flipped.v, flipped.fro, 0.0, None, "svd", 0)})
    torch.testing.assert_close(traj.state("w")[:3], before)  # the past never changes
    assert float(traj.state("w")[3] @ before[2]) > 0  # the new step was flipped to follow it


def test_alignment_skips_zero_snapshots():
    path = _smooth_path(3)
    zero = Rank1(0.0, torch.zeros(12), torch.zeros(9), 0.0, 0.0, 0.0, "zero", 0)
    traj = Trajectory()
    traj.append(1, {"w": path[0]})
    traj.append(2, {"w": zero})
    traj.append(3, {"w": Rank1(path[1].s, -path[1].u, -path[1].v, 1.0, 0.0, None, "power", 1)})
    assert float(traj.directions("w")[2] @ path[1].v) > 0
    assert not traj.last_v("w").equal(torch.zeros(9))
    traj.append(4, {"w": zero})
    torch.testing.assert_close(traj.last_v("w"), traj.directions("w")[2])  # the latest nonzero v


def test_accessors():
    traj = _filled(k=4)
    assert traj.steps == [10, 20, 30, 40] and traj.names == ["a.weight", "b.weight"] and len(traj) == 4
    assert traj.covariates == {"reward": pytest.approx([0.0, 0.1, 0.2, 0.3])}
    assert traj.state("a.weight").shape == (4, 12) and traj.directions("b.weight").shape == (4, 7)
    torch.testing.assert_close(traj.singular_values("a.weight"), torch.tensor([1.0, 2.0, 3.0, 4.0]))
    torch.testing.assert_close(traj.fro("a.weight"), torch.tensor([2.0, 4.0, 6.0, 8.0]))
    assert traj.residuals("a.weight").shape == (4,)
    torch.testing.assert_close(traj.last_v("a.weight"), traj.directions("a.weight")[-1])
    assert traj.shape("b.weight") == (5, 7)
    assert traj.nbytes() == 4 * 4 * ((12 + 9 + 3) + (5 + 7 + 3))  # u, v and 3 scalars per step
    with pytest.raises(AlphaRLError, match="nope"):
        traj.state("nope")


def test_window_is_the_prefix():
    traj = _filled(k=4)
    win = traj.window(25)
    assert win.steps == [10, 20] and win.covariates == {"reward": pytest.approx([0.0, 0.1])}
    torch.testing.assert_close(win.state("a.weight"), traj.state("a.weight")[:2])
    win.append(
        30, {"a.weight": _smooth_path(1)[0], "b.weight": _smooth_path(1, m=5, n=7)[0]}, {"reward": 1.0}
    )
    assert traj.steps == [10, 20, 30, 40]  # the original is not affected
    with pytest.raises(AlphaRLError, match="no snapshot"):
        traj.window(5)


@pytest.mark.parametrize(("step", "kind"), [(40, "duplicate"), (20, "duplicate"), (35, "non-monotonic")])
def test_duplicate_and_non_monotonic_steps(step, kind):
    traj = _filled(k=4)
    with pytest.raises(AlphaRLError, match=kind):
        traj.append(step, {"a.weight": _smooth_path(1)[0], "b.weight": _smooth_path(1, m=5, n=7)[0]})
    assert traj.steps == [10, 20, 30, 40]


def test_changes_of_names_shapes_or_covariates_are_refused_and_change_nothing():
    traj = _filled(k=2)
    good_a, good_b = _smooth_path(1)[0], _smooth_path(1, m=5, n=7)[0]
    cases = [
        ({"a.weight": good_a}, {"reward": 1.0}, "missing"),
        ({"a.weight": good_a, "b.weight": good_b, "c.weight": good_b}, {"reward": 1.0}, "new"),
        ({"a.weight": good_a, "b.weight": _smooth_path(1, m=6, n=7)[0]}, {"reward": 1.0}, "b.weight"),
        ({"a.weight": good_a, "b.weight": good_b}, {}, "covariates"),
        ({"a.weight": good_a, "b.weight": good_b}, {"reward": math.nan}, "finite"),
        (
            {"a.weight": good_a, "b.weight": Rank1(math.inf, good_b.u, good_b.v, 1, 0, None, "svd", 0)},
            {"reward": 1},
            "b.weight",
        ),
    ]
    for factors, cov, message in cases:
        with pytest.raises(AlphaRLError, match=message):
            traj.append(30, factors, cov)
    assert traj.steps == [10, 20] and traj.state("a.weight").shape == (2, 12)


def test_save_load_round_trip(tmp_path):
    traj = _filled(k=3)
    traj.save(tmp_path / "traj")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["traj"]  # no temp folder left behind
    back = Trajectory.load(tmp_path / "traj")
    assert (back.steps, back.names, back.covariates) == (traj.steps, traj.names, traj.covariates)
    for name in traj.names:
        for accessor in ("state", "directions", "fro", "residuals"):
            assert torch.equal(getattr(back, accessor)(name), getattr(traj, accessor)(name)), accessor
    size = (tmp_path / "traj" / TENSORS_FILE).stat().st_size
    assert traj.nbytes() < size < traj.nbytes() + 2048  # the compact store is what is on disk
    # a loaded trajectory continues its window, with the same sign reference
    r, r_b = _smooth_path(4)[3], _smooth_path(4, m=5, n=7, seed=1)[3]
    back.append(
        40, {"a.weight": Rank1(r.s, -r.u, -r.v, 1, 0, None, "svd", 0), "b.weight": r_b}, {"reward": 1}
    )
    assert float(back.state("a.weight")[-1] @ back.state("a.weight")[-2]) > 0


def test_save_replaces_an_existing_folder_only_when_complete(tmp_path, monkeypatch):
    _filled(k=2).save(tmp_path / "traj")
    _filled(k=3).save(tmp_path / "traj")
    assert Trajectory.load(tmp_path / "traj").steps == [10, 20, 30]

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("alpharl_trainer.checkpoints.save_file", broken)
    with pytest.raises(OSError, match="disk full"):
        _filled(k=4).save(tmp_path / "traj")
    assert Trajectory.load(tmp_path / "traj").steps == [10, 20, 30]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["traj"]


def test_missing_and_corrupt_files_name_the_file(tmp_path):
    with pytest.raises(AlphaRLError, match="nowhere"):
        Trajectory.load(tmp_path / "nowhere")
    _filled(k=2).save(tmp_path / "t")
    (tmp_path / "t" / TENSORS_FILE).write_bytes(b"garbage")
    with pytest.raises(AlphaRLError, match="unreadable"):
        Trajectory.load(tmp_path / "t")

    _filled(k=2).save(tmp_path / "t")
    (tmp_path / "t" / META_FILE).write_text("{not json")
    with pytest.raises(AlphaRLError, match="unreadable"):
        Trajectory.load(tmp_path / "t")

    _filled(k=2).save(tmp_path / "t")
    (tmp_path / "t" / META_FILE).write_text("[" * 200_000 + "]" * 200_000)  # was a RecursionError traceback
    with pytest.raises(AlphaRLError, match="unreadable trajectory .*recursion depth"):
        Trajectory.load(tmp_path / "t")

    _filled(k=2).save(tmp_path / "t")
    meta = json.loads((tmp_path / "t" / META_FILE).read_text())
    meta["steps"].append(99)  # one more step than the stored rows
    (tmp_path / "t" / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(AlphaRLError, match="inconsistent"):
        Trajectory.load(tmp_path / "t")

    meta["format"] = "something-else"
    (tmp_path / "t" / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(AlphaRLError, match="not an alpharl-trajectory"):
        Trajectory.load(tmp_path / "t")
