"""The suite recipe: the shipped recipes load, and anything the harness could not honour is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from alpharl_trainer.cli import main
from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.reproduce import load_suite
from alpharl_trainer.reproduce.runs import FullRun

RECIPES = Path(__file__).resolve().parents[2] / "recipes" / "reproduce"


def test_shipped_recipes_cover_the_issue():
    """Reproduction v3: a climbing headline regime with 8 seeds, a noisy safety case, a confirmation test
    split of problems no development run scored, >= 1000 held-out problems for every choice, the gate's
    margin fixed in advance, 2 hours as two halves side by side."""
    suite = load_suite(RECIPES / "default.yaml")
    assert suite.windows == (0.1, 0.25, 0.4) and suite.budget_minutes <= 120 and suite.threads == 1
    assert {r.task for r in suite.runs} == {"arithmetic", "sort"}
    assert {r.loss for r in suite.runs} == {"grpo", "dapo"}
    assert {r.regime for r in suite.runs} == {"climbing", "noisy"}
    assert suite.regimes["climbing"].mix == "climb"
    headline = [r for r in suite.runs if r.headline]
    assert {(r.task, r.loss, r.regime) for r in headline} == {("sort", "grpo", "climbing")}
    assert len(headline) >= 8
    assert suite.eval.test_problems >= 2000 and suite.eval.heldout_problems >= 1000
    development = load_suite(RECIPES / "development.yaml")
    assert suite.eval.test_seed != 0 and suite.eval.unseen_after >= development.eval.test_problems
    assert suite.methods.margin_se == 2.0 and 0.1 in suite.methods.expo_factors
    # forecast v2: the default chosen on the development seeds is confirmed on seeds it never saw
    development = load_suite(RECIPES / "development.yaml")
    seen = {(r.name) for r in development.runs}
    assert sorted(r.seed for r in development.runs if r.headline) == [0, 1, 2]
    assert not seen & {r.name for r in suite.runs}
    assert development.methods.candidates == ("rank1",)
    assert set(suite.methods.candidates) == {"rank1", "fixed_basis", "expo", "average"}
    quick = load_suite(RECIPES / "quick.yaml")
    assert quick.budget_minutes <= 10 and {r.task for r in quick.runs} == {"arithmetic", "sort"}


def test_steps_saved_cover_every_window_and_fine_tune_budget():
    suite = load_suite(RECIPES / "default.yaml")
    saved = set(suite.save_steps())
    assert {1, suite.steps, *suite.window_steps()} <= saved
    assert {e + suite.finetune_steps for e in suite.finetune_window_steps()} <= saved
    for end in suite.window_steps():
        assert len(suite.trajectory_steps(end)) >= 3 and suite.trajectory_steps(end)[-1] == end


def _recipe(tmp_path: Path, body: str) -> Path:
    base = (RECIPES / "quick.yaml").read_text()
    path = tmp_path / "r.yaml"
    path.write_text(base + body)
    return path


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("bogus: 1\n", "unknown keys"),
        ("windows: [0.5, 0.3]\n", "increasing fractions"),
        ("windows: [0.05, 0.5]\n", "fewer than 3 checkpoints"),
        ("finetune_windows: [0.4]\n", "must be among windows"),
        ("runs: [{task: chess, loss: grpo, regime: paper-like}]\n", "unknown task"),
        ("runs: [{task: sort, loss: a2c, regime: paper-like}]\n", "unknown loss"),
        ("runs: [{task: sort, loss: grpo, regime: calm}]\n", "unknown regime"),
        ("runs: [{task: sort, loss: grpo, regime: paper-like, seeds: [0, 0]}]\n", "duplicate runs"),
    ],
)
def test_bad_recipes_are_refused_naming_the_file(tmp_path, body, message):
    path = _recipe(tmp_path, body)  # later keys override the quick recipe's
    with pytest.raises(AlphaRLError, match=message) as err:
        load_suite(path)
    assert str(path) in str(err.value)


def test_cli_exit_code_2_on_bad_input(tmp_path, capsys):
    assert main(["reproduce", str(tmp_path / "missing.yaml")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["reproduce", str(RECIPES / "quick.yaml"), "--quick"]) == 2


def test_reward_covariate_is_the_mean_since_the_previous_checkpoint(tmp_path):
    run = FullRun(tmp_path, tmp_path, {}, {1: 0.0, 2: 1.0, 3: 0.5, 4: 0.5}, 0.0)
    assert run.reward_covariate([2, 4]) == [0.5, 0.5]
    assert run.reward_covariate([1, 3]) == [0.0, 0.75]
    with pytest.raises(AlphaRLError, match="no training reward"):
        run.reward_covariate([5, 6])


class SuiteRan(Exception):
    pass


@pytest.fixture
def no_suite_run(monkeypatch):
    def run_suite(*_args, **_kwargs):
        raise SuiteRan

    monkeypatch.setattr("alpharl_trainer.reproduce.suite.run_suite", run_suite)


def test_reproduce_out_refuses_a_folder_it_would_delete(tmp_path, capsys, no_suite_run):
    """`--out DIR` used to replace whatever DIR held with the report."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("months of work")
    quick = ["reproduce", "--quick", "--work-dir", str(tmp_path / "work")]
    assert main([*quick, "--out", str(mine)]) == 2
    assert "--overwrite" in capsys.readouterr().err and (mine / "thesis.tex").read_text() == "months of work"
    with pytest.raises(SuiteRan):  # said explicitly: allowed
        main([*quick, "--out", str(mine), "--overwrite"])
    report = tmp_path / "report"
    report.mkdir()
    (report / "results.csv").write_text("run\n")
    (report / "results.md").write_text("# results\n")
    with pytest.raises(SuiteRan):  # an earlier report of the suite is replaced
        main([*quick, "--out", str(report)])
    with pytest.raises(SuiteRan):  # so is an empty folder
        main([*quick, "--out", str(tmp_path / "empty")])


@pytest.mark.parametrize(
    "where", ["the current directory", "a parent of it", "the work dir", "holding the work dir"]
)
def test_reproduce_out_never_replaces_the_working_or_cache_folder(
    where, tmp_path, monkeypatch, capsys, no_suite_run
):
    cwd = tmp_path / "project"
    work = cwd / "cache" / "runs"
    work.mkdir(parents=True)
    (work / "run.json").write_text("{}")
    monkeypatch.chdir(cwd)
    out = {
        "the current directory": Path("."),
        "a parent of it": tmp_path,
        "the work dir": work,
        "holding the work dir": cwd / "cache",
    }[where]
    argv = ["reproduce", "--quick", "--work-dir", str(work), "--out", str(out), "--overwrite"]
    assert main(argv) == 2
    assert "--out" in capsys.readouterr().err and (work / "run.json").is_file()


def test_confirmation_split_holds_no_problem_the_development_runs_scored():
    from alpharl_trainer.reproduce.config import EvalSpec
    from alpharl_trainer.reproduce.evaluation import test_problems
    from alpharl_trainer.tasks import get_task

    task = get_task("sort", mix="climb")
    spec = EvalSpec(test_problems=300, test_seed=1, unseen_after=1000)
    fresh = test_problems(task, spec)
    seen = {p.prompt for p in task.problems("test", 1000, seed=0)}
    assert len(fresh) == 300 and not seen & {p.prompt for p in fresh}
    assert [p.prompt for p in fresh] == [p.prompt for p in test_problems(task, spec)]  # deterministic
    with pytest.raises(AlphaRLError, match="test_seed other than 0"):
        test_problems(task, EvalSpec(test_problems=10, unseen_after=100))
