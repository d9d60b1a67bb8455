"""The recipe's one home: one reader's rules, the import direction, every recipe's keys and comments."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from alpharl_trainer import plan, recipe
from alpharl_trainer.errors import AlphaRLError

REPO = Path(__file__).resolve().parents[1]
TRAIN_RECIPES = sorted((REPO / "recipes").glob("[!r]*/*.yaml"))  # tiny/ and paper/ (reproduce/ is a suite)
BANNER = re.compile(r"^# -{3,}")


def _write(tmp_path, text: str) -> str:
    path = tmp_path / "r.yaml"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    ("text", "extra", "message"),
    [
        ("learning_rat: 1.0e-5\n", [], r"unknown field 'learning_rat' \(did you mean 'learning_rate'\?\)"),
        ("trainer: grop\n", [], r"unknown trainer 'grop' \(did you mean 'grpo'\?\)"),
        (
            "max_steps: 3\n",
            ["--alpharl_windw_end", "2"],
            r"unknown flag 'alpharl_windw_end' .*'alpharl_window_end'",
        ),
        ("- a list\n", [], "must be a YAML mapping"),
        ("max_steps: [1\n", [], "is not valid YAML"),
        ("env: [A, B]\n", [], "`env` must be a mapping"),
    ],
    ids=["field", "trainer", "flag", "not-a-mapping", "yaml", "env"],
)
def test_the_reader_names_what_is_wrong_the_same_way_for_train_and_dry_run(tmp_path, text, extra, message):
    argv = ["--config", _write(tmp_path, text), *extra]
    for read in (recipe.resolve, recipe.parse, plan.resolve_recipe):
        with pytest.raises(AlphaRLError, match=message):
            read(argv)
    with pytest.raises(AlphaRLError, match="does not exist"):
        recipe.resolve(["--config", str(tmp_path / "missing.yaml")])


def test_env_is_set_by_parse_and_overrides_win(tmp_path, monkeypatch):
    monkeypatch.delenv("ALPHARL_TEST_ENV", raising=False)
    argv = [
        "--config",
        _write(tmp_path, "env: {ALPHARL_TEST_ENV: 7}\nmax_steps: 5\nuse_cpu: true\nalpharl: false\n"),
    ]
    resolved = recipe.resolve(argv, learning_rate=2e-5)
    assert resolved.env == {"ALPHARL_TEST_ENV": "7"} and "ALPHARL_TEST_ENV" not in os.environ
    assert resolved.values["max_steps"] == 5 and resolved.values["learning_rate"] == 2e-5
    script, config = recipe.parse([*argv, "--max_steps", "6"])
    assert os.environ["ALPHARL_TEST_ENV"] == "7" and config.max_steps == 6 and script.trainer == "grpo"
    with pytest.raises(AlphaRLError, match="unknown field 'max_stepz'"):
        recipe.resolve(argv, max_stepz=3)


def test_recipe_and_plan_never_import_train_and_every_module_imports_alone():
    """`plan` imported `train` (which imported `plan`): an import circle hidden inside functions."""
    modules = sorted(
        ".".join(p.relative_to(REPO).with_suffix("").parts)
        for p in (REPO / "alpharl_trainer").rglob("*.py")
        if p.name != "__main__.py"
    )
    code = (
        "import importlib, sys\n"
        "import alpharl_trainer.recipe, alpharl_trainer.plan\n"
        "assert 'alpharl_trainer.train' not in sys.modules, 'recipe/plan imported train'\n"
        f"for name in {modules!r}:\n"
        "    for loaded in [m for m in sys.modules if m.startswith('alpharl_trainer')]:\n"
        "        del sys.modules[loaded]  # each module alone: none of ours imported before it\n"
        "    importlib.import_module(name)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.parametrize("path", TRAIN_RECIPES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_key_of_every_recipe_is_a_field_and_is_commented(path):
    """litgpt's rule: a recipe explains itself. A key is commented on its own line, or belongs to a group
    of lines under a comment (section banners `# ----` do not count)."""
    keys = yaml.safe_load(path.read_text())
    trainer = keys.get("trainer", "grpo")
    resolved = recipe.resolve(["--config", str(path)])  # unknown keys are refused here
    assert set(keys) - {"env"} <= set(resolved.values) and resolved.trainer == trainer
    uncommented, under_comment = [], False
    for line in path.read_text().splitlines():
        if not line.strip():
            under_comment = False
        elif line.startswith("#"):
            under_comment = not BANNER.match(line)
        elif re.match(r"^[A-Za-z_]\w*:", line) and "#" not in line and not under_comment:
            uncommented.append(line.split(":")[0])
    assert not uncommented, f"{path.name}: keys without a comment: {uncommented}"


def test_a_reward_named_by_dotted_path_is_imported_and_a_bad_one_refused():
    from tests.custom_rewards import short_answer_reward

    rewards = ["--rewards", "task", "tests.custom_rewards.short_answer_reward"]
    script, config = recipe.parse(["--config", "recipes/tiny/grpo.yaml", *rewards])
    funcs = recipe.build_rewards(script, recipe.build_data(script)[2], config, None)
    assert funcs[1] is short_answer_reward and funcs[1](["12345", "123456789"]) == [1.0, 0.0]
    for name, message in [
        ("tests.custom_rewards.absent", "nor an importable function"),
        ("no_such_module.reward", "No module named 'no_such_module'"),
        ("tests.custom_rewards.NOT_A_FUNCTION", "is not callable"),
        ("tsk", "did you mean 'task'"),
    ]:
        with pytest.raises(AlphaRLError, match=message):
            recipe.reward_function(name)
