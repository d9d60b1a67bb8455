"""Where a run resumes: the newest checkpoint a save finished, never a finished run (requeue-safe).

A Slurm job that is preempted or hits its time limit is requeued and starts the same command again; with
`auto_resume` (the default) that command continues from the last complete `checkpoint-N` in `output_dir`.
"""

from __future__ import annotations

import json
from pathlib import Path

from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.recipe import ScriptArguments
from alpharl_trainer.trainer.state import state_problem


def last_complete_checkpoint(output_dir: str, alpharl: bool) -> str | None:
    """The newest `checkpoint-N` that a save finished, skipping (and saying so) any a kill interrupted.

    transformers writes `trainer_state.json` after the weights, optimizer and RNG state, and AlphaRL writes
    `alpharl/state.json` after that (on_save): a folder without them, or with one cut short (a machine lost
    mid-save), is a partial save, and resuming from it fails the same way on every requeue."""
    folders = [p for p in Path(output_dir).glob("checkpoint-*") if p.name.split("-")[-1].isdigit()]
    for folder in sorted(folders, key=lambda p: int(p.name.split("-")[-1]), reverse=True):
        problem = _interrupted(folder, alpharl)
        if problem is None:
            return str(folder)
        print(f"skipping {folder}: an interrupted save ({problem})", flush=True)
    return None


def _interrupted(folder: Path, alpharl: bool) -> str | None:
    """What shows that the save of `folder` did not finish, or None."""
    needed = ("trainer_state.json", "alpharl/state.json") if alpharl else ("trainer_state.json",)
    missing = [name for name in needed if not (folder / name).is_file()]
    if missing:
        return f"no {missing[0]}"
    try:
        json.loads((folder / "trainer_state.json").read_text())
    except (OSError, ValueError) as err:
        return f"{folder}/trainer_state.json is truncated or not JSON ({err})"
    return state_problem(folder) if alpharl else None


def resume_point(script: ScriptArguments, config) -> str | None:
    """The checkpoint to resume from, saying why; a finished run in output_dir is an error, not a resume."""
    if config.resume_from_checkpoint is not None or not script.auto_resume:
        return config.resume_from_checkpoint
    summary = Path(config.output_dir) / "alpharl" / "summary.json"
    if summary.is_file():
        raise AlphaRLError(
            f"{config.output_dir} holds a finished run ({summary}); remove it or set another output_dir "
            "(`make run` starts a fresh main job each time)"
        )
    last = last_complete_checkpoint(config.output_dir, bool(getattr(config, "alpharl", False)))
    if last:
        print(
            f"resuming from {last}: {config.output_dir} holds an unfinished run (auto_resume; remove the "
            "folder to start over)",
            flush=True,
        )
    return last
