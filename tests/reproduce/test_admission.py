"""The admission rule, per run and pooled over a regime's seeds, on answers known in advance."""

from __future__ import annotations

import pytest

from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.reproduce.admission import admission, pooled_admission


def _outcomes(n: int, solved: int) -> list[float]:
    return [1.0] * solved + [0.0] * (n - solved)


def test_admission_of_a_climbing_regime_and_refusal_of_a_saturating_one():
    n = 5000
    base = _outcomes(n, 1000)
    climbing = admission(
        base, _outcomes(n, 1600), _outcomes(n, 1850), [_outcomes(n, s) for s in (1990, 2000, 2010)]
    )
    assert climbing.gain == pytest.approx(0.2) and climbing.gain_in_se > 10
    assert climbing.held_at_40 == pytest.approx(0.6) and climbing.added_by_last_20 == pytest.approx(0.15)
    assert climbing.admitted
    saturating = admission(base, _outcomes(n, 1950), _outcomes(n, 2000), [_outcomes(n, 2000)] * 3)
    assert saturating.held_at_40 == pytest.approx(0.95) and saturating.added_by_last_20 == 0
    assert not saturating.admitted
    small = admission(_outcomes(200, 50), _outcomes(200, 53), _outcomes(200, 54), [_outcomes(200, 55)] * 3)
    assert small.gain_in_se < 10 and not small.admitted  # 5 problems of 200 is no headline
    flat = admission(base, base, base, [base] * 3)
    assert flat.gain == 0 and not flat.admitted
    with pytest.raises(AlphaRLError, match="last 3 checkpoints"):
        admission(base, base, base, [base])


def test_a_regime_is_judged_pooled_over_its_seeds():
    """Mean gain over the SE of that mean (per-seed SEs 0.01 each: sqrt(2) x 0.01 / 2), mean shares."""
    group = [
        {"gain": 0.3, "gain_in_se": 30.0, "held_at_40": 0.70, "added_by_last_20": 0.12},
        {"gain": 0.1, "gain_in_se": 10.0, "held_at_40": 0.66, "added_by_last_20": 0.09},
    ]
    a = pooled_admission(group)
    assert a.gain == pytest.approx(0.2) and a.gain_in_se == pytest.approx(0.2 / (0.01 * 2**0.5 / 2))
    assert a.held_at_40 == pytest.approx(0.68) and a.added_by_last_20 == pytest.approx(0.105) and a.admitted
    group[1]["added_by_last_20"] = 0.07  # the mean falls under 0.10
    assert not pooled_admission(group).admitted
