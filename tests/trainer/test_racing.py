"""The racing gate: early decisions when they are clear, the full gate's rule at the last look, and the
protocol (what must be scored before a step)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.trainer import racing
from alpharl_trainer.trainer.racing import CURRENT, Race, look_counts

REPO = Path(__file__).resolve().parents[2]


def run(race: Race, table: dict[str, np.ndarray]) -> tuple[str | None, int]:
    """Drive `race` on per-prompt scores for all N prompts; its decision and the prompts `current` used."""
    racing.drive(race, table)
    return race.decision(), len(race.per_prompt()[CURRENT])


def scores(rng: np.random.Generator, mean: float, n: int = 64) -> np.ndarray:
    """Per-prompt scores of 4 samples around `mean` (clipped to [0, 1])."""
    return rng.binomial(4, np.clip(rng.normal(mean, 0.15, n), 0, 1)) / 4


def test_looks_double_from_first_and_end_at_the_total():
    assert look_counts(64, 8) == [8, 16, 32, 64]
    assert look_counts(50, 8) == [8, 16, 32, 50]
    assert look_counts(8, 8) == [8] and look_counts(5, 8) == [5]
    assert Race(["a"], 100, 0.01).looks() == [16, 32, 64, 100]  # the default first look: 16 prompts
    with pytest.raises(AlphaRLError):
        look_counts(0, 8)


def test_a_clearly_dominant_candidate_is_chosen_before_the_last_look():
    rng = np.random.default_rng(0)
    table = {
        CURRENT: scores(rng, 0.2),
        "good": scores(rng, 0.9),
        "meh": scores(rng, 0.25),
        "bad": scores(rng, 0.1),
    }
    race = Race(["meh", "good", "bad"], 64, 0.01)
    chosen, used = run(race, table)
    assert chosen == "good" and used < 64
    assert set(race.dropped()) == {"meh", "bad"}
    assert racing.best_over_bar({k: float(v.mean()) for k, v in table.items()}, race.labels, 0.01) == "good"


def test_all_worse_candidates_keep_the_current_weights_early():
    rng = np.random.default_rng(1)
    table = {CURRENT: scores(rng, 0.8), **{f"c{i}": scores(rng, 0.1 + 0.05 * i) for i in range(5)}}
    race = Race([f"c{i}" for i in range(5)], 64, 0.01, first=8)
    chosen, used = run(race, table)
    assert chosen is None and used == 8
    assert all(why.startswith("below the bar") for why in race.dropped().values())


def test_a_nan_candidate_is_dropped_at_the_first_look_and_never_chosen():
    rng = np.random.default_rng(2)
    table = {CURRENT: scores(rng, 0.3), "nan": np.full(64, math.nan), "ok": scores(rng, 0.35)}
    race = Race(["nan", "ok"], 64, 0.01, first=8)
    run(race, table)
    assert race.dropped()["nan"] == "NaN score"
    assert len(race.per_prompt()["nan"]) == 8 and math.isnan(race.scores()["nan"])
    assert race.decision() != "nan"


def test_current_scoring_nan_keeps_the_current_weights_as_the_full_gate_does():
    table = {CURRENT: np.full(64, math.nan), "a": np.ones(64)}
    assert run(Race(["a"], 64, 0.01), table)[0] is None


@pytest.mark.parametrize("margin_se", [0.0, 1.0])
def test_at_the_last_look_the_decision_is_the_full_gates_on_the_same_data(margin_se):
    """Near-equal candidates all reach the last look, where the race is `best_over_bar` on all N prompts."""
    checked = 0
    for seed in range(20):
        rng = np.random.default_rng(seed)
        labels = [f"c{i}" for i in range(6)]
        table = {CURRENT: scores(rng, 0.3), **{k: scores(rng, 0.3 + 0.01 * i) for i, k in enumerate(labels)}}
        race = Race(labels, 64, 0.01, margin_se=margin_se)
        chosen, used = run(race, table)
        if race.survivors() != labels:
            continue
        full = {k: v.tolist() for k, v in table.items()}
        means = {k: float(np.mean(v)) for k, v in full.items()}
        assert used == 64 and race.scores() == pytest.approx(means)
        assert chosen == racing.best_over_bar(means, labels, 0.01, per_prompt=full, margin_se=margin_se)
        checked += 1
    assert checked >= 15


def test_identical_candidates_are_never_dropped_as_behind_the_leader():
    """The leader rule needs a significant difference: identical candidates all reach the last look (a tie
    costs the full scoring), where the first of them wins as in the full gate."""
    rng = np.random.default_rng(4)
    good = scores(rng, 0.9)
    table = {CURRENT: scores(rng, 0.1), "a": good, "b": good.copy(), "c": good.copy()}
    race = Race(["a", "b", "c"], 64, 0.01)
    assert run(race, table) == ("a", 64)
    assert race.dropped() == {}


def test_candidates_equal_to_current_are_not_dropped_before_the_full_gate_would_say_no():
    same = scores(np.random.default_rng(5), 0.4)
    race = Race([f"c{i}" for i in range(10)], 64, 0.01)
    assert run(race, {CURRENT: same, **{f"c{i}": same for i in range(10)}}) == (None, 64)
    assert race.dropped() == {}


def test_an_early_choice_is_held_to_margin_se_when_it_is_stricter_than_z():
    rng = np.random.default_rng(6)
    table = {CURRENT: scores(rng, 0.2), "good": scores(rng, 0.9)}
    assert run(Race(["good"], 64, 0.01, first=8), table) == ("good", 8)
    assert run(Race(["good"], 64, 0.01, margin_se=100.0), table) == (None, 64)


def test_scores_outside_zero_one_do_not_crash():
    table = {CURRENT: np.full(64, -2.0), "a": np.full(64, 5.0), "b": np.linspace(-1, 3, 64)}
    assert run(Race(["a", "b"], 64, 0.01), table)[0] == "a"


def test_the_protocol_refuses_what_it_cannot_decide_on():
    with pytest.raises(AlphaRLError, match="distinct"):
        Race(["a", CURRENT], 64, 0.01)
    race = Race(["a", "b"], 64, 0.01, first=8)
    assert race.next_prompts() == range(0, 8)
    race.record(CURRENT, [0.5] * 8)
    with pytest.raises(AlphaRLError, match="needs 8 prompts"):
        race.step()
    with pytest.raises(AlphaRLError, match="past"):
        race.record("a", [0.5] * 9)
    with pytest.raises(AlphaRLError, match="not decided"):
        race.decision()
    race.record("a", [0.5] * 8)
    race.record("b", [math.nan] * 8)
    assert race.step() is False and race.survivors() == ["a"] and race.next_prompts() == range(8, 16)
    with pytest.raises(AlphaRLError, match="not in the race"):
        race.record("b", [0.5] * 8)
    assert race.scored() == 24


def test_the_module_loads_without_torch():
    """The race is pure: loaded alone (not through the trainer package) it pulls in neither torch nor TRL."""
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('racing', {str(Path(racing.__file__))!r})\n"
        "module = importlib.util.module_from_spec(spec); sys.modules['racing'] = module\n"
        "spec.loader.exec_module(module)\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'trl', 'transformers'}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "[]"


def test_a_tolerance_stops_with_the_leader_once_no_rival_can_beat_it_by_more():
    """Two candidates that agree on every prompt tie for good: without a tolerance the race cannot tell them
    apart and runs to the last look; with one it stops as soon as the leader clears the bar and the rival
    cannot beat it by more than the tolerance, and picks the first of the tie as the full gate would."""
    rng = np.random.default_rng(1)
    good = scores(rng, 0.9, 256)
    table = {CURRENT: scores(rng, 0.2, 256), "twin a": good, "twin b": good.copy()}
    strict, used_strict = run(Race(["twin a", "twin b"], 256, 0.01), table)
    tolerant, used = run(Race(["twin a", "twin b"], 256, 0.01, tolerance=0.05), table)
    assert strict == tolerant == "twin a"
    assert used_strict == 256 and used < 256


def test_a_tolerance_keeps_the_current_weights_early_when_nothing_can_beat_them_by_more():
    """Candidates that score as `current` on every prompt can never be shown below a bar of 0; with a
    tolerance they are dropped once their gain's upper bound is under it, and the race keeps W_K early."""
    rng = np.random.default_rng(2)
    current = scores(rng, 0.5, 512)
    table = {CURRENT: current, "same": current.copy(), "worse": np.clip(current - 0.25, 0, 1)}
    assert run(Race(["same", "worse"], 512, 0.0), table)[1] == 512
    chosen, used = run(Race(["same", "worse"], 512, 0.0, tolerance=0.05), table)
    assert chosen is None and used < 512


