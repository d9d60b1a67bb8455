"""SnapshotRecorder: what a window keeps of a running model, for the forecast at its end.

It chooses the tracked matrices, keeps `W_0` (at the run's start or right after a jump) of those this rank
owns, takes a rank-1 snapshot of each `W_t - W_0` at the schedule's snapshot steps (and, for the families
that need them, saves the snapshot's weights), records the mean training reward between snapshots, and
restores all of it when a run resumes from a checkpoint.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch

from alpharl_trainer.distributed import OwnedWeights, assign_owners, full_weight, rank_world, share_factors
from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.extrapolation import Trajectory, top_singular
from alpharl_trainer.trainer.candidates import WINDOW_FAMILIES, families_left_out
from alpharl_trainer.trainer.config import AlphaRLConfig
from alpharl_trainer.trainer.lora import LoraSite, lora_sites, merged_update_rank1
from alpharl_trainer.trainer.schedule import Schedule
from alpharl_trainer.trainer.state import (
    STATE_DIR,
    WindowStore,
    leftovers,
    load_base,
    load_state,
    save_base,
    save_window,
    saved_world,
)

logger = logging.getLogger(__name__)


class SnapshotRecorder:
    """The window's record: tracked names and their owners, `W_0`, the trajectory with its reward covariate,
    and the window store. Built at train start (`start`) for a model and an output folder."""

    def __init__(self, config: AlphaRLConfig, schedule: Schedule, model: torch.nn.Module, output_dir, device):
        self.config, self.schedule, self.model, self.output_dir = config, schedule, model, str(output_dir)
        sites = lora_sites(model)
        select = config.selector()
        params = dict(model.named_parameters())
        shapes = {n: tuple(getattr(p, "ds_shape", p.shape)) for n, p in params.items()}
        self.lora: dict[str, LoraSite] = {n: s for n, s in sites.items() if select(n, shapes[s.base])}
        """Tracked matrices that are LoRA-adapted: extrapolated on their merged update (see lora.py)."""
        frozen_bases = {site.base for site in sites.values()}
        trained = [n for n, p in params.items() if p.requires_grad and n not in frozen_bases]
        self.names: list[str] = sorted([n for n in trained if select(n, shapes[n])] + list(self.lora))
        shapes.update({n: shapes[site.base] for n, site in self.lora.items()})
        if not self.names:
            raise AlphaRLError("no parameter matches the AlphaRL selector: nothing to extrapolate")
        if self.lora and config.alpharl_mode == "rank1_only":
            raise AlphaRLError("alpharl_mode rank1_only rebuilds weights from W_0: not available for LoRA")
        left_out = families_left_out(config, len(schedule.snapshot_steps()), lora=bool(self.lora))
        if set(left_out) == set(config.alpharl_candidates):
            raise AlphaRLError(f"no family of alpharl_candidates can be offered in this run: {left_out}")
        for family, why in left_out.items():
            logger.warning("AlphaRL: the gate's portfolio leaves out %s: %s", family, why)
        offered = set(config.alpharl_candidates) - set(left_out)
        rank, world = rank_world()
        self.window = WindowStore(self.output_dir, world) if offered & set(WINDOW_FAMILIES) else None
        """The tracked weights saved at each snapshot, for the candidate families that read them."""
        owners = assign_owners({n: int(torch.Size(shapes[n]).numel()) for n in self.names}, world)
        self.weights = OwnedWeights(model, owners, {n: s.base for n, s in self.lora.items()}, device)
        self.base: dict[str, torch.Tensor] = {}
        """`W_0` of the owned matrices (a LoRA site's: its two factors), on CPU."""
        self.trajectory = Trajectory()
        self.start = 0
        """The step the current window started at: 0, or the step of the previous jump."""
        self.step_rewards: list[tuple[int, float]] = []
        """(step, mean reward of the rollouts generated at that step): the reward covariate's raw data."""
        self._reward_list, self._rewards_seen = None, 0

    @property
    def owners(self) -> dict[str, int]:
        return self.weights.owners

    def owned(self, name: str) -> bool:
        return self.owners[name] == self.weights.rank

    def snapshot_steps(self) -> list[int]:
        return self.schedule.snapshot_steps(self.start)

    # ---- W_0 ------------------------------------------------------------------------------------------
    def _start_tensors(self, name: str) -> list[tuple[str, str]]:
        """(key in `base`, parameter) pairs that define W_0 of `name`: the weight, or a LoRA's factors."""
        site = self.lora.get(name)
        if site is None:
            return [(name, name)]
        return [(f"{name}:lora_B0", site.lora_b), (f"{name}:lora_A0", site.lora_a)]

    def new_window(self, start: int) -> None:
        """Start a window at `start`: an empty trajectory, and `W_0` the weights now, copied and saved (a
        resumed run reloads this rank's share)."""
        self.start, self.trajectory = start, Trajectory()
        entries = [(n, key, param) for n in self.names for key, param in self._start_tensors(n)]
        self.base = self.weights.owned_copies(entries)
        save_base(self.output_dir, self.weights.rank, self.weights.world, self.base, start)
        if start == 0:
            self._ignore_leftovers({self.weights.world})

    def resume(self, checkpoint: Path, step: int, meta: dict) -> None:
        """Reload `W_0` and the trajectory saved with `checkpoint` (of `step`). W_0 lives in the run folder
        that wrote the checkpoint, in the shares of the number of processes it records; resuming into another
        output_dir, or with another number of processes, saves this rank's share of it (and of the window's
        snapshots) anew."""
        world = self.weights.world
        self.start = int(meta.get("start", 0))
        then = saved_world(meta, checkpoint.parent, self.start)
        owned = [key for n in self.names if self.owned(n) for key, _ in self._start_tensors(n)]
        self.base = load_base(checkpoint.parent, step, owned, self.start, then)
        taken = [s for s in self.snapshot_steps() if s <= step]
        meta, self.trajectory = load_state(checkpoint, step, taken)
        if checkpoint.parent.resolve() != Path(self.output_dir).resolve() or then != world:
            self._share_again(checkpoint.parent, then, taken)
        self.step_rewards = [(int(at), float(reward)) for at, reward in meta["step_rewards"]]
        self._ignore_leftovers({then, world})

    def _share_again(self, source: Path, then: int, taken: list[int]) -> None:
        """Save this rank's share of W_0 and of the snapshots `taken`, read from the shares of the `then`
        processes that wrote them in the run folder `source`: from then on each rank reads only its own."""
        rank, world = self.weights.rank, self.weights.world
        save_base(self.output_dir, rank, world, self.base, self.start)
        if self.window is None:
            return
        reader, names = WindowStore(source, then), [n for n in self.names if self.owned(n)]
        for at in taken:
            save_window(self.output_dir, at, rank, world, {n: reader.read(at, n) for n in names})

    def _ignore_leftovers(self, worlds: set[int]) -> None:
        """Say (once, on rank 0) that the shares an earlier attempt with another number of processes left in
        output_dir are not read: they are not this run's weights."""
        stale = leftovers(self.output_dir, worlds)
        if stale and self.weights.rank == 0:
            logger.warning(
                "AlphaRL: ignoring %d files of another number of processes in %s (an earlier attempt's; this "
                "run reads the shares of %s processes only): %s",
                len(stale),
                Path(self.output_dir) / STATE_DIR,
                " or ".join(map(str, sorted(worlds))),
                ", ".join(str(p) for p in stale[:3]) + (", ..." if len(stale) > 3 else ""),
            )

    # ---- rewards and snapshots --------------------------------------------------------------------------
    def record_reward(self, step: int, metrics: dict) -> None:
        """The mean reward of the rollouts generated during this step, if any: the values TRL appended to its
        reward metric (`metrics`, the trainer's `_metrics`) since the last call. TRL clears its metrics at
        every log (a new list then), and a step that trains on buffered rollouts (steps_per_generation >
        accumulation, num_iterations > 1) adds none, so "the newest value" would repeat an old reward."""
        rewards = metrics.get("train", {}).get("reward")
        if rewards is None:
            return
        if rewards is not self._reward_list:  # metrics were logged and cleared since the last call
            self._reward_list, self._rewards_seen = rewards, 0
        new = rewards[self._rewards_seen :]
        self._rewards_seen = len(rewards)
        if new:
            self.step_rewards.append((step, sum(map(float, new)) / len(new)))

    def _interval_reward(self, step: int) -> float | None:
        """Mean reward of the rollouts generated after the previous snapshot, up to `step`."""
        since = self.trajectory.steps[-1] if len(self.trajectory) else self.start
        recent = [reward for at, reward in self.step_rewards if since < at <= step]
        return sum(recent) / len(recent) if recent else None

    def snapshot(self, step: int) -> dict[str, float]:
        """Append the rank-1 snapshot of every tracked `W_t - W_0` at `step` (collective); its logs."""
        start = time.perf_counter()
        zero3, params = self.weights.zero3, dict(self.model.named_parameters())
        local, kept = {}, {}
        for name in self.names:
            if name in self.lora:
                self._snapshot_lora(name, params, local)
                continue
            with full_weight(params[name], zero3=zero3) as w:
                if not self.owned(name):
                    continue
                delta = w.float() - self.base[name].to(w.device).float()
                warm = self.trajectory.last_v(name) if len(self.trajectory) else None
                local[name] = top_singular(delta, warm, name=name)
                if self.window is not None:
                    kept[name] = w.detach().to("cpu", copy=True)
        if self.window is not None:
            save_window(self.output_dir, step, self.weights.rank, self.weights.world, kept)
        factors = share_factors(local, self.owners)
        # Every snapshot must carry the same covariates: the first one decides whether rewards are
        # recorded; an interval without a logged reward repeats the last one.
        reward, recorded = self._interval_reward(step), self.trajectory.covariates.get("reward")
        if len(self.trajectory) and recorded is None:
            reward = None
        elif reward is None and recorded:
            reward = recorded[-1]
        self.trajectory.append(step, factors, {"reward": reward} if reward is not None else None)
        shares = [r.s / r.fro for r in factors.values() if r.fro > 0]
        return {
            "alpharl/snapshot_time": time.perf_counter() - start,
            "alpharl/rank1_share": sum(shares) / max(len(shares), 1),
            "alpharl/snapshots": float(len(self.trajectory)),
        }

    def _snapshot_lora(self, name: str, params: dict, local: dict) -> None:
        site, zero3 = self.lora[name], self.weights.zero3
        with (
            full_weight(params[site.lora_b], zero3=zero3) as b,
            full_weight(params[site.lora_a], zero3=zero3) as a,
        ):
            if self.owned(name):
                b0, a0 = self.base[f"{name}:lora_B0"].to(b.device), self.base[f"{name}:lora_A0"].to(a.device)
                local[name] = merged_update_rank1(b, a, b0, a0, site.scaling, name)

    def window_deltas(self, name: str, w_k: torch.Tensor):
        """`W_t - W_0` of an owned matrix at each snapshot of the window (float64, one read at a time; the
        last one is `w_k`, already in memory)."""
        steps, w0 = self.trajectory.steps, self.base[name].double()
        return ((w_k if s == steps[-1] else self.window.read(s, name)).double() - w0 for s in steps)
