import json

import pytest

from alpharl_trainer.cli import main
from tests.helpers_checkpoints import make_series

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    return make_series(tmp_path_factory.mktemp("series"), steps=(5, 10, 15))


def _args(series, out):
    return [
        "analyze",
        "--base",
        str(series.base),
        "--checkpoints",
        *map(str, series.checkpoints),
        "--out",
        str(out),
    ]


def test_analyze_cli(series, tmp_path, capsys):
    out = tmp_path / "analysis"
    assert main([*_args(series, out), "--quiet"]) == 0
    assert "mean rank-1 share 1.000" in capsys.readouterr().out
    analysis = json.loads((out / "analysis.json").read_text())
    assert analysis["steps"] == [5, 10, 15] and len(analysis["matrices"]) == 14
    assert sorted(p.name for p in out.glob("*.png")) == ["distributions.png", "singular_values.png"]


def test_analyze_cli_errors_leave_nothing(series, tmp_path, capsys):
    out = tmp_path / "analysis"
    assert main([*_args(series, out), "--steps", "5", "10", "--quiet"]) == 2
    assert "--steps has 2 values for 3" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("checkpoints", "steps", "expected"),
    [
        ([2, 1, 0], ["5", "10", "15"], "--steps 5 10 15 contradict the steps 15 10 5 in the folders' names"),
        ([0, 1, 1], ["5", "10", "15"], "checkpoint-10 is given twice"),
    ],
    ids=["reversed", "twice"],
)
def test_steps_against_the_folder_names_and_a_folder_twice_are_refused(
    series, tmp_path, capsys, checkpoints, steps, expected
):
    """Both used to be accepted: the window then ran backwards (or held one checkpoint twice)."""
    out = tmp_path / "analysis"
    args = ["analyze", "--base", str(series.base), "--checkpoints"]
    args += [str(series.checkpoints[i]) for i in checkpoints]
    assert main([*args, "--out", str(out), "--steps", *steps, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1, err
    assert list(tmp_path.iterdir()) == []