def test_a_negative_tolerance_is_refused():
    with pytest.raises(AlphaRLError, match="tolerance"):
        Race(["a"], 64, 0.01, tolerance=-0.01)


def test_a_shortlist_sends_only_the_leaders_on_and_the_full_rule_decides_between_them():
    """Six near-tied candidates run to the last look without a shortlist; with 2 finalists at 32 prompts the
    other four stop there (said why), the two leaders of those 32 prompts go on, and the last look picks the
    better of them on all prompts, as the full gate would among those two."""
    rng = np.random.default_rng(4)
    base = scores(rng, 0.5, 256)
    table = {CURRENT: np.clip(base - 0.25, 0, 1)}
    for i in range(6):
        flip = rng.random(256) < 0.1  # each differs from the others on about a tenth of the prompts
        table[f"c{i}"] = np.where(flip, 1 - base, base)
    labels = list(table)[1:]
    plain = Race(labels, 256, 0.01)
    assert run(plain, table)[1] == 256 and len(plain.dropped()) < 4
    race = Race(labels, 256, 0.01, finalists=2, finalists_at=32)
    chosen, used = run(race, table)
    first32 = {k: table[k][:32].mean() for k in labels}
    leaders = sorted(labels, key=lambda k: -first32[k])[:2]
    assert set(race.dropped()) == set(labels) - set(leaders)
    assert all("finalists" in why for why in race.dropped().values())
    full = {k: float(v.mean()) for k, v in table.items()}
    assert used == 256 and chosen == racing.best_over_bar(full, leaders, 0.01)
    assert race.scored() == 256 * 3 + 32 * 4  # current and 2 finalists on 256 prompts, the rest on 32
    with pytest.raises(AlphaRLError, match="finalists"):
        Race(["a"], 64, 0.01, finalists=-1)


