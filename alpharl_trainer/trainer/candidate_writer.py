"""CandidateWriter: a candidate's weights, matrix by matrix, into the live model on every rank.

A matrix is computed by its owner (which holds `W_0`, `W_K` and the window's weights) and sent to the others,
or, for a rank-1 correction of `W_K`, computed identically on every rank from the shared factors. A candidate
whose weights turn out NaN or inf is dropped and `W_K` put back, so the gate scores the others instead of the
run aborting after the whole window.
"""

from __future__ import annotations

import functools
import logging
import time

import torch

from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.extrapolation import forecast, predict_weight
from alpharl_trainer.extrapolation.relex import RelexFit, gram
from alpharl_trainer.trainer.candidates import Candidate
from alpharl_trainer.trainer.recorder import SnapshotRecorder

logger = logging.getLogger(__name__)


class NonFiniteCandidate(AlphaRLError):
    """A candidate whose weight of some matrix has NaN or inf values (e.g. `W_K + 1e300 (W_K - W_0)`): it is
    dropped, never written whole. Every rank holds the same value when it is found, so every rank drops it."""


class CandidateWriter:
    """Writes candidates of one window end (from `recorder`'s window) into `trainer`'s model."""

    def __init__(self, trainer, recorder: SnapshotRecorder):
        self.trainer, self.recorder, self.config = trainer, recorder, recorder.config
        self.dropped: list[str] = []
        """The candidates dropped for NaN or inf weights (scored NaN)."""
        self.relex: RelexFit | None = None
        """RELEX's whole-model fit, when it is offered."""
        self.fits: dict[str, dict] = {}
        """Each owned matrix's fixed-basis fits by rank (one per matrix and rank, not per candidate step)."""
        self.forecast_time = 0.0
        """Seconds computing and writing candidates: the swap's time without the gate's scoring."""

    def write_exact(
        self, candidate: Candidate | None, stash: dict[str, torch.Tensor], reset: bool = False
    ) -> float:
        """Write `candidate` (or W_K itself when None) into the live model on every rank, one matrix at a
        time (peak extra memory: one matrix). Returns `||W_new - W_K||` over all matrices."""
        cfg, rec, trainer = self.config, self.recorder, self.trainer
        weights = rec.weights
        fcs = None if candidate is None else self.forecasts(candidate)
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
                local = self.owner_weight(candidate, fcs, name, stash) if owned else None
                value = weights.from_owner(name, local)
            if not torch.isfinite(value).all():
                raise NonFiniteCandidate(f"its weight of {name} has NaN or inf values")
            if owned:
                moved += float((value.float().cpu() - stash[name].float()).norm()) ** 2
            weights.write(name, value, engine=engine, optimizer=trainer.optimizer, reset=reset)
        return float(weights.all_reduce(moved)) ** 0.5

    def write(self, candidate: Candidate, stash: dict, reset: bool = False) -> float | None:
        """`write_exact`, adding its seconds to `forecast_time`; None when the candidate is not finite: it is
        dropped with a warning and `W_K` is put back (the matrices written before the bad one included), so
        a NaN score (or, with the gate off, keeping `W_K`) follows instead of an abort after the window."""
        began = time.perf_counter()
        try:
            return self.write_exact(candidate, stash, reset=reset)
        except NonFiniteCandidate as err:
            logger.warning("AlphaRL: candidate %s dropped: %s", candidate.label, err)
            self.dropped.append(candidate.label)
            self.write_exact(None, stash)
            return None
        finally:
            self.forecast_time += time.perf_counter() - began

    def owner_value(
        self, candidate: Candidate, fcs, name: str, stash: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        """What `write_exact` would write for an owned matrix (`fcs`: the candidate's rank-1 forecasts)."""
        cfg = self.config
        if fcs is not None and cfg.alpharl_mode != "rank1_only":
            return predict_weight(stash[name], stash[name], fcs[name], cfg.alpharl_mode, cfg.alpharl_scale)
        return self.owner_weight(candidate, fcs, name, stash)

    def forecasts(self, candidate: Candidate):
        """The rank-1 forecasts a rank-1 candidate writes (None for the other families)."""
        if candidate.family != "rank1":
            return None
        cfg = self.config
        return forecast(
            self.recorder.trajectory, candidate.value, fit=cfg.alpharl_fit, covariate=cfg.alpharl_covariate
        )

    def owner_weight(
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

    def fit_relex(self, stash: dict[str, torch.Tensor]) -> bool:
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
