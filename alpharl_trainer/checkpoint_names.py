"""What a checkpoint folder's name says: its training step (`checkpoint_step`), and whether it is a snapshot
in the Hugging Face hub cache (`hub_repo_folder`), whose revisions may name the step."""

from __future__ import annotations

import os
import re
from pathlib import Path

from alpharl_trainer.errors import AlphaRLError

# checkpoint-N (HF Trainer, TRL), global_step_N (verl), global_stepN_hf (OpenRLHF's saved HF folders),
# DAPO-step-N, step_N, step-N.
_STEP_PATTERN = re.compile(r"(?:checkpoint|step)[-_]?(\d+)(?:[-_]hf)?$", re.IGNORECASE)


def hub_repo_folder(folder: Path) -> Path | None:
    """The repository folder (`models--org--name`) of a Hugging Face hub cache snapshot
    (`models--org--name/snapshots/<revision>`), or None when `folder` is not one."""
    folder = folder.resolve()
    repo = folder.parent.parent
    if folder.parent.name == "snapshots" and repo.name.startswith("models--"):
        return repo
    return None


def _revision_names(folder: Path) -> list[str]:
    """For a hub cache snapshot, the names of the revisions (branches, tags) that point at it: a run that
    pushes one revision per step (open-r1's `...-step-000000100` branches) names its steps there."""
    repo = hub_repo_folder(folder)
    if repo is None or not (repo / "refs").is_dir():
        return []
    commit = folder.resolve().name
    refs = [ref for ref in sorted((repo / "refs").rglob("*")) if ref.is_file()]
    return [str(ref.relative_to(repo / "refs")) for ref in refs if ref.read_text().strip() == commit]


def checkpoint_step(folder: str | os.PathLike) -> int:
    """The training step a checkpoint folder's name encodes.

    The folder's own name is tried first, then its two parents, because verl keeps its FSDP shards in
    `global_step_N/actor` and the HF files in `global_step_N/actor/huggingface`.
    """
    path = Path(folder).resolve()
    for part in [path.name, path.parent.name, path.parent.parent.name, *_revision_names(path)]:
        match = _STEP_PATTERN.search(part)
        if match:
            return int(match.group(1))
    raise AlphaRLError(
        f"cannot tell the training step of checkpoint {folder} from its name "
        "(expected checkpoint-N, global_step_N, global_stepN_hf, *-step-N or step_N, or a hub revision so "
        "named); pass --steps"
    )