def test_the_shortlist_ranks_by_the_smoother_measure_when_every_survivor_has_it():
    """Greedy outcomes that tie on the first prompts cannot rank candidates; the recorded probabilities can:
    the shortlist keeps the two with the highest mean probability, and by the scores when one is missing."""
    n = 64
    outcome = np.array([1.0, 0.0] * (n // 2))
    table = {CURRENT: np.zeros(n), **{f"c{i}": outcome.copy() for i in range(4)}}
    probability = {CURRENT: np.full(n, 0.1), **{f"c{i}": np.full(n, 0.5 + 0.1 * i) for i in range(4)}}
    labels = list(table)[1:]

    def shortlisted(with_probability: set[str]) -> set[str]:
        race = Race(labels, n, 0.01, first=32, finalists=2, finalists_at=32)
        span = race.next_prompts()
        for label in [CURRENT, *race.survivors()]:
            ranked = probability[label][span].tolist() if label in with_probability else None
            race.record(label, table[label][span].tolist(), ranked)
        race.step()
        return set(race.survivors())

    assert shortlisted({CURRENT, *labels}) == {"c3", "c2"}
    # c0 has none: by the scores, which tie, so the first two
    assert shortlisted({CURRENT, "c1", "c2", "c3"}) == {"c0", "c1"}
    assert Race(labels, n, 0.01).per_prompt_ranking() == {}
