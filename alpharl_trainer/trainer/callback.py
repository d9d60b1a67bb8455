"""AlphaRLCallback: AlphaRL inside any `transformers.Trainer`-based RL trainer (TRL GRPO, RLOO, ...).

The whole method, as the trainer sees it:

1. train start: keep `W_0` of the tracked matrices this rank owns (CPU, their own dtype) and save it once
   under `output_dir/alpharl/base/` so a resumed run has it (with `alpharl_jumps` > 1, each later window's
   `W_0` is the weights right after the previous jump, saved the same way);
2. every `alpharl_interval` steps until the window end: rank-1 snapshot of each owned `W_t - W_0`
   (warm-started), exchange the small factors, append to the trajectory with the interval's mean reward
   (and, for the fixed-basis and averaging candidates, save the owned weights to disk);
3. window end: build the candidates (`candidates.py`: rank-1 forecasts at every horizon, and the other
   families of `alpharl_candidates`), score the current weights and each candidate on held-out prompts
   (`acceptance.py`), hot-swap the best one on every rank (optimizer fp32 master included), or keep the
   current weights when none beats them by the bar (`decision.py`); drop buffered rollouts and force a vLLM
   weight resync so the next generation uses the swapped weights;
4. with `alpharl_jumps` > 1, train on and repeat 2-3 on the next window (snapshots since the jump); after the
   last jump fine-tune `alpharl_finetune_steps` and stop, or continue to `max_steps`.

The trajectory and the callback's state are saved into every `checkpoint-N/alpharl/` (`state.py`), and a
resumed run continues its window from there. Data flows one way: trainer -> snapshot -> forecast -> apply
-> trainer; all the math is in `alpharl_trainer.extrapolation`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.distributed as dist
from transformers import TrainerCallback

from alpharl_trainer.distributed import assign_owners, full_weight, share_factors, write_weights
from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.extrapolation import Trajectory, forecast, predict_weight, top_singular
from alpharl_trainer.extrapolation.apply import ABSURD_JUMP, LARGE_JUMP
from alpharl_trainer.extrapolation.relex import RelexFit, gram
from alpharl_trainer.extrapolation.saturation import MIN_POINTS as SATURATION_MIN_POINTS
from alpharl_trainer.extrapolation.saturation import fit_saturation, horizon
from alpharl_trainer.trainer.acceptance import AcceptanceScorer, judge
from alpharl_trainer.trainer.candidates import WINDOW_FAMILIES, Candidate, build_candidates, describe
from alpharl_trainer.trainer.config import AlphaRLConfig
from alpharl_trainer.trainer.decision import best_over_bar, describe_decision, paired_se
from alpharl_trainer.trainer.lora import LoraSite, lora_sites, merged_update_rank1
from alpharl_trainer.trainer.state import (
    STATE_DIR,
    WindowReader,
    leftovers,
    load_base,
    load_meta,
    load_state,
    save_base,
    save_state,
    save_window,
    saved_world,
)

logger = logging.getLogger(__name__)


class NonFiniteCandidate(AlphaRLError):
    """A candidate whose weight of some matrix has NaN or inf values (e.g. `W_K + 1e300 (W_K - W_0)`): it is
    dropped, never written whole. Every rank holds the same value when it is found, so every rank drops it."""


def _rank_world() -> tuple[int, int]:
    return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)


class AlphaRLCallback(TrainerCallback):
    """Snapshots, forecast, acceptance and hot-swap for a running trainer. See the module docstring.

    Use `AlphaRLCallback(config).attach(trainer)` (or the AlphaRL trainers, which do it): the callback
    needs the trainer itself (its accelerator, DeepSpeed engine, reward functions and rollout buffers),
    which transformers does not hand to callbacks.
    """

    def __init__(self, config: AlphaRLConfig):
        self.config = config
        self.trainer = None
        self.trajectory = Trajectory()
        self.names: list[str] = []
        self.lora: dict[str, LoraSite] = {}
        """Tracked matrices that are LoRA-adapted: extrapolated on their merged update (see lora.py)."""
        self.owners: dict[str, int] = {}
        self.base: dict[str, torch.Tensor] = {}
        self.step_rewards: list[tuple[int, float]] = []
        """(step, mean reward of the rollouts generated at that step): the reward covariate's raw data."""
        self._reward_list, self._rewards_seen = None, 0
        self.resume_checkpoint: str | None = None
        """The checkpoint the trainer resumes from (the AlphaRL trainers set it in `train`)."""
        self.swap: dict | None = None
        """What happened at the last window end: step, candidates, scores, chosen label (None before)."""
        self.swaps: list[dict] = []
        """Every jump's decision, in order (`alpharl_jumps` of them once the run is through)."""
        self.start = 0
        """The step the current window started at: 0, or the step of the previous jump."""
        self.pending_logs: dict[str, float] = {}
        self.window: WindowReader | None = None
        """The tracked weights saved at each snapshot, for the candidate families that need them."""
        self._relex: RelexFit | None = None
        """During a swap: RELEX's whole-model fit, when it is offered."""
        self.dropped: list[str] = []
        """During a swap: the candidates dropped for NaN or inf weights (scored NaN)."""
        self._fits: dict[str, dict] = {}
        """During a swap: each owned matrix's fixed-basis fits by rank (one per matrix and rank, not per
        candidate step)."""
        self.listeners: list[Callable[[str, str | None], None]] = []
        """Called on every rank at the window end as `listener(event, label)`, with the weights in question
        in the model: 'window' (W_K, before any candidate is written), 'candidate' (each scored candidate, its
        label), 'decided' (the chosen weights in place; label None after a rollback). `alpharl train` uses
        it to score every stage on the test split; listeners must not change the weights."""

    # ---- wiring -------------------------------------------------------------------------------------
    def attach(self, trainer) -> AlphaRLCallback:
        """Install on `trainer`, first in its callback list so its metrics reach every logger."""
        args = trainer.args
        unscored = self.config.validate_alpharl(args.max_steps)
        if unscored:
            logger.warning("AlphaRL: %s", unscored)
        if self.config.alpharl_acceptance_prompts > 0 and trainer.eval_dataset is None:
            raise AlphaRLError(
                "the acceptance gate scores candidates on held-out prompts: pass eval_dataset to the "
                "trainer, or set alpharl_acceptance_prompts: 0 to apply the forecast unscored"
            )
        self.trainer = trainer
        trainer.callback_handler.callbacks.insert(0, self)
        return self

    @property
    def length(self) -> int:
        """Steps per window: the window end of the first window."""
        return self.config.window_end_step(self.trainer.args.max_steps)

    @property
    def window_end(self) -> int:
        """The step the current window closes at."""
        return self.start + self.length

    @property
    def _jumps_left(self) -> bool:
        return len(self.swaps) < self.config.alpharl_jumps

    def _snapshot_steps(self) -> list[int]:
        """The current window's snapshot steps: the first window's, shifted to its start."""
        return [self.start + s for s in self.config.snapshot_steps(self.trainer.args.max_steps)]

    @property
    def _keeps_window(self) -> bool:
        """Whether each snapshot's weights are saved: a family the run offers reads them."""
        return self.window is not None

    @property
    def _zero3(self) -> bool:
        return any(hasattr(p, "ds_id") for p in self.trainer.model.parameters())

    def _params(self) -> dict[str, torch.nn.Parameter]:
        return dict(self.trainer.model.named_parameters())

    # ---- events -------------------------------------------------------------------------------------
    def on_train_begin(self, args, state, control, **kwargs):
        params = self._params()
        select = self.config.selector()
        shapes = {n: tuple(getattr(p, "ds_shape", p.shape)) for n, p in params.items()}
        sites = lora_sites(self.trainer.model)
        self.lora = {n: site for n, site in sites.items() if select(n, shapes[site.base])}
        frozen_bases = {site.base for site in sites.values()}
        trained = [n for n, p in params.items() if p.requires_grad and n not in frozen_bases]
        self.names = sorted([n for n in trained if select(n, shapes[n])] + list(self.lora))
        shapes.update({n: shapes[site.base] for n, site in self.lora.items()})
        if not self.names:
            raise AlphaRLError("no parameter matches the AlphaRL selector: nothing to extrapolate")
        if self.lora and self.config.alpharl_mode == "rank1_only":
            raise AlphaRLError("alpharl_mode rank1_only rebuilds weights from W_0: not available for LoRA")
        snapshots = len(self.config.snapshot_steps(args.max_steps))
        left_out = self.config.left_out(snapshots, lora=bool(self.lora))
        if set(left_out) == set(self.config.alpharl_candidates):
            raise AlphaRLError(f"no family of alpharl_candidates can be offered in this run: {left_out}")
        for family, why in left_out.items():
            logger.warning("AlphaRL: the gate's portfolio leaves out %s: %s", family, why)
        offered = set(self.config.alpharl_candidates) - set(left_out)
        rank, world = _rank_world()
        self.window = WindowReader(args.output_dir, world) if offered & set(WINDOW_FAMILIES) else None
        self.owners = assign_owners({n: int(torch.Size(shapes[n]).numel()) for n in self.names}, world)
        if not self.config.alpharl_continue_after_swap:
            # The run stops after the last jump and its fine-tune: say so to the progress bar and the ETA
            # (this callback runs first). The learning-rate schedule was built from args.max_steps: untouched.
            last = self.config.alpharl_jumps * self.length
            state.max_steps = min(state.max_steps, last + self.config.alpharl_finetune_steps)
        if state.global_step == 0:
            self._keep_base(rank, world, start=0)
            self._ignore_leftovers({world})
        else:
            self._resume(state.global_step, rank, world)

    def on_step_end(self, args, state, control, **kwargs):
        self._record_reward(state.global_step)
        step = state.global_step
        saving = args.save_strategy != "no"  # checkpoints at the swap and the stop, unless saving is off
        if self._jumps_left:
            end = self.window_end
            if step in self._snapshot_steps():
                self._snapshot(step)
            if step == end:
                self._swap_at(step)
                self.swaps.append(self.swap)
                if self._jumps_left:  # the next window starts from the weights just decided
                    self.start, self.trajectory = step, Trajectory()
                    self._keep_base(*_rank_world(), start=step)
                control.should_save |= saving  # a checkpoint holding the swap (and the swap decision)
        if not self._jumps_left and not self.config.alpharl_continue_after_swap:
            if step >= self.swap["step"] + self.config.alpharl_finetune_steps:
                control.should_training_stop = True
                control.should_save |= saving
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs is not None and self.pending_logs:
            logs.update(self.pending_logs)
            if state.log_history:
                state.log_history[-1].update(self.pending_logs)
            self.pending_logs = {}

    def on_save(self, args, state, control, **kwargs):
        if args.should_save:
            meta = {
                "step_rewards": self.step_rewards,
                "swap": self.swap,
                "swaps": self.swaps,
                "start": self.start,
                "names": self.names,
                "world": _rank_world()[1],  # whose shares of W_0 and the snapshots are this run's
            }
            save_state(Path(args.output_dir) / f"checkpoint-{state.global_step}", self.trajectory, meta)

    # ---- train start / resume -----------------------------------------------------------------------
    def _start_tensors(self, name: str) -> list[tuple[str, str]]:
        """(key in self.base, parameter) pairs that define W_0 of `name`: the weight, or a LoRA's factors."""
        site = self.lora.get(name)
        if site is None:
            return [(name, name)]
        return [(f"{name}:lora_B0", site.lora_b), (f"{name}:lora_A0", site.lora_a)]

    def _written(self, name: str) -> str:
        """The parameter a swap writes for `name`: the weight itself, or a LoRA layer's frozen base weight."""
        return self.lora[name].base if name in self.lora else name

    def _keep_base(self, rank: int, world: int, start: int) -> None:
        """Copy W_0 of owned matrices (the weights now: at the run's start, or right after a jump) to CPU
        and save this rank's share (a resumed run reloads it)."""
        zero3, params = self._zero3, self._params()
        for name in self.names:  # all ranks, same order: under ZeRO-3 each gather is collective
            for key, param in self._start_tensors(name):
                with full_weight(params[param], zero3=zero3) as w:
                    if self.owners[name] == rank:
                        self.base[key] = w.detach().to("cpu", copy=True)
        save_base(self.trainer.args.output_dir, rank, world, self.base, start)

    def _resume(self, step: int, rank: int, world: int) -> None:
        """Reload W_0 and the trajectory/state saved with the checkpoint of `step`: the one the trainer
        resumes from (`resume_checkpoint`, set by the AlphaRL trainers), else, for a trainer the callback was
        attached to by hand, `output_dir/checkpoint-{step}`. W_0 lives in the run folder that wrote the
        checkpoint, in the shares of the number of processes it records; resuming into another output_dir,
        or with another number of processes, saves this rank's share of it (and of the window's snapshots)
        anew."""
        args = self.trainer.args
        checkpoint = Path(self.resume_checkpoint or Path(args.output_dir) / f"checkpoint-{step}")
        meta = load_meta(checkpoint, step)
        self.start = int(meta.get("start", 0))
        then = saved_world(meta, checkpoint.parent, self.start)
        owned = [key for n in self.names if self.owners[n] == rank for key, _ in self._start_tensors(n)]
        self.base = load_base(checkpoint.parent, step, owned, self.start, then)
        taken = [s for s in self._snapshot_steps() if s <= step]
        meta, self.trajectory = load_state(checkpoint, step, taken)
        if checkpoint.parent.resolve() != Path(args.output_dir).resolve() or then != world:
            self._share_again(checkpoint.parent, then, taken, rank, world)
        self.step_rewards = [(int(at), float(reward)) for at, reward in meta["step_rewards"]]
        self.swap = meta["swap"]
        self.swaps = meta.get("swaps", [self.swap] if self.swap else [])
        self._ignore_leftovers({then, world})

    def _share_again(self, source: Path, then: int, taken: list[int], rank: int, world: int) -> None:
        """Save this rank's share of W_0 and of the snapshots `taken`, read from the shares of the `then`
        processes that wrote them in the run folder `source`, as a share of `world` processes in output_dir:
        a resume into another folder, or with another number of processes, reads only its own from then on."""
        output_dir = self.trainer.args.output_dir
        save_base(output_dir, rank, world, self.base, self.start)
        if not self._keeps_window:
            return
        reader, names = WindowReader(source, then), [n for n in self.names if self.owners[n] == rank]
        for at in taken:
            save_window(output_dir, at, rank, world, {n: reader.read(at, n) for n in names})

    def _ignore_leftovers(self, worlds: set[int]) -> None:
        """Say (once, on rank 0) that the shares an earlier attempt with another number of processes left in
        output_dir are not read: they are not this run's weights."""
        stale = leftovers(self.trainer.args.output_dir, worlds)
        if stale and _rank_world()[0] == 0:
            logger.warning(
                "AlphaRL: ignoring %d files of another number of processes in %s (an earlier attempt's; this "
                "run reads the shares of %s processes only): %s",
                len(stale),
                Path(self.trainer.args.output_dir) / STATE_DIR,
                " or ".join(map(str, sorted(worlds))),
                ", ".join(str(p) for p in stale[:3]) + (", ..." if len(stale) > 3 else ""),
            )

    # ---- snapshots ------------------------------------------------------------------------------------
    def _record_reward(self, step: int) -> None:
        """The mean reward of the rollouts generated during this step, if any: the values TRL appended to its
        reward metric since the last call. TRL clears its metrics at every log (a new list then), and a step
        that trains on buffered rollouts (steps_per_generation > accumulation, num_iterations > 1) adds none,
        so "the newest value" would repeat an old rollout's reward."""
        rewards = getattr(self.trainer, "_metrics", {}).get("train", {}).get("reward")
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

    def _snapshot(self, step: int) -> None:
        start = time.perf_counter()
        rank, world = _rank_world()
        zero3, params = self._zero3, self._params()
        local, kept = {}, {}
        for name in self.names:
            if name in self.lora:
                self._snapshot_lora(name, params, zero3, rank, local)
                continue
            with full_weight(params[name], zero3=zero3) as w:
                if self.owners[name] != rank:
                    continue
                delta = w.float() - self.base[name].to(w.device).float()
                warm = self.trajectory.last_v(name) if len(self.trajectory) else None
                local[name] = top_singular(delta, warm, name=name)
                if self._keeps_window:
                    kept[name] = w.detach().to("cpu", copy=True)
        if self._keeps_window:
            save_window(self.trainer.args.output_dir, step, rank, world, kept)
        factors = share_factors(local, self.owners)
        # Every snapshot must carry the same covariates: the first one decides whether rewards are
        # recorded; an interval without a logged reward repeats the last one.
        reward, recorded = self._interval_reward(step), self.trajectory.covariates.get("reward")
        if len(self.trajectory) and recorded is None:
            reward = None
        elif reward is None and recorded:
            reward = recorded[-1]
        covariates = {"reward": reward} if reward is not None else None
        self.trajectory.append(step, factors, covariates)
        shares = [r.s / r.fro for r in factors.values() if r.fro > 0]
        self.pending_logs.update(
            {
                "alpharl/snapshot_time": time.perf_counter() - start,
                "alpharl/rank1_share": sum(shares) / max(len(shares), 1),
                "alpharl/snapshots": float(len(self.trajectory)),
            }
        )

    def _snapshot_lora(self, name: str, params: dict, zero3: bool, rank: int, local: dict) -> None:
        site = self.lora[name]
        with (
            full_weight(params[site.lora_b], zero3=zero3) as b,
            full_weight(params[site.lora_a], zero3=zero3) as a,
        ):
            if self.owners[name] == rank:
                b0, a0 = self.base[f"{name}:lora_B0"].to(b.device), self.base[f"{name}:lora_A0"].to(a.device)
                local[name] = merged_update_rank1(b, a, b0, a0, site.scaling, name)

    # ---- forecast, acceptance, swap ------------------------------------------------------------------
    def _stash_owned(self) -> dict[str, torch.Tensor]:
        """W_K of the matrices this rank owns, on CPU: the copy candidates start from and rollback restores.

        Only the owner keeps one, so a node holds a single copy of the tracked weights in host memory
        whatever its number of ranks; other ranks receive each matrix from its owner when it is written.
        """
        rank, _ = _rank_world()
        zero3, params, stash = self._zero3, self._params(), {}
        for name in self.names:  # all ranks, same order: under ZeRO-3 each gather is collective
            with full_weight(params[self._written(name)], zero3=zero3) as w:
                if self.owners[name] == rank:
                    stash[name] = w.detach().to("cpu", copy=True)
        return stash

    def _from_owner(self, name: str, local: torch.Tensor | None) -> torch.Tensor:
        """The owner's tensor for `name` on every rank (single process: `local` itself)."""
        _, world = _rank_world()
        if world == 1:
            return local
        param = self._params()[self._written(name)]
        device = self.trainer.accelerator.device
        shape = tuple(getattr(param, "ds_shape", param.shape))
        buf = local.to(device) if local is not None else torch.empty(shape, dtype=param.dtype, device=device)
        dist.broadcast(buf, src=self.owners[name])
        return buf

    def _apply(
        self, candidate: Candidate | None, stash: dict[str, torch.Tensor], reset: bool = False
    ) -> float:
        """Write `candidate` (or W_K itself when None) into the live model on every rank, one matrix at a
        time (peak extra memory: one matrix). Returns `||W_new - W_K||` over all matrices."""
        cfg, trainer = self.config, self.trainer
        rank, world = _rank_world()
        fcs = None
        if candidate is not None and candidate.family == "rank1":
            fcs = forecast(
                self.trajectory, candidate.value, fit=cfg.alpharl_fit, covariate=cfg.alpharl_covariate
            )
        engine = trainer.deepspeed if getattr(trainer, "is_deepspeed_enabled", False) else None
        moved = torch.zeros((), dtype=torch.float64)
        for name in self.names:
            owned = self.owners[name] == rank
            if candidate is None or (fcs is not None and cfg.alpharl_mode != "rank1_only"):
                # W_K, or an additive rank-1 correction of it computed identically on every rank
                w_k = self._from_owner(name, stash.get(name))
                value = (
                    w_k
                    if fcs is None
                    else predict_weight(w_k, w_k, fcs[name], cfg.alpharl_mode, cfg.alpharl_scale)
                )
            else:  # needs W_0 or the window's weights: only the owner has them
                value = self._from_owner(
                    name, self._owner_weight(candidate, fcs, name, stash) if owned else None
                )
            if not torch.isfinite(value).all():
                raise NonFiniteCandidate(f"its weight of {name} has NaN or inf values")
            if owned:
                moved += float((value.float().cpu() - stash[name].float()).norm()) ** 2
            write_weights(
                trainer.model,
                {self._written(name): value},
                deepspeed_engine=engine,
                optimizer=trainer.optimizer,
                reset_moments=reset,
            )
        if world > 1:
            moved = moved.to(trainer.accelerator.device)
            dist.all_reduce(moved)
        return float(moved) ** 0.5

    def _timed(
        self, candidate: Candidate, stash: dict, total: list[float], reset: bool = False
    ) -> float | None:
        """`_apply`, adding its seconds to `total[0]`; None when the candidate is not finite: it is dropped
        with a warning and `W_K` is put back (the matrices written before the bad one included), so a NaN
        score (or, with the gate off, keeping `W_K`) follows instead of an abort after the whole window."""
        start = time.perf_counter()
        try:
            return self._apply(candidate, stash, reset=reset)
        except NonFiniteCandidate as err:
            logger.warning("AlphaRL: candidate %s dropped: %s", candidate.label, err)
            self.dropped.append(candidate.label)
            self._apply(None, stash)
            return None
        finally:
            total[0] += time.perf_counter() - start

    def _owner_weight(
        self, candidate: Candidate, fcs, name: str, stash: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        """The candidate's weight of a matrix this rank owns. A fixed-basis forecast that cannot be made for
        one matrix (e.g. a degenerate profile) keeps that matrix at W_K, with a warning: the gate scores what
        was written, and an error here would leave the other ranks waiting."""
        w_k, w0 = stash[name], self.base[name]
        if fcs is not None:  # rank1_only: rebuilt from W_0
            return predict_weight(w_k, w0, fcs[name], "rank1_only", self.config.alpharl_scale)
        steps = self.trajectory.steps
        if candidate.family == "relex":
            update = self._relex.update(self._window_deltas(name, w_k), candidate.value - self.start)
            return (w0.double() + update).to(w_k.dtype)
        try:
            read = lambda at: self.window.read(at, name)  # noqa: E731
            fits = self._fits.setdefault(name, {})
            return candidate.weight(w_k, w0, steps, read, self.config.alpharl_basis_profile, self.start, fits)
        except AlphaRLError as err:
            logger.warning("AlphaRL candidate %s keeps %s at W_K: %s", candidate.label, name, err)
            return w_k

    def _window_deltas(self, name: str, w_k: torch.Tensor):
        """`W_t - W_0` of an owned matrix at each snapshot of the window (float64, one read at a time; the
        last one is `w_k`, already in memory)."""
        steps, w0 = self.trajectory.steps, self.base[name].double()
        return ((w_k if s == steps[-1] else self.window.read(s, name)).double() - w0 for s in steps)

    def _fit_relex(self, stash: dict[str, torch.Tensor]) -> bool:
        """RELEX's fit from the whole model's window (every rank adds its matrices' Gram part; collective).
        False, with a warning, when there is nothing to fit (every update zero): the same on every rank."""
        steps = self.trajectory.steps
        total = torch.zeros(len(steps), len(steps), dtype=torch.float64)
        for name, w_k in stash.items():
            total += gram(list(self._window_deltas(name, w_k)))
        if _rank_world()[1] > 1:
            total = total.to(self.trainer.accelerator.device)
            dist.all_reduce(total)
        try:
            self._relex = RelexFit.from_gram([s - self.start for s in steps], total.cpu())
        except AlphaRLError as err:
            logger.warning("AlphaRL: RELEX candidates left out: %s", err)
            return False
        return True

    def _swap_at(self, step: int) -> None:
        """Forecast, score, and write the winner (or keep the current weights)."""
        start = time.perf_counter()
        cfg, trainer = self.config, self.trainer
        stash = self._stash_owned()
        self._notify("window", None)
        targets = self.config.targets(step, self.start)
        saturation = self._saturation(step) if cfg.alpharl_saturation_threshold > 0 else None
        if saturation and saturation.get("target") is not None and saturation["target"] not in targets:
            targets = [*targets, saturation["target"]]
        fits = forecast(self.trajectory, targets[0], fit=cfg.alpharl_fit, covariate=cfg.alpharl_covariate)
        max_steps = trainer.args.max_steps
        snapshots, lora = len(self.trajectory), bool(self.lora)
        forecast_time = [0.0]  # seconds computing and writing candidates: the swap's time without the gate
        self._fits = {}
        built = build_candidates(cfg, targets, step, max_steps, snapshots, lora=lora, start=self.start)
        if any(c.family == "relex" for c in built) and not self._fit_relex(stash):
            built = [c for c in built if c.family != "relex"]
        candidates = {c.label: c for c in built}
        labels = list(candidates)
        scores: dict[str, float] = {}
        chosen, gate_engine, paired, self.dropped = labels[0], None, {}, []
        reset = cfg.alpharl_optimizer_state == "reset"
        if cfg.alpharl_acceptance_prompts > 0:
            held_out = trainer.eval_dataset
            rows = list(held_out.select(range(min(cfg.alpharl_acceptance_prompts, len(held_out)))))
            scorer = AcceptanceScorer(
                trainer,
                rows,
                cfg.alpharl_acceptance_samples,
                cfg.alpharl_acceptance_seed,
                greedy=cfg.alpharl_acceptance_scoring == "greedy",
            )
            gate_engine = scorer.engine
            write = lambda label: self._timed(candidates[label], stash, forecast_time) is not None  # noqa: E731
            scored = lambda label: self._notify("candidate", label)  # noqa: E731
            scores, per_prompt = judge(scorer, labels, write, scored)
            margin, margin_se = cfg.alpharl_acceptance_margin, cfg.alpharl_acceptance_margin_se
            chosen = best_over_bar(scores, labels, margin, per_prompt=per_prompt, margin_se=margin_se)
            paired = {k: paired_se(per_prompt["current"], v) for k, v in per_prompt.items() if k != "current"}
        unscored = cfg.alpharl_acceptance_prompts == 0  # the jump is judged once written: reset moments after
        first = reset and not unscored
        moved = None if chosen is None else self._timed(candidates[chosen], stash, forecast_time, reset=first)
        jump = None if moved is None else self._jump(moved)
        refused = self._refused(chosen, jump) if unscored and jump is not None else None
        if moved is None or refused:  # kept W_K: nothing beat it, or (gate off) no finite, sane candidate
            chosen, moved = None, 0.0
            self._apply(None, stash)
        else:
            if reset and unscored:  # the same weights again, now resetting the moments of a jump that is kept
                self._timed(candidates[chosen], stash, forecast_time, reset=True)
            self._invalidate_rollouts()
        if gate_engine == "vllm":  # vLLM holds the last candidate scored: push the decided weights
            trainer.vllm_generation.sync_weights()
            trainer._last_loaded_step = trainer.state.global_step
        self.swap = {
            "step": step,
            "targets": targets,
            "candidates": labels,
            "scores": scores,
            "margin": cfg.alpharl_acceptance_margin,
            "margin_se": cfg.alpharl_acceptance_margin_se,
            "paired_se": paired,
            "scoring": cfg.alpharl_acceptance_scoring,
            "covariate": cfg.alpharl_covariate,
            "gate_engine": gate_engine,
            "chosen": chosen,
            "dropped": self.dropped,
            "jump": jump,
            "refused": refused,
            "saturation": saturation,
            "mean_fit_r2": sum(f.fit_r2 for f in fits.values()) / len(fits),
            "delta_norm": moved,
            "forecast_time": forecast_time[0],
            "seconds": time.perf_counter() - start,
        }
        self._fits = {}  # the window's fits are not needed after the decision
        rank1 = chosen is not None and candidates[chosen].family == "rank1"
        self.pending_logs.update(
            {
                "alpharl/swap_time": self.swap["seconds"],
                "alpharl/forecast_time": forecast_time[0],
                "alpharl/mean_fit_r2": self.swap["mean_fit_r2"],
                "alpharl/chosen_target": float(candidates[chosen].value) if rank1 else float("nan"),
                "alpharl/rolled_back": float(chosen is None),
                "alpharl/candidates": float(len(labels)),
                "alpharl/swap_delta_norm": moved,
                **{f"alpharl/score/{k}": v for k, v in scores.items()},
            }
        )
        logger.warning("%s", describe_decision(self.swap))
        self._notify("decided", chosen)

    def _jump(self, moved: float) -> float:
        """`moved` (`||W_new - W_K||`) in units of the window's whole update `||W_K - W_0||` over every
        tracked matrix (from the trajectory: the same on every rank), as offline `predict` judges a jump;
        0 for a window that did not move (nothing was forecast)."""
        update = math.sqrt(sum(float(self.trajectory.fro(name)[-1]) ** 2 for name in self.trajectory.names))
        return moved / update if update > 0 else 0.0

    def _refused(self, label: str, jump: float) -> str | None:
        """Offline `predict`'s rule for a far forecast, on the jump the gate-off swap just wrote (`jump`
        window updates): over `ABSURD_JUMP` it is refused (returned: W_K is then kept), over `LARGE_JUMP` a
        warning. The gate judges its own winners; unscored, this is the only guard left."""
        unit = "step" if self.config.alpharl_covariate == "step" else "reward"
        what = f"{describe(label, unit)} moved the weights {jump:.3g} times their whole window update"
        if jump > ABSURD_JUMP:
            refused = f"{what}, far outside what the window can predict"
            logger.warning("AlphaRL: refused: %s; kept the current weights", refused)
            return refused
        if jump > LARGE_JUMP:
            logger.warning("AlphaRL: %s, far outside the window: evaluate before use", what)
        return None

    def _saturation(self, step: int) -> dict:
        """One more candidate target from a saturating fit of the window's reward per snapshot
        (`extrapolation/saturation.py`): the saturation horizon (covariate step) or the reward the fit
        predicts at max_steps (covariate reward: the paper's y*); or why there is none (no reward recorded,
        too few snapshots, or a window that did not gain)."""
        cfg = self.config
        rewards = self.trajectory.covariates.get("reward")
        if not rewards or len(rewards) < SATURATION_MIN_POINTS:
            return {"target": None, "why": f"needs the reward at >= {SATURATION_MIN_POINTS} snapshots"}
        times = [float(s - self.start) for s in self.trajectory.steps]  # since the window's W_0
        fit = fit_saturation(times, [float(r) for r in rewards])
        if cfg.alpharl_covariate == "reward":
            y_star = float(fit.predict(self.trainer.args.max_steps - self.start))
            target = round(y_star, 4) if math.isfinite(y_star) and y_star > max(rewards) else None
            why = None if target is not None else "the fitted reward does not rise beyond the window's"
            return {"target": target, "form": fit.form, "shape": fit.shape, "r2": fit.r2, "why": why}
        end = self.start + horizon(
            fit, step - self.start, cfg.alpharl_saturation_threshold, max(cfg.alpharl_horizons)
        )
        target = float(math.floor(end + 0.5)) if end >= step + 1 else None
        return {
            "target": target,
            "form": fit.form,
            "shape": fit.shape,
            "r2": fit.r2,
            "why": None if target is not None else "the fitted reward does not rise beyond the window",
        }

    def _notify(self, event: str, target: float | None) -> None:
        for listener in self.listeners:
            listener(event, target)

    def _invalidate_rollouts(self) -> None:
        """Make the next generation use the swapped weights (TRL 1.16 GRPO/RLOO internals, pinned).

        Buffered rollouts (steps_per_generation > gradient accumulation, or num_iterations > 1) were sampled
        from the old weights: drop them. vLLM re-pulls weights only when `global_step` differs from
        `_last_loaded_step`; reset it so any generation after the swap (train or eval) re-syncs first.
        """
        trainer = self.trainer
        if hasattr(trainer, "_buffered_inputs"):
            trainer._buffered_inputs = None
        if hasattr(trainer, "_last_loaded_step"):
            trainer._last_loaded_step = -1
