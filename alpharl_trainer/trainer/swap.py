"""WindowSwap: at a window end, build the candidates, let the gate choose, and write the choice.

The steps, in order: keep `W_K` of the owned matrices; forecast the targets (the saturation target added
when on); build the portfolio (`candidates.py`); with the gate on, write each candidate in turn and score it
on held-out prompts against `W_K` (`acceptance.py`), then pick by the bar (`decision.py`); write the winner
(or put `W_K` back), drop rollouts sampled from the old weights and resync vLLM. Every rank runs the same
steps: each matrix is computed by its owner, or identically on every rank from the shared rank-1 factors.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

import torch

from alpharl_trainer.extrapolation import forecast
from alpharl_trainer.extrapolation.saturation import saturation_target
from alpharl_trainer.extrapolation.sketch import sketch, twins
from alpharl_trainer.stats import paired_se
from alpharl_trainer.trainer.acceptance import AcceptanceScorer, GateScore
from alpharl_trainer.trainer.candidate_writer import CandidateWriter
from alpharl_trainer.trainer.candidates import Candidate, build_candidates, refuse_far_jump
from alpharl_trainer.trainer.decision import SwapRecord
from alpharl_trainer.trainer.racing import Race, best_over_bar
from alpharl_trainer.trainer.recorder import SnapshotRecorder
from alpharl_trainer.trainer.reference_scoring import ReferenceScorer

logger = logging.getLogger(__name__)

FORWARDS_PER_TRAINED_TOKEN = 4
"""Forward-pass equivalents of one token of a training step: generated (1), then the loss's forward and
backward (~3; a backward pass costs about two forwards)."""


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
        self.trainer, self.recorder, self._listeners = trainer, recorder, notify
        self.listening = 0.0
        """Seconds spent in the listeners (e.g. the run report scoring each candidate on the test split):
        not the swap's cost, so left out of its seconds."""
        self.step_seconds = step_seconds
        """The run's mean training step so far, in seconds: the unit the swap's cost is given in."""
        self.scored = {"prompts": 0, "completions": 0, "tokens": 0}
        """What the gate generated and graded, over every candidate and rank."""
        self.config = recorder.config
        self.writer = CandidateWriter(trainer, recorder)

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
        if any(c.family == "relex" for c in built) and not self.writer.fit_relex(stash):
            built = [c for c in built if c.family != "relex"]
        collapsed = self._collapse(built, stash) if len(built) > 1 else {}
        candidates = {c.label: c for c in built if c.label not in collapsed}
        labels = list(candidates)
        scores, per_prompt, paired, chosen, engine = {}, {}, {}, labels[0], None
        probability: dict[str, list[float]] = {}
        reset = cfg.alpharl_optimizer_state == "reset"
        eliminated: dict[str, str] = {}
        if cfg.alpharl_acceptance_prompts > 0:
            held_out = self.trainer.eval_dataset
            rows = list(held_out.select(range(min(cfg.alpharl_acceptance_prompts, len(held_out)))))
            if cfg.alpharl_acceptance_rule == "race":
                race, engine = self._race(rows, candidates, stash)
                scores, per_prompt, chosen = race.scores(), race.per_prompt(), race.decision()
                eliminated, probability = race.dropped(), race.per_prompt_ranking()
            else:
                scorer = self._scorer(rows, cfg.alpharl_acceptance_seed)
                engine = scorer.engine
                scores, per_prompt, probability = self._score(scorer, candidates, stash)
                chosen = best_over_bar(
                    scores, labels, cfg.alpharl_acceptance_margin, per_prompt=per_prompt,
                    margin_se=cfg.alpharl_acceptance_margin_se,
                )  # fmt: skip
            current = per_prompt["current"]
            paired = {k: paired_se(current[: len(v)], v) for k, v in per_prompt.items() if k != "current"}
        unscored = cfg.alpharl_acceptance_prompts == 0  # the jump is judged once written: reset moments after
        moved = (
            None
            if chosen is None
            else self.writer.write(candidates[chosen], stash, reset=reset and not unscored)
        )
        jump = None if moved is None else self._jump(moved)
        far = unscored and jump is not None  # with the gate off, the far-jump rule is the only guard
        refused = refuse_far_jump(chosen, jump, cfg.alpharl_covariate) if far else None
        if moved is None or refused:  # kept W_K: nothing beat it, or (gate off) no finite, sane candidate
            chosen, moved = None, 0.0
            self.writer.write_exact(None, stash)
        else:
            if reset and unscored:  # the same weights again, now resetting the moments of a jump that is kept
                self.writer.write(candidates[chosen], stash, reset=True)
            self._use_new_weights()
        if engine == "vllm":  # vLLM holds the last candidate scored: push the decided weights
            self.trainer.vllm_generation.sync_weights()
            self.trainer._last_loaded_step = self.trainer.state.global_step
        record = SwapRecord(
            step=step,
            targets=targets,
            candidates=labels,
            collapsed=collapsed,
            eliminated=eliminated,
            scores=scores,
            per_prompt=per_prompt,
            per_prompt_probability=probability,
            margin=cfg.alpharl_acceptance_margin,
            margin_se=cfg.alpharl_acceptance_margin_se,
            paired_se=paired,
            scoring=cfg.alpharl_acceptance_scoring,
            covariate=cfg.alpharl_covariate,
            gate_engine=engine,
            chosen=chosen,
            dropped=self.writer.dropped,
            jump=jump,
            refused=refused,
            saturation=saturation,
            mean_fit_r2=sum(f.fit_r2 for f in fits.values()) / len(fits),
            delta_norm=moved,
            forecast_time=self.writer.forecast_time,
            seconds=time.perf_counter() - began - self.listening,
        )
        record.cost = self._cost(record.seconds)
        return record

    def _collapse(self, built: list[Candidate], stash: dict[str, torch.Tensor]) -> dict[str, str]:
        """`{label: twin}` for the candidates left out as near duplicates of an earlier one (within
        `alpharl_acceptance_duplicates` of the window's whole update), from sketches of every candidate's
        owned matrices (collective: the Gram matrix of the sketches is summed over ranks)."""
        tolerance, rec, writer = self.config.alpharl_acceptance_duplicates, self.recorder, self.writer
        if tolerance <= 0 or self.config.alpharl_acceptance_prompts == 0:
            return {}
        began = time.perf_counter()
        forecasts = [writer.forecasts(c) for c in built]
        gram = torch.zeros(len(built), len(built), dtype=torch.float64)
        for name, w_k in stash.items():  # the owned matrices, one at a time
            rows = []
            for candidate, fcs in zip(built, forecasts, strict=True):
                value = writer.owner_value(candidate, fcs, name, stash)
                rows.append(sketch(value.double() - w_k.double(), name))
            sketches = torch.nan_to_num(torch.stack(rows), nan=1e300, posinf=1e300, neginf=-1e300)
            gram += sketches @ sketches.T
        gram = rec.weights.all_reduce(gram)
        twin = twins(gram, self._update_norm(), tolerance)
        writer.forecast_time += time.perf_counter() - began
        out = {built[i].label: built[j].label for i, j in twin.items()}
        if out:
            logger.info("AlphaRL: near duplicates left out of scoring: %s", out)
        return out

    def notify(self, event: str, label: str | None) -> None:
        began = time.perf_counter()
        self._listeners(event, label)
        self.listening += time.perf_counter() - began

    def _scorer(self, rows: list[dict], seed: int) -> AcceptanceScorer:
        scoring = self.config.alpharl_acceptance_scoring
        greedy = scoring in ("greedy", "exact_greedy")
        if scoring.startswith("exact"):
            return ReferenceScorer(self.trainer, rows, seed, greedy=greedy)
        samples = self.config.alpharl_acceptance_samples
        return AcceptanceScorer(self.trainer, rows, samples, seed, greedy=greedy)

    def _race(self, rows: list[dict], candidates: dict[str, Candidate], stash: dict[str, torch.Tensor]):
        """The gate as a race (`racing.py`): at each look `current` and every survivor are scored on the
        look's new prompts, with one seed per look for all of them (common random numbers). Returns the
        decided `Race` (its scores over the prompts each was scored on, choice, and what it dropped early and
        why) and the generation engine."""
        cfg = self.config
        race = Race(
            list(candidates), len(rows), cfg.alpharl_acceptance_margin, cfg.alpharl_acceptance_margin_se,
            alpha=cfg.alpharl_acceptance_alpha, first=cfg.alpharl_acceptance_first,
            tolerance=cfg.alpharl_acceptance_tolerance, finalists=cfg.alpharl_acceptance_finalists,
            finalists_at=cfg.alpharl_acceptance_finalists_at,
        )  # fmt: skip
        notified = set()
        while True:
            prompts = race.next_prompts()
            scorer = self._scorer(
                rows[prompts.start : prompts.stop], cfg.alpharl_acceptance_seed + prompts.start
            )
            if prompts.start:  # W_K back in the model: `current` is scored on the new prompts too
                self.writer.write_exact(None, stash)
            result = self._evaluate(scorer)
            race.record("current", result.per_prompt, result.probability)
            for label in race.survivors():
                if self.writer.write(candidates[label], stash) is None:  # NaN or inf: the race drops it
                    race.record(label, [math.nan] * len(prompts))
                    continue
                result = self._evaluate(scorer)
                race.record(label, result.per_prompt, result.probability)
                if label not in notified:  # once, with its weights in the model
                    self.notify("candidate", label)
                    notified.add(label)
            if race.step():
                return race, scorer.engine

    def _score(
        self, scorer: AcceptanceScorer, candidates: dict[str, Candidate], stash: dict[str, torch.Tensor]
    ) -> tuple[dict[str, float], dict[str, list[float]], dict[str, list[float]]]:
        """Score the weights now in the policy (`current`), then each candidate once written: the mean
        rewards, the per-prompt rewards and (reference scoring) the per-prompt probabilities of the gold
        completion, keyed `current` and the candidates' labels. A candidate that
        cannot be written (NaN or inf weights) is not sampled and scores NaN, which never wins: the gate
        keeps choosing among the others."""
        scores, per_prompt, probability = {}, {}, {}
        for label, candidate in {"current": None, **candidates}.items():
            if label != "current" and self.writer.write(candidate, stash) is None:
                scores[label], per_prompt[label] = math.nan, [math.nan] * len(per_prompt["current"])
                continue
            result = self._evaluate(scorer)
            scores[label], per_prompt[label] = result.mean, result.per_prompt
            if result.probability is not None:
                probability[label] = result.probability
            if label != "current":
                self.notify("candidate", label)
        return scores, per_prompt, probability

    def _evaluate(self, scorer: AcceptanceScorer) -> GateScore:
        result = scorer.evaluate()
        self.scored["prompts"] += len(result.per_prompt)
        self.scored["completions"] += result.completions
        self.scored["tokens"] += result.tokens
        return result

    def _cost(self, seconds: float) -> dict:
        """The swap's compute: what the gate scored, and the whole swap (gate and forecast) in training-step
        equivalents: its tokens over a training step's (`num_input_tokens_seen` per step); the same in
        forward passes (`steps_by_flops`: a gate token is one forward pass through the policy, a training
        step's token at least four, one when it is generated and about three for the loss's forward and
        backward: an estimate, a lower one with a reference model or old log-probs); and its seconds over
        the run's mean step (None where the run has no such measure yet)."""
        state = self.trainer.state
        step_tokens = state.num_input_tokens_seen / state.global_step if state.global_step else 0.0
        return {
            **self.scored,
            "seconds": seconds,
            "step_tokens": step_tokens or None,
            "step_seconds": self.step_seconds,
            "steps_by_tokens": self.scored["tokens"] / step_tokens if step_tokens else None,
            "steps_by_flops": self.scored["tokens"] / (FORWARDS_PER_TRAINED_TOKEN * step_tokens)
            if step_tokens
            else None,
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

    def _jump(self, moved: float) -> float:
        """`moved` (`||W_new - W_K||`) in units of the window's whole update `||W_K - W_0||` over every
        tracked matrix (from the trajectory: the same on every rank), as offline `predict` judges a jump;
        0 for a window that did not move (nothing was forecast)."""
        update = self._update_norm()
        return moved / update if update > 0 else 0.0

    def _update_norm(self) -> float:
        """`||W_K - W_0||` over every tracked matrix, from the trajectory: the same on every rank."""
        trajectory = self.recorder.trajectory
        return math.sqrt(sum(float(trajectory.fro(name)[-1]) ** 2 for name in trajectory.names))

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
