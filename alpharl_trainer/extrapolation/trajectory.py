"""The compact record of a run: per matrix and snapshot step, the top singular triplet of `W_t - W_0`.

Only `(s, u, v, ||dW||_F)` per step is kept (plus the residual, for reports): `K (m + n)` numbers
per matrix instead of the `K m n` of the checkpoints, so a whole window stays in memory and is saved
beside every checkpoint (a resumed run continues its window). Per-step scalar covariates (e.g. the
measured reward) are kept aligned with the steps for the paper's reward-indexed fit.

Sign alignment happens on append, forward in time, against earlier steps only: the reference scripts
aligned backwards from the last checkpoint on disk, which lets checkpoints after the window leak in.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from alpharl_trainer.atomic import atomic_dir
from alpharl_trainer.checkpoints import save_safetensors
from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.extrapolation.rank1 import Rank1

FORMAT = "alpharl-trajectory"
VERSION = 1
TENSORS_FILE = "trajectory.safetensors"
META_FILE = "trajectory.json"
_SCALARS = ("s", "fro", "residual")  # per step
_VECTORS = ("u", "v")


class Trajectory:
    """Rank-1 factors of every tracked matrix at every snapshot step (all on CPU, float32)."""

    def __init__(self) -> None:
        self.steps: list[int] = []
        self.names: list[str] = []
        self.covariates: dict[str, list[float]] = {}
        """covariate name -> one value per step, e.g. {'reward': [0.41, 0.47, 0.52]}."""
        # per name: field -> one entry per step (a float, or an (m,) / (n,) tensor); appends are O(m + n)
        self._rows: dict[str, dict[str, list]] = {}
        self._shapes: dict[str, tuple[int, int]] = {}
        self._ref_u: dict[str, torch.Tensor] = {}  # last nonzero aligned u: the sign reference

    def __len__(self) -> int:
        return len(self.steps)

    def append(
        self, step: int, factors: Mapping[str, Rank1], covariates: Mapping[str, float] | None = None
    ) -> None:
        """Add one snapshot step: a `Rank1` for every tracked matrix (the same names and shapes every step).

        Each `(u, v)` pair is flipped as a whole when `u` points against the matrix's previous `u`.
        """
        step, covariates = int(step), dict(covariates or {})
        if self.steps and step <= self.steps[-1]:
            kind = "duplicate" if step in self.steps else "non-monotonic"
            raise AlphaRLError(f"{kind} snapshot step {step}: the last recorded step is {self.steps[-1]}")
        if self.steps and sorted(factors) != sorted(self.names):
            missing, extra = sorted(set(self.names) - set(factors)), sorted(set(factors) - set(self.names))
            raise AlphaRLError(f"step {step}: tracked matrices changed (missing {missing}, new {extra})")
        if self.steps and sorted(covariates) != sorted(self.covariates):
            raise AlphaRLError(
                f"step {step}: covariates {sorted(covariates)}, earlier steps had {sorted(self.covariates)}"
            )
        bad = {k: x for k, x in covariates.items() if not math.isfinite(float(x))}
        if bad:
            raise AlphaRLError(f"step {step}: covariates must be finite, got {bad}")
        rows = {}
        for name, r in factors.items():
            shape = (r.u.numel(), r.v.numel())
            if self._shapes.get(name, shape) != shape:
                raise AlphaRLError(
                    f"{name}: factors of shape {shape} at step {step}, {self._shapes[name]} before"
                )
            if not all(math.isfinite(x) for x in (r.s, r.fro)):
                raise AlphaRLError(f"{name}: non-finite singular value or norm at step {step}")
            rows[name] = (shape, *self._aligned(name, r))
        # validated: now mutate
        if not self.steps:
            self.names = list(factors)
            self.covariates = {k: [] for k in covariates}
        self.steps.append(step)
        for k, x in covariates.items():
            self.covariates[k].append(float(x))
        for name, (shape, u, v) in rows.items():
            r = factors[name]
            self._shapes[name] = shape
            row = self._rows.setdefault(name, {f: [] for f in _SCALARS + _VECTORS})
            for f, x in zip(_SCALARS, (r.s, r.fro, r.residual), strict=True):
                row[f].append(float(x))
            row["u"].append(u)
            row["v"].append(v)
            if r.s > 0:
                self._ref_u[name] = u

    def _aligned(self, name: str, r: Rank1) -> tuple[torch.Tensor, torch.Tensor]:
        u, v = r.u.detach().float().cpu().reshape(-1), r.v.detach().float().cpu().reshape(-1)
        ref = self._ref_u.get(name)
        if ref is not None and float(u @ ref) < 0:
            return -u, -v
        return u, v

    def _row(self, name: str) -> dict[str, list]:
        if name not in self._rows:
            raise AlphaRLError(f"{name}: no trajectory recorded for this matrix")
        return self._rows[name]

    def _field(self, name: str, f: str) -> torch.Tensor:
        values = self._row(name)[f]
        if f in _VECTORS:
            return torch.stack(values)
        return torch.tensor(values, dtype=torch.float32)

    def shape(self, name: str) -> tuple[int, int]:
        """(m, n) of the matrix (a tracked vector is (m, 1))."""
        self._row(name)
        return self._shapes[name]

    def state(self, name: str) -> torch.Tensor:
        """(K, m) the rank-1 state `a_t = s_t u_t` (aligned) that the forecast extrapolates."""
        return self._field(name, "s")[:, None] * self._field(name, "u")

    def directions(self, name: str) -> torch.Tensor:
        """(K, n) aligned `v_t`."""
        return self._field(name, "v")

    def singular_values(self, name: str) -> torch.Tensor:
        """(K,) top singular values `s_t`."""
        return self._field(name, "s")

    def fro(self, name: str) -> torch.Tensor:
        """(K,) `||dW_t||_F`."""
        return self._field(name, "fro")

    def residuals(self, name: str) -> torch.Tensor:
        """(K,) `||dW v - s u||` of each snapshot's triplet."""
        return self._field(name, "residual")

    def last_v(self, name: str) -> torch.Tensor:
        """The warm start for the next snapshot of `name`: its latest nonzero `v` (zeros if there is none)."""
        row = self._row(name)
        return next(
            (v for s, v in zip(reversed(row["s"]), reversed(row["v"]), strict=True) if s > 0), row["v"][-1]
        )

    def window(self, last_step: int) -> Trajectory:
        """The prefix with steps <= `last_step`: the fitting window of a forecast made at `last_step`."""
        k = sum(1 for t in self.steps if t <= last_step)
        if k == 0:
            raise AlphaRLError(f"no snapshot at or before step {last_step} (first is {self.steps[:1]})")
        out = Trajectory()
        out.steps, out.names = self.steps[:k], list(self.names)
        out.covariates = {c: xs[:k] for c, xs in self.covariates.items()}
        out._rows = {n: {f: xs[:k] for f, xs in row.items()} for n, row in self._rows.items()}
        out._shapes = dict(self._shapes)
        out._ref_u = {n: u for n in self.names if (u := _last_nonzero(out._rows[n])) is not None}
        return out

    def nbytes(self) -> int:
        """Bytes of the stored numbers (what `save` writes, without the small headers)."""
        return sum(4 * len(self) * (m + n + len(_SCALARS)) for m, n in self._shapes.values())

    def save(self, path: str | os.PathLike) -> None:
        """Write folder `path` (trajectory.safetensors + trajectory.json) atomically: built in a temp folder
        beside it, then renamed into place (an existing one is replaced only once the new one is complete).
        """
        path = Path(path)
        tensors = {}
        for i, name in enumerate(self.names):
            for f in _SCALARS + _VECTORS:
                tensors[f"{i}.{f}"] = self._field(name, f).contiguous()
        meta = {
            "format": FORMAT,
            "version": VERSION,
            "steps": self.steps,
            "names": self.names,
            "shapes": {n: list(self._shapes[n]) for n in self.names},
            "covariates": self.covariates,
        }
        with atomic_dir(path) as tmp:
            save_safetensors(tensors, tmp / TENSORS_FILE)
            (tmp / META_FILE).write_text(json.dumps(meta) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> Trajectory:
        """Read a folder written by `save`; a missing, corrupt or inconsistent one raises AlphaRLError."""
        path = Path(path)
        meta_file, tensors_file = path / META_FILE, path / TENSORS_FILE
        try:
            meta = json.loads(meta_file.read_text())
            tensors = load_file(tensors_file)
        except FileNotFoundError as err:
            raise AlphaRLError(f"{err.filename}: trajectory file not found") from err
        except (OSError, ValueError, RecursionError, SafetensorError) as err:  # RecursionError: JSON too deep
            raise AlphaRLError(f"{path}: unreadable trajectory ({err})") from err
        if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("version") != VERSION:
            raise AlphaRLError(f"{meta_file}: not an {FORMAT} v{VERSION} file")
        traj = cls()
        try:
            traj.steps = [int(t) for t in meta["steps"]]
            traj.names = list(meta["names"])
            traj.covariates = {c: [float(x) for x in xs] for c, xs in meta["covariates"].items()}
            k = len(traj.steps)
            for i, name in enumerate(traj.names):
                m, n = (int(x) for x in meta["shapes"][name])
                row = {f: tensors[f"{i}.{f}"] for f in _SCALARS + _VECTORS}
                expected = {"u": (k, m), "v": (k, n)}
                for f, t in row.items():
                    if tuple(t.shape) != expected.get(f, (k,)):
                        raise ValueError(
                            f"{name}.{f} has shape {tuple(t.shape)}, expected {expected.get(f, (k,))}"
                        )
                traj._shapes[name] = (m, n)
                traj._rows[name] = {
                    f: list(t.unbind(0)) if f in _VECTORS else t.tolist() for f, t in row.items()
                }
                if (u := _last_nonzero(traj._rows[name])) is not None:
                    traj._ref_u[name] = u
            if any(len(xs) != k for xs in traj.covariates.values()):
                raise ValueError("a covariate does not have one value per step")
        except (KeyError, TypeError, ValueError) as err:
            raise AlphaRLError(f"{path}: inconsistent trajectory ({err})") from err
        return traj


def _last_nonzero(row: dict[str, list]) -> torch.Tensor | None:
    return next((u for s, u in zip(reversed(row["s"]), reversed(row["u"]), strict=True) if s > 0), None)
