import pytest

from alpharl_trainer.offline.analyze import analyze
from tests.helpers_checkpoints import make_series

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    return make_series(tmp_path_factory.mktemp("series"))


def test_analyze_reports_rank1_and_linear(series, tmp_path):
    out = tmp_path / "analysis"
    analysis = analyze(series.base, series.checkpoints, out, progress=False)
    assert (out / "analysis.json").is_file()
    assert (out / "distributions.png").stat().st_size > 0 and (out / "singular_values.png").stat().st_size > 0
    summary = analysis["summary"]
    assert summary["mean_rank1_share_last"] > 0.99
    assert summary["mean_s1_over_s2_last"] > 50  # planted rank-1 vs tiny noise
    assert summary["mean_r2_linear"] > 0.99 and summary["mean_u_cosine"] > 0.99
    row = analysis["matrices"]["model.layers.0.self_attn.q_proj.weight"]
    assert len(row["s1"]) == 4 and row["s1"][-1] == pytest.approx(4 * row["s1"][0], rel=1e-2)


def test_analyze_sees_a_noisy_update(tmp_path):
    """Not rank-1, not linear: pure noise updates must score low (the metrics can fail)."""
    series = make_series(tmp_path / "src", noise=0.01, drift=0.0)
    analysis = analyze(series.base, series.checkpoints, tmp_path / "a", progress=False)
    assert analysis["summary"]["mean_rank1_share_last"] < 0.5
    assert analysis["summary"]["mean_r2_linear"] < 0.5
