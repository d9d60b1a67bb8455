"""`report_to: wandb` and `report_to: trackio` as a TRL user sets them (a recipe key or a flag; transformers'
WandbCallback and TrackioCallback), on a real tiny GRPO run with AlphaRL through `alpharl train`: offline,
no dashboard or server started, no host name looked up by the run's Python code; each logger's own reader
finds AlphaRL's metrics at the steps they were logged, with the swap's values, and the run's config.

Each run is a fresh process, as a user's is: wandb closes its offline run at exit (WandbCallback never calls
wandb.finish) and trackio reads TRACKIO_DIR once, when imported. ~20 s each on 2 cores: in the default run
(CI), since nothing else tests these loggers. They come with the `loggers` extra (in `test`).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

from tests.test_offline_default import GUARD
from tests.trainer.harness import MAIN_RECIPE, REPO, main_recipe_overrides

PROJECT, RUN = "alpharl-loggers", "tiny-swap"
LOGGED_AT = {  # the shrunk main job (harness.MAIN_RECIPE_SHRUNK): snapshots at steps 2, 4, 6, the swap at 6
    "train/alpharl/snapshot_time": [2, 4, 6],
    "train/alpharl/rank1_share": [2, 4, 6],
    "train/alpharl/snapshots": [2, 4, 6],
    "train/alpharl/mean_fit_r2": [6],
    "train/alpharl/score/current": [6],
    "train/alpharl/rolled_back": [6],
    "train/alpharl/gate_steps_by_tokens": [6],
}


def wandb_env(tmp_path) -> dict[str, str]:
    """Offline, every wandb directory in tmp_path (nothing in ~/.config or ~/.cache), no error reports."""
    dirs = {name: tmp_path / "wandb" / name for name in ("DIR", "CONFIG_DIR", "CACHE_DIR", "DATA_DIR")}
    for path in dirs.values():
        path.mkdir(parents=True)
    env = {f"WANDB_{name}": str(path) for name, path in dirs.items()}
    return env | {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_ERROR_REPORTING": "false"}


def read_wandb(tmp_path, env) -> tuple[list[dict], dict]:
    """The offline run's history rows and config, from its .wandb log (wandb's own reader: `wandb leet
    inspect --json` prints one record a line)."""
    (run_dir,) = (tmp_path / "wandb" / "DIR" / "wandb").glob("offline-run-*")
    command = [sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(run_dir)]
    out = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=True).stdout
    records = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    (run,) = [r["run"] for r in records if r["type"] == "run"]
    assert (run["project"], run["display_name"]) == (PROJECT, RUN)
    config = dict(run["config"]["update"])
    for update in (r["config"]["update"] for r in records if r["type"] == "config"):
        config.update(update)
    (exit_record,) = [r["exit"] for r in records if r["type"] == "exit"]
    assert exit_record.get("exit_code", 0) == 0  # the run was closed (at the process's exit)
    return [r["history"]["item"] for r in records if r["type"] == "history"], config


TRACKIO_READ = """
import json, sys
from trackio.sqlite_storage import SQLiteStorage
project, run = sys.argv[1:]
runs, rows = SQLiteStorage.get_runs(project), SQLiteStorage.get_logs(project, run)
config = SQLiteStorage.get_run_config(project, run)
print(json.dumps({"runs": runs, "rows": rows, "config": config}, default=str))
"""


def trackio_env(tmp_path) -> dict[str, str]:
    """The local SQLite store in tmp_path; no Space, server or bucket (those would leave the machine)."""
    return {"TRACKIO_DIR": str(tmp_path / "trackio")}


def read_trackio(tmp_path, env) -> tuple[list[dict], dict]:
    """The run's rows and config, read back by trackio's own storage (SQLiteStorage, in TRACKIO_DIR)."""
    assert (tmp_path / "trackio" / f"{PROJECT}.db").is_file()
    command = [sys.executable, "-c", TRACKIO_READ, PROJECT, RUN]
    out = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=True).stdout
    logged = json.loads(out.splitlines()[-1])
    assert logged["runs"] == [RUN]
    return logged["rows"], logged["config"]


LOGGERS = {"wandb": (wandb_env, read_wandb), "trackio": (trackio_env, read_trackio)}


@pytest.mark.parametrize("logger", sorted(LOGGERS))
def test_tiny_run_logs_alpharl_metrics_offline(tmp_path, logger):
    pytest.importorskip(logger)
    make_env, read = LOGGERS[logger]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "TRACKIO_"))}
    env |= {"HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "OMP_NUM_THREADS": "1"}
    env |= make_env(tmp_path)
    out = tmp_path / "run"
    args = ["train", str(MAIN_RECIPE), *main_recipe_overrides(out), "--report_to", logger]
    args += ["--project", PROJECT, "--run_name", RUN]  # project: trackio's; wandb's is WANDB_PROJECT
    env["WANDB_PROJECT"] = PROJECT
    proc = subprocess.run(
        [sys.executable, "-c", GUARD, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "LOOKUPS []" in proc.stdout, proc.stdout[-2000:]

    rows, config = read(tmp_path, env)
    steps = {name: [row["train/global_step"] for row in rows if _logged(row, name)] for name in LOGGED_AT}
    assert steps == LOGGED_AT  # each metric once per step it was logged at, on train/global_step
    swap = json.loads((out / "alpharl" / "summary.json").read_text())["swap"]
    (logged,) = [row for row in rows if _logged(row, "train/alpharl/mean_fit_r2")]
    assert logged["train/alpharl/mean_fit_r2"] == pytest.approx(swap["mean_fit_r2"])
    labels = {k.removeprefix("train/alpharl/score/") for k in logged if k.startswith("train/alpharl/score/")}
    assert labels == set(swap["scores"])  # every candidate's held-out score, and the current weights'
    assert logged["train/alpharl/candidates"] == len(swap["scores"]) - 1
    assert config["alpharl"] is True and config["alpharl_window_end"] == 6  # AlphaRL's settings in the config
    assert config["run_name"] == RUN and config["report_to"] == [logger]


def _logged(row: dict, name: str) -> bool:
    value = row.get(name)
    return isinstance(value, int | float) and not (isinstance(value, float) and math.isnan(value))
