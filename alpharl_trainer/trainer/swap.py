"""WindowSwap: at a window end, build the candidates, let the gate choose, and write the choice.

The steps, in order: keep `W_K` of the owned matrices; forecast the targets (the saturation target added
when on); build the portfolio (`candidates.py`); with the gate on, write each candidate in turn and score it
on held-out prompts against `W_K` (`acceptance.py`), then pick by the bar (`decision.py`); write the winner
(or put `W_K` back), drop rollouts sampled from the old weights and resync vLLM. Every rank runs the same
steps: each matrix is computed by its owner, or identically on every rank from the shared rank-1 factors.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Callable

import torch

from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.extrapolation import forecast, predict_weight
from alpharl_trainer.extrapolation.relex import RelexFit, gram
from alpharl_trainer.extrapolation.saturation import saturation_target
from alpharl_trainer.stats import paired_se
from alpharl_trainer.trainer.acceptance import AcceptanceScorer, GateScore
from alpharl_trainer.trainer.candidates import Candidate, build_candidates, refuse_far_jump
from alpharl_trainer.trainer.decision import SwapRecord, best_over_bar
from alpharl_trainer.trainer.recorder import SnapshotRecorder

logger = logging.getLogger(__name__)


class NonFiniteCandidate(AlphaRLError):
    """A candidate whose weight of some matrix has NaN or inf values (e.g. `W_K + 1e300 (W_K - W_0)`): it is
    dropped, never written whole. Every rank holds the same value when it is found, so every rank drops it."""


class WindowSwap:
    """One window end's swap for `trainer` from the window `recorder` kept. `notify(event, label)` is called
    with the weights in question in the model: 'window' (W_K), 'candidate' (each scored one), 'decided'."""

    def __init__(
        self,
        trainer,
        recorder: SnapshotRecorder,
        notify: Callable[[str, str | None], None],
        step_seconds: float | None = None,
    ):
        self.trainer, self.recorder, self.notify = trainer, recorder, notify
        self.step_seconds = step_seconds
        """The run's mean training step so far, in seconds: the unit the swap's cost is given in."""
        self.scored = {"prompts": 0, "completions": 0, "tokens": 0}
        """What the gate generated and graded, over every candidate and rank."""
        self.config = recorder.config
        self.dropped: list[str] = []
        """The candidates dropped for NaN or inf weights (scored NaN)."""
        self.relex: RelexFit | None = None
        """RELEX's whole-model fit, when it is offered."""
        self.fits: dict[str, dict] = {}
        """Each owned matrix's fixed-basis fits by rank (one per matrix and rank, not per candidate step)."""
        self.forecast_time = 0.0
        """Seconds computing and writing candidates: the swap's time without the gate's scoring."""

    def run(self, step: int) -> SwapRecord:
        """Forecast, score, and write the winner (or keep the current weights)."""
        began = time.perf_counter()
        cfg, rec = self.config, self.recorder
        stash = rec.weights.stash(rec.names)
        self.notify("window", None)
        targets = rec.schedule.targets(rec.start)
        saturation = self._saturation() if cfg.alpharl_saturation_threshold > 0 else None
        if saturation and saturation.get("target") is not None and saturation["target"] not in targets:
            targets = [*targets, saturation["target"]]
        fits = forecast(rec.trajectory, targets[0], fit=cfg.alpharl_fit, covariate=cfg.alpharl_covariate)
        built = build_candidates(
            cfg,
            targets,
            step,
            rec.schedule.max_steps,
            len(rec.trajectory),
            lora=bool(rec.lora),
            start=rec.start,
        )
        if any(c.family == "relex" for c in built) and not self._fit_relex(stash):
            built = [c for c in built if c.family != "relex"]
        candidates = {c.label: c for c in built}
        labels = list(candidates)
        scores, paired, chosen, engine = {}, {}, labels[0], None
        reset = cfg.alpharl_optimizer_state == "reset"
        if cfg.alpharl_acceptance_prompts > 0:
            scorer = self._scorer()
            engine = scorer.engine
            scores, per_prompt = self._score(scorer, candidates, stash)
            chosen = best_over_bar(
                scores, labels, cfg.alpharl_acceptance_margin, per_prompt=per_prompt,
                margin_se=cfg.alpharl_acceptance_margin_se,
            )  # fmt: skip
            paired = {k: paired_se(per_prompt["current"], v) for k, v in per_prompt.items() if k != "current"}
        unscored = cfg.alpharl_acceptance_prompts == 0  # the jump is judged once written: reset moments after
        moved = (
            None if chosen is None else self._timed(candidates[chosen], stash, reset=reset and not unscored)
        )
        jump = None if moved is None else self._jump(moved)
        far = unscored and jump is not None  # with the gate off, the far-jump rule is the only guard
        refused = refuse_far_jump(chosen, jump, cfg.alpharl_covariate) if far else None
        if moved is None or refused:  # kept W_K: nothing beat it, or (gate off) no finite, sane candidate
            chosen, moved = None, 0.0
            self._write(None, stash)
        else:
            if reset and unscored:  # the same weights again, now resetting the moments of a jump that is kept
                self._timed(candidates[chosen], stash, reset=True)
            self._use_new_weights()
        if engine == "vllm":  # vLLM holds the last candidate scored: push the decided weights
            self.trainer.vllm_generation.sync_weights()
            self.trainer._last_loaded_step = self.trainer.state.global_step
        record = SwapRecord(
            step=step,
            targets=targets,
            candidates=labels,
            scores=scores,
            margin=cfg.alpharl_acceptance_margin,
            margin_se=cfg.alpharl_acceptance_margin_se,
            paired_se=paired,
            scoring=cfg.alpharl_acceptance_scoring,
            covariate=cfg.alpharl_covariate,
            gate_engine=engine,
            chosen=chosen,
            dropped=self.dropped,
            jump=jump,
            refused=refused,
            saturation=saturation,
            mean_fit_r2=sum(f.fit_r2 for f in fits.values()) / len(fits),
            delta_norm=moved,
            forecast_time=self.forecast_time,
            seconds=time.perf_counter() - began,
        )
        record.cost = self._cost(record.seconds)
        self.fits = {}  # the window's fits are not needed after the decision
        return record

    def _scorer(self) -> AcceptanceScorer:
        cfg, held_out = self.config, self.trainer.eval_dataset
        rows = list(held_out.select(range(min(cfg.alpharl_acceptance_prompts, len(held_out)))))
        greedy = cfg.alpharl_acceptance_scoring == "greedy"
        return AcceptanceScorer(
            self.trainer, rows, cfg.alpharl_acceptance_samples, cfg.alpharl_acceptance_seed, greedy=greedy
        )

    def _score(
        self, scorer: AcceptanceScorer, candidates: dict[str, Candidate], stash: dict[str, torch.Tensor]
    ) -> tuple[dict[str, float], dict[str, list[float]]]:
        """Score the weights now in the policy (`current`), then each candidate once written: the mean
        rewards and the per-prompt rewards, keyed `current` and the candidates' labels. A candidate that
        cannot be written (NaN or inf weights) is not sampled and scores NaN, which never wins: the gate
        keeps choosing among the others."""
        result = self._evaluate(scorer)
        scores, per_prompt = {"current": result.mean}, {"current": result.per_prompt}
        for label, candidate in candidates.items():
            if self._timed(candidate, stash) is None:
                scores[label], per_prompt[label] = math.nan, [math.nan] * len(result.per_prompt)
                continue
            result = self._evaluate(scorer)
            scores[label], per_prompt[label] = result.mean, result.per_prompt
            self.notify("candidate", label)
        return scores, per_prompt

    def _evaluate(self, scorer: AcceptanceScorer) -> GateScore:
        result = scorer.evaluate()
        self.scored["prompts"] += len(result.per_prompt)
        self.scored["completions"] += result.completions
        self.scored["tokens"] += result.tokens
        return result

    def _cost(self, seconds: float) -> dict:
        """The swap's compute: what the gate scored, and the whole swap (gate and forecast) in training-step
        equivalents: its generated tokens over a training step's (`num_input_tokens_seen` per step), and
        its seconds over the run's mean step (None where the run has no such measure yet)."""
        state = self.trainer.state
        step_tokens = state.num_input_tokens_seen / state.global_step if state.global_step else 0.0
        return {
            **self.scored,
            "seconds": seconds,
            "step_tokens": step_tokens or None,
            "step_seconds": self.step_seconds,
            "steps_by_tokens": self.scored["tokens"] / step_tokens if step_tokens else None,
            "steps_by_seconds": seconds / self.step_seconds if self.step_seconds else None,
        }

    def _saturation(self) -> dict:
        """One more target from a saturating fit of the window's reward per snapshot, or why there is none."""
        cfg, rec = self.config, self.recorder
        return saturation_target(
            rec.trajectory.steps,
            rec.trajectory.covariates.get("reward"),
            origin=rec.start,
            run_end=rec.schedule.max_steps,
            covariate=cfg.alpharl_covariate,
            threshold=cfg.alpharl_saturation_threshold,
            max_multiple=max(cfg.alpharl_horizons),
        )

    # ---- writing candidates ---------------------------------------------------------------------------
    def _write(
        self, candidate: Candidate | None, stash: dict[str, torch.Tensor], reset: bool = False
    ) -> float:
        """Write `candidate` (or W_K itself when None) into the live model on every rank, one matrix at a
        time (peak extra memory: one matrix). Returns `||W_new - W_K||` over all matrices."""
        cfg, rec, trainer = self.config, self.recorder, self.trainer
        weights, fcs = rec.weights, None
        if candidate is not None and candidate.family == "rank1":
            fcs = forecast(
                rec.trajectory, candidate.value, fit=cfg.alpharl_fit, covariate=cfg.alpharl_covariate
            )
        engine = trainer.deepspeed if getattr(trainer, "is_deepspeed_enabled", False) else None
        moved = torch.zeros((), dtype=torch.float64)
        for name in rec.names:
            owned = rec.owned(name)
            if candidate is None or (fcs is not None and cfg.alpharl_mode != "rank1_only"):
                # W_K, or an additive rank-1 correction of it computed identically on every rank
                w_k = weights.from_owner(name, stash.get(name))
                value = (
                    w_k
                    if fcs is None
                    else predict_weight(w_k, w_k, fcs[name], cfg.alpharl_mode, cfg.alpharl_scale)
                )
            else:  # needs W_0 or the window's weights: only the owner has them
                local = self._owner_weight(candidate, fcs, name, stash) if owned else None
                value = weights.from_owner(name, local)
            if not torch.isfinite(value).all():
                raise NonFiniteCandidate(f"its weight of {name} has NaN or inf values")
            if owned:
                moved += float((value.float().cpu() - stash[name].float()).norm()) ** 2
            weights.write(name, value, engine=engine, optimizer=trainer.optimizer, reset=reset)
        return float(weights.all_reduce(moved)) ** 0.5

    def _timed(self, candidate: Candidate, stash: dict, reset: bool = False) -> float | None:
        """`_write`, adding its seconds to `forecast_time`; None when the candidate is not finite: it is
        dropped with a warning and `W_K` is put back (the matrices written before the bad one included), so
        a NaN score (or, with the gate off, keeping `W_K`) follows instead of an abort after the window."""
        began = time.perf_counter()
        try:
            return self._write(candidate, stash, reset=reset)
        except NonFiniteCandidate as err:
            logger.warning("AlphaRL: candidate %s dropped: %s", candidate.label, err)
            self.dropped.append(candidate.label)
            self._write(None, stash)
            return None
        finally:
            self.forecast_time += time.perf_counter() - began

    def _owner_weight(
        self, candidate: Candidate, fcs, name: str, stash: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        """The candidate's weight of a matrix this rank owns. A fixed-basis forecast that cannot be made for
        one matrix (e.g. a degenerate profile) keeps that matrix at W_K, with a warning: the gate scores what
        was written, and an error here would leave the other ranks waiting."""
        rec = self.recorder
        w_k, w0 = stash[name], rec.base[name]
        if fcs is not None:  # rank1_only: rebuilt from W_0
            return predict_weight(w_k, w0, fcs[name], "rank1_only", self.config.alpharl_scale)
        if candidate.family == "relex":
            update = self.relex.update(rec.window_deltas(name, w_k), candidate.value - rec.start)
            return (w0.double() + update).to(w_k.dtype)
        try:
            # the matrix at a snapshot step (no window store: the family reads none)
            read = None if rec.window is None else functools.partial(rec.window.read, name=name)
            fits = self.fits.setdefault(name, {})
            profile = self.config.alpharl_basis_profile
            return candidate.weight(w_k, w0, rec.trajectory.steps, read, profile, rec.start, fits)
        except AlphaRLError as err:
            logger.warning("AlphaRL candidate %s keeps %s at W_K: %s", candidate.label, name, err)
            return w_k

    def _fit_relex(self, stash: dict[str, torch.Tensor]) -> bool:
        """RELEX's fit from the whole model's window (every rank adds its matrices' Gram part; collective).
        False, with a warning, when there is nothing to fit (every update zero): the same on every rank."""
        rec = self.recorder
        steps = rec.trajectory.steps
        total = torch.zeros(len(steps), len(steps), dtype=torch.float64)
        for name, w_k in stash.items():
            total += gram(list(rec.window_deltas(name, w_k)))
        try:
            self.relex = RelexFit.from_gram([s - rec.start for s in steps], rec.weights.all_reduce(total))
        except AlphaRLError as err:
            logger.warning("AlphaRL: RELEX candidates left out: %s", err)
            return False
        return True

    def _jump(self, moved: float) -> float:
        """`moved` (`||W_new - W_K||`) in units of the window's whole update `||W_K - W_0||` over every
        tracked matrix (from the trajectory: the same on every rank), as offline `predict` judges a jump;
        0 for a window that did not move (nothing was forecast)."""
        trajectory = self.recorder.trajectory
        update = math.sqrt(sum(float(trajectory.fro(name)[-1]) ** 2 for name in trajectory.names))
        return moved / update if update > 0 else 0.0

    def _use_new_weights(self) -> None:
        """Make the next generation use the swapped weights (TRL 1.16 GRPO/RLOO internals, pinned).

        Buffered rollouts (steps_per_generation > gradient accumulation, or num_iterations > 1) were sampled
        from the old weights: drop them. vLLM re-pulls weights only when `global_step` differs from
        `_last_loaded_step`; reset it so any generation after the swap (train or eval) re-syncs first.
        """
        if hasattr(self.trainer, "_buffered_inputs"):
            self.trainer._buffered_inputs = None
        if hasattr(self.trainer, "_last_loaded_step"):
            self.trainer._last_loaded_step = -1
