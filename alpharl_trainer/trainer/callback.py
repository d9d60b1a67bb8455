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

The callback holds the hooks; `SnapshotRecorder` (recorder.py) does 1-2 and `WindowSwap` (swap.py) does 3,
returning a `SwapRecord`; `Schedule` (schedule.py) says when. The trajectory and the callback's state are
saved into every `checkpoint-N/alpharl/` (`state.py`), and a resumed run continues its window from there.
Data flows one way: trainer -> snapshot -> forecast -> apply -> trainer; all the math is in
`alpharl_trainer.extrapolation`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from transformers import TrainerCallback

from alpharl_trainer.errors import FSDP_REFUSED, AlphaRLError
from alpharl_trainer.extrapolation import Trajectory
from alpharl_trainer.trainer.config import AlphaRLConfig
from alpharl_trainer.trainer.decision import SwapRecord, describe_decision
from alpharl_trainer.trainer.recorder import SnapshotRecorder
from alpharl_trainer.trainer.reference_scoring import check_reference_scoring
from alpharl_trainer.trainer.schedule import Schedule
from alpharl_trainer.trainer.state import load_meta, save_state
from alpharl_trainer.trainer.swap import WindowSwap

logger = logging.getLogger(__name__)


class AlphaRLCallback(TrainerCallback):
    """Snapshots, forecast, acceptance and hot-swap for a running trainer. See the module docstring.

    Use `AlphaRLCallback(config).attach(trainer)` (or the AlphaRL trainers, which do it): the callback
    needs the trainer itself (its accelerator, DeepSpeed engine, reward functions and rollout buffers),
    which transformers does not hand to callbacks.
    """

    def __init__(self, config: AlphaRLConfig):
        self.config = config
        self.trainer = None
        self.schedule: Schedule | None = None
        self.recorder: SnapshotRecorder | None = None
        """The window's record (built at train start)."""
        self.resume_checkpoint: str | None = None
        """The checkpoint the trainer resumes from (the AlphaRL trainers set it in `train`)."""
        self.swaps: list[SwapRecord] = []
        """Every jump's decision, in order (`alpharl_jumps` of them once the run is through)."""
        self.pending_logs: dict[str, float] = {}
        self._step_clock = [0.0, 0, 0.0]
        """[seconds in training steps, steps timed, when the current step began]: the unit a swap's cost is
        given in (the callback's own work at a step end is not part of it)."""
        self.listeners: list[Callable[[str, str | None], None]] = []
        """Called on every rank at the window end as `listener(event, label)`, with the weights in question
        in the model: 'window' (W_K, before any candidate is written), 'candidate' (each scored candidate, its
        label), 'decided' (the chosen weights in place; label None after a rollback). `alpharl train` uses
        it to score every stage on the test split; listeners must not change the weights."""

    def attach(self, trainer) -> AlphaRLCallback:
        """Install on `trainer`, first in its callback list so its metrics reach every logger."""
        unscored = self.config.validate_alpharl(trainer.args.max_steps)
        if unscored:
            logger.warning("AlphaRL: %s", unscored)
        if getattr(trainer, "is_fsdp_enabled", False):
            raise AlphaRLError(FSDP_REFUSED)
        if self.config.alpharl_acceptance_prompts > 0 and trainer.eval_dataset is None:
            raise AlphaRLError(
                "the acceptance gate scores candidates on held-out prompts: pass eval_dataset to the "
                "trainer, or set alpharl_acceptance_prompts: 0 to apply the forecast unscored"
            )
        scoring = self.config.alpharl_acceptance_scoring
        if self.config.alpharl_acceptance_prompts > 0 and scoring.startswith("exact"):
            check_reference_scoring(trainer, scoring)
        self.trainer = trainer
        self.schedule = self.config.schedule(trainer.args.max_steps)
        trainer.callback_handler.callbacks.insert(0, self)
        return self

    # ---- what the run has done so far ---------------------------------------------------------------
    @property
    def swap(self) -> SwapRecord | None:
        """The last window end's decision (None before the first)."""
        return self.swaps[-1] if self.swaps else None

    @property
    def trajectory(self) -> Trajectory:
        return self.recorder.trajectory

    @property
    def names(self) -> list[str]:
        return self.recorder.names

    @property
    def start(self) -> int:
        """The step the current window started at: 0 before training, or the step of the previous jump."""
        return self.recorder.start if self.recorder is not None else 0

    @property
    def window_end(self) -> int:
        """The step the current window closes at."""
        return self.schedule.window_end(self.start)

    @property
    def _jumps_left(self) -> bool:
        return len(self.swaps) < self.config.alpharl_jumps

    # ---- events -------------------------------------------------------------------------------------
    def on_train_begin(self, args, state, control, **kwargs):
        model, device = self.trainer.model, self.trainer.accelerator.device
        self.recorder = SnapshotRecorder(self.config, self.schedule, model, args.output_dir, device)
        stop = self.schedule.stop_step
        if stop is not None:
            # The run stops after the last jump and its fine-tune: say so to the progress bar and the ETA
            # (this callback runs first). The learning-rate schedule was built from args.max_steps: untouched.
            state.max_steps = min(state.max_steps, stop)
        if state.global_step == 0:
            self.recorder.new_window(0)
        else:
            self._resume(state.global_step)

    def on_step_begin(self, args, state, control, **kwargs):
        self._step_clock[2] = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        clock = self._step_clock
        clock[0], clock[1] = clock[0] + time.perf_counter() - clock[2], clock[1] + 1
        step, rec = state.global_step, self.recorder
        rec.record_reward(step, getattr(self.trainer, "_metrics", {}))
        saving = args.save_strategy != "no"  # checkpoints at the swap and the stop, unless saving is off
        if self._jumps_left:
            if step in rec.snapshot_steps():
                self.pending_logs.update(rec.snapshot(step))
            if step == self.window_end:
                mean_step = clock[0] / clock[1]
                self.swaps.append(WindowSwap(self.trainer, rec, self._notify, mean_step).run(step))
                self.pending_logs.update(self.swap.logs())
                logger.warning("%s", describe_decision(self.swap))
                self._notify("decided", self.swap.chosen)
                if self._jumps_left:  # the next window starts from the weights just decided
                    rec.new_window(step)
                control.should_save |= saving  # a checkpoint holding the swap (and the swap decision)
        stop = self.schedule.stop_step
        if not self._jumps_left and stop is not None and step >= stop:
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
            rec = self.recorder
            meta = {
                "step_rewards": rec.step_rewards,
                "swap": self.swap.to_dict() if self.swap else None,
                "swaps": [s.to_dict() for s in self.swaps],
                "start": rec.start,
                "names": rec.names,
                "world": rec.weights.world,  # whose shares of W_0 and the snapshots are this run's
            }
            save_state(Path(args.output_dir) / f"checkpoint-{state.global_step}", rec.trajectory, meta)

    def _resume(self, step: int) -> None:
        """Reload the window and the decisions saved with the checkpoint of `step`: the one the trainer
        resumes from (`resume_checkpoint`, set by the AlphaRL trainers), else, for a trainer the callback was
        attached to by hand, `output_dir/checkpoint-{step}`."""
        checkpoint = Path(self.resume_checkpoint or Path(self.trainer.args.output_dir) / f"checkpoint-{step}")
        meta = load_meta(checkpoint, step)
        self.recorder.resume(checkpoint, step, meta)
        swaps = meta.get("swaps") or ([meta["swap"]] if meta.get("swap") else [])
        self.swaps = [SwapRecord.from_dict(s) for s in swaps]

    def _notify(self, event: str, label: str | None) -> None:
        for listener in self.listeners:
            listener(event, label)
