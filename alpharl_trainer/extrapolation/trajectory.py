"""The compact record of a run: per matrix, the top singular triplet of `W_t - W_0` at each snapshot step.

Only `(step, s, u, v, ||dW||_F)` is kept: `K (m + n)` numbers per matrix instead of the `K m n` of the
checkpoints themselves, so a whole window fits in memory and is saved beside every checkpoint (a resumed
run continues its window). Per-step scalar covariates (e.g. the measured reward) live beside it for the
paper's reward-indexed fit.

Sign alignment happens on append, forward in time: the reference scripts aligned backwards from the last
checkpoint on disk, which uses checkpoints after the window.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field, fields
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.extrapolation.rank1 import DEFAULT_TOL, Rank1, top_singular

FORMAT = "alpharl-trajectory/1"
_SEP = "::"  # between a matrix name and a field in the saved file; never occurs in parameter names
STEP = "step"
"""The covariate that needs no measurement: the snapshot step itself."""


@dataclass
class Trajectory:
    """One matrix's snapshots, stacked along dim 0 (K = number of snapshots), all on CPU in float32."""

    steps: torch.Tensor
    """(K,) int64, strictly increasing."""
    s: torch.Tensor
    """(K,) top singular value of `dW_t`."""
    u: torch.Tensor
    """(K, m) left singular vectors, sign-aligned."""
    v: torch.Tensor
    """(K, n) right singular vectors, flipped together with `u`."""
    fro: torch.Tensor
    """(K,) `||dW_t||_F`."""
    residual: torch.Tensor
    """(K,) relative residual of each triplet (see `Rank1.residual`)."""

    @classmethod
    def empty(cls, m: int, n: int) -> Trajectory:
        z = torch.zeros(0)
        return cls(torch.zeros(0, dtype=torch.int64), z, torch.zeros(0, m), torch.zeros(0, n), z, z)

    def __len__(self) -> int:
        return len(self.steps)

    @property
    def shape(self) -> tuple[int, int]:
        return self.u.shape[1], self.v.shape[1]

    @property
    def a(self) -> torch.Tensor:
        """(K, m) the rank-1 state `a_t = s_t u_t` that the forecast extrapolates."""
        return self.s[:, None] * self.u

    @property
    def share(self) -> torch.Tensor:
        """(K,) rank-1 share of the update norm, `s / ||dW||_F` (0 where the update is zero)."""
        return torch.where(self.fro > 0, self.s / self.fro.clamp_min(1e-30), 0.0)

    def append(self, step: int, r: Rank1) -> None:
        """Add a snapshot, flipping `(u, v)` together when `u` points against the previous `u`."""
        if len(self) and step <= int(self.steps[-1]):
            raise AlphaRLError(
                f"snapshot step {step} is not after the last recorded step {int(self.steps[-1])}"
            )
        if r.u.shape[0] != self.shape[0] or r.v.shape[0] != self.shape[1]:
            raise AlphaRLError(
                f"snapshot of shape {(r.u.shape[0], r.v.shape[0])} for a {self.shape} trajectory"
            )
        u, v = r.u.detach().float().cpu(), r.v.detach().float().cpu()
        if len(self) and float(u @ self.u[-1]) < 0:
            u, v = -u, -v
        self.steps = torch.cat([self.steps, torch.tensor([step])])
        self.s = torch.cat([self.s, torch.tensor([r.s])])
        self.u = torch.cat([self.u, u[None]])
        self.v = torch.cat([self.v, v[None]])
        self.fro = torch.cat([self.fro, torch.tensor([r.fro])])
        self.residual = torch.cat([self.residual, torch.tensor([r.residual])])

    def tail(self, k: int | None) -> Trajectory:
        """The last `k` snapshots (all when `k` is None): a fitting window that ends at the latest step."""
        if k is None:
            return self
        return Trajectory(*(getattr(self, f.name)[-k:] for f in fields(self)))


@dataclass
class TrajectoryStore:
    """Trajectories of all tracked matrices of one run, plus per-step covariates."""

    matrices: dict[str, Trajectory] = field(default_factory=dict)
    covariates: dict[str, dict[int, float]] = field(default_factory=dict)
    """covariate name -> {step: value}, e.g. {'reward': {100: 0.41, 200: 0.47}}."""

    def record(
        self, name: str, step: int, base: torch.Tensor, current: torch.Tensor, *, tol: float = DEFAULT_TOL
    ) -> Rank1:
        """Snapshot matrix `name` at `step`: the top triplet of `current - base`, warm-started from the
        matrix's previous `v`. Computed on the tensors' device; only the factors are kept (on CPU)."""
        if base.shape != current.shape or base.ndim != 2:
            raise AlphaRLError(
                f"{name}: base {tuple(base.shape)} and current {tuple(current.shape)} are not one matrix"
            )
        traj = self.matrices.get(name)
        if traj is None:
            traj = self.matrices[name] = Trajectory.empty(*base.shape)
        warm = traj.v[-1] if len(traj) else None
        r = top_singular(current.float() - base.float(), warm, tol=tol)
        traj.append(step, r)
        return r

    def set_covariate(self, name: str, step: int, value: float) -> None:
        if name == STEP:
            raise AlphaRLError(f"'{STEP}' is built in and cannot be set")
        self.covariates.setdefault(name, {})[int(step)] = float(value)

    def covariate(self, name: str, steps: torch.Tensor) -> torch.Tensor:
        """Values of covariate `name` at `steps`, float64; `'step'` is the steps themselves."""
        if name == STEP:
            return steps.double()
        table = self.covariates.get(name)
        if table is None:
            raise AlphaRLError(f"no covariate '{name}' recorded (have: {sorted(self.covariates) + [STEP]})")
        missing = [int(t) for t in steps if int(t) not in table]
        if missing:
            raise AlphaRLError(f"covariate '{name}' has no value at steps {missing}")
        return torch.tensor([table[int(t)] for t in steps], dtype=torch.float64)

    def save(self, path: str | os.PathLike) -> None:
        """Write one safetensors file atomically (temp file in the same folder, then rename)."""
        path = Path(path)
        tensors = {
            f"{name}{_SEP}{f.name}": getattr(traj, f.name).contiguous()
            for name, traj in self.matrices.items()
            for f in fields(traj)
        }
        meta = {"format": FORMAT, "covariates": json.dumps(self.covariates)}
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        try:
            save_file(tensors, tmp, metadata=meta)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise

    @classmethod
    def load(cls, path: str | os.PathLike) -> TrajectoryStore:
        try:
            with safe_open(path, framework="pt") as fh:
                meta = fh.metadata() or {}
                tensors = {key: fh.get_tensor(key) for key in fh.keys()}
        except (OSError, SafetensorError) as err:
            raise AlphaRLError(f"{path}: not a readable trajectory file ({err})") from err
        if meta.get("format") != FORMAT:
            raise AlphaRLError(f"{path}: not an {FORMAT} file (format={meta.get('format')!r})")
        grouped: dict[str, dict[str, torch.Tensor]] = {}
        for key, tensor in tensors.items():
            name, _, part = key.rpartition(_SEP)
            grouped.setdefault(name, {})[part] = tensor
        try:
            matrices = {name: Trajectory(**parts) for name, parts in grouped.items()}
        except TypeError as err:
            raise AlphaRLError(f"{path}: malformed trajectory entry ({err})") from err
        covariates = {
            k: {int(t): float(x) for t, x in tab.items()} for k, tab in json.loads(meta["covariates"]).items()
        }
        return cls(matrices, covariates)
