"""What AlphaRL keeps on disk, so a killed or requeued run continues its window exactly.

    output_dir/alpharl/base/rankRRRRR-of-WWWWW.safetensors   W_0 of the matrices each rank owns (once)
    output_dir/alpharl/base-SSSSSS/...                      W_0 of the window after the jump at step S
    output_dir/alpharl/window/step-SSSSSS/rankR...safetensors W_t at each snapshot (portfolio families only)
    output_dir/checkpoint-N/alpharl/state.json              per-step rewards, the swap record, tracked
                                                            names, the number of processes W (`world`)
    output_dir/checkpoint-N/alpharl/trajectory/             the rank-1 trajectory so far

Each is written atomically (`alpharl_trainer.atomic`). Only the shares of the W processes a checkpoint
records are read: files an earlier attempt with another number of processes left hold other weights.
Reading checks that what was saved is what the run needs (every owned matrix's W_0, the trajectory of every
snapshot taken), because a silent gap would change the forecast without a word.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open

from alpharl_trainer.atomic import atomic_dir, atomic_file
from alpharl_trainer.checkpoints import save_safetensors
from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.extrapolation import Trajectory

STATE_DIR = "alpharl"
"""Sub-folder of the output dir (base weights) and of each checkpoint (trajectory + state)."""


def base_dir(output_dir: str | Path, start: int = 0) -> Path:
    """W_0 of the window starting at step `start` (0: the run's start; else the jump at that step)."""
    return Path(output_dir) / STATE_DIR / ("base" if start == 0 else f"base-{start:06d}")


def save_base(
    output_dir: str | Path, rank: int, world: int, tensors: dict[str, torch.Tensor], start: int = 0
) -> None:
    """This rank's share of W_0 of the window starting at `start`."""
    folder = base_dir(output_dir, start)
    with atomic_file(folder / f"rank{rank:05d}-of-{world:05d}.safetensors") as tmp:
        save_safetensors({n: t.contiguous() for n, t in tensors.items()}, tmp)


def _shares(folder: Path, world: int) -> list[Path]:
    """The shares a run of `world` processes wrote in `folder` (never those of an earlier attempt with
    another number of processes, which hold other weights)."""
    return sorted(folder.glob(f"rank*-of-{world:05d}.safetensors")) if folder.is_dir() else []


def load_base(
    output_dir: str | Path, step: int, keys: list[str], start: int = 0, world: int = 1
) -> dict[str, torch.Tensor]:
    """The W_0 tensors named `keys` of the window starting at `start`, from the shares of the `world`
    processes that saved them."""
    folder = base_dir(output_dir, start)
    files = _shares(folder, world)
    if not files:
        raise AlphaRLError(
            f"resuming at step {step}, but the AlphaRL base weights are missing in {folder} "
            f"(shares of {world} processes)"
        )
    wanted, base = set(keys), {}
    for path in files:
        with safe_open(str(path), framework="pt") as f:
            for key in f.keys():  # noqa: SIM118 (safe_open is not a dict)
                if key in wanted:
                    base[key] = f.get_tensor(key)
    missing = [key for key in keys if key not in base]
    if missing:
        raise AlphaRLError(f"AlphaRL base weights in {folder} lack {missing[:3]} (tracked set changed?)")
    return base


def saved_world(meta: dict, output_dir: str | Path, start: int) -> int:
    """The number of processes that wrote a checkpoint's W_0 and snapshot shares: recorded in its state
    (a checkpoint older than that record: the one number found among the W_0 shares)."""
    if "world" in meta:
        return int(meta["world"])
    folder = base_dir(output_dir, start)
    worlds = sorted({_world_of(p) for p in folder.glob("rank*-of-*.safetensors")})
    if len(worlds) > 1:
        raise AlphaRLError(
            f"{folder} holds W_0 shares of {worlds} processes and the checkpoint does not say which are its "
            "own: remove the files of the other attempts"
        )
    return worlds[0] if worlds else 1


def _world_of(share: Path) -> int:
    return int(share.name.removesuffix(".safetensors").rsplit("-of-", 1)[1])


def leftovers(output_dir: str | Path, worlds: set[int]) -> list[Path]:
    """Shares in `output_dir/alpharl/` written by a number of processes not in `worlds`: an earlier attempt's,
    which this run never reads."""
    shares = (Path(output_dir) / STATE_DIR).glob("*/**/rank*-of-*.safetensors")
    return sorted(p for p in shares if _world_of(p) not in worlds)


def window_dir(output_dir: str | Path) -> Path:
    return Path(output_dir) / STATE_DIR / "window"


def save_window(output_dir: str | Path, step: int, rank: int, world: int, tensors: dict[str, torch.Tensor]):
    """This rank's share of the tracked weights at the snapshot of `step` (read back by `WindowStore`)."""
    folder = window_dir(output_dir) / f"step-{step:06d}"
    with atomic_file(folder / f"rank{rank:05d}-of-{world:05d}.safetensors") as tmp:
        save_safetensors({n: t.contiguous() for n, t in tensors.items()}, tmp)


class WindowStore:
    """The tracked weights saved at each snapshot (`save_window`) by a run of `world` processes, one matrix
    at a time."""

    def __init__(self, output_dir: str | Path, world: int):
        self.folder, self.world = window_dir(output_dir), world
        self._where: dict[int, dict[str, Path]] = {}

    def read(self, step: int, name: str) -> torch.Tensor:
        if step not in self._where:
            where = {}
            for path in _shares(self.folder / f"step-{step:06d}", self.world):
                with safe_open(str(path), framework="pt") as f:
                    where.update({key: path for key in f.keys()})  # noqa: SIM118 (not a dict)
            self._where[step] = where
        path = self._where[step].get(name)
        if path is None:
            raise AlphaRLError(
                f"the weights of {name} at the snapshot of step {step} are missing in {self.folder}"
            )
        with safe_open(str(path), framework="pt") as f:
            return f.get_tensor(name)


def save_state(checkpoint: str | Path, trajectory: Trajectory, meta: dict) -> None:
    """The trajectory and `meta` (JSON) into `checkpoint/alpharl/`, replaced whole."""
    with atomic_dir(Path(checkpoint) / STATE_DIR) as tmp:
        if len(trajectory):
            trajectory.save(tmp / "trajectory")
        (tmp / "state.json").write_text(json.dumps(meta, indent=1))


STATE_KEYS = ("step_rewards", "swap", "names")
"""What every saved state.json holds (later keys, such as "swaps", have defaults for older checkpoints)."""


def _read_meta(checkpoint: str | Path) -> dict:
    """The callback's state (JSON) saved with `checkpoint`; a missing, cut-short or incomplete one is an
    AlphaRLError naming the file."""
    path = Path(checkpoint) / STATE_DIR / "state.json"
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise AlphaRLError(f"{path} is missing") from None
    except (OSError, ValueError) as err:
        raise AlphaRLError(f"{path} is truncated or not JSON ({err})") from None
    missing = [key for key in STATE_KEYS if key not in meta] if isinstance(meta, dict) else list(STATE_KEYS)
    if missing:
        raise AlphaRLError(f"{path} is incomplete (no {missing[0]!r})")
    return meta


def state_problem(checkpoint: str | Path) -> str | None:
    """Why the AlphaRL state saved with `checkpoint` cannot be resumed from (a machine lost mid-save can leave
    it cut short), or None. Checked when choosing the checkpoint, so a requeue falls back to an earlier one
    instead of failing on this one every time."""
    trajectory = Path(checkpoint) / STATE_DIR / "trajectory"
    try:
        _read_meta(checkpoint)
        if trajectory.exists():
            Trajectory.load(trajectory)
    except AlphaRLError as err:
        return str(err)
    return None


def load_meta(checkpoint: str | Path, step: int) -> dict:
    """The callback's state (JSON) saved with `checkpoint`, the one a run resuming at `step` continues."""
    try:
        return _read_meta(checkpoint)
    except AlphaRLError as err:
        raise AlphaRLError(f"resuming at step {step}, but {err}") from None


def load_state(checkpoint: str | Path, step: int, taken: list[int]) -> tuple[dict, Trajectory]:
    """(meta, trajectory) saved with `checkpoint`, whose window has taken snapshots at steps `taken`."""
    folder = Path(checkpoint) / STATE_DIR
    meta = load_meta(checkpoint, step)
    if not taken:
        return meta, Trajectory()
    if not (folder / "trajectory").exists():  # started over, it would forecast from later snapshots alone
        raise AlphaRLError(
            f"resuming at step {step}, but {folder}/trajectory is missing (snapshots at {taken})"
        )
    trajectory = Trajectory.load(folder / "trajectory")
    if trajectory.steps != taken:
        raise AlphaRLError(
            f"{folder}/trajectory holds snapshots at steps {trajectory.steps}, expected {taken} "
            "(alpharl_interval or the window changed since the run started?)"
        )
    return meta, trajectory
