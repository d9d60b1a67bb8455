"""The gate's decision at the window end: which candidate to apply, if any, what was decided (`SwapRecord`),
and how to say so in one line."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from alpharl_trainer.trainer.candidates import describe, short


@dataclass
class SwapRecord:
    """What happened at one window end. The log line, the model card, the run summary and every checkpoint's
    state read it; `to_dict`/`from_dict` are its JSON form (summary.json, state.json)."""

    step: int
    targets: list[float]
    """The forecast targets, in the covariate's units (the saturation target appended when there is one)."""
    candidates: list[str] = field(default_factory=list)
    """Every candidate's label, in the order built and scored."""
    collapsed: dict[str, str] = field(default_factory=dict)
    """Candidates left out of scoring as near duplicates: label -> the scored twin it stands for."""
    eliminated: dict[str, str] = field(default_factory=dict)
    """With the race (`alpharl_acceptance_rule: race`): the candidates dropped before the last look, and
    why; their `scores` are means over fewer prompts."""
    scores: dict[str, float] = field(default_factory=dict)
    """Held-out score of `current` (W_K) and of each candidate; empty with the gate off."""
    per_prompt: dict[str, list[float]] = field(default_factory=dict)
    """Each scored model's score on every held-out prompt it was scored on, in prompt order (`current` too):
    the decision can be re-derived, and any other rule replayed on the same outcomes."""
    per_prompt_probability: dict[str, list[float]] = field(default_factory=dict)
    """With reference scoring, the same for each prompt's probability of the gold completion
    (`GateScore.probability`: what a race's shortlist ranks by)."""
    margin: float = 0.0
    margin_se: float = 0.0
    paired_se: dict[str, float] = field(default_factory=dict)
    """Each candidate's paired standard error of its per-prompt difference to `current`."""
    scoring: str = "sampled"
    covariate: str = "step"
    gate_engine: str | None = None
    """'vllm' or 'transformers' (None with the gate off)."""
    chosen: str | None = None
    """The applied candidate's label; None when the current weights were kept."""
    dropped: list[str] = field(default_factory=list)
    """Candidates dropped for NaN or inf weights (scored NaN)."""
    jump: float | None = None
    """How far the applied weights moved, in units of the window's whole update `||W_K - W_0||`."""
    refused: str | None = None
    """With the gate off: why the jump was refused (the current weights were kept)."""
    saturation: dict | None = None
    mean_fit_r2: float = float("nan")
    delta_norm: float = 0.0
    """`||W_new - W_K||` over every tracked matrix."""
    forecast_time: float = 0.0
    """Seconds computing and writing candidates: the swap's time without the gate's scoring."""
    seconds: float = 0.0
    """The swap's wall time: forecast, gate and write (the listeners' time, such as the run report's test
    scoring, left out)."""
    cost: dict = field(default_factory=dict)
    """The swap's compute: `prompts`, `completions` and `tokens` the gate scored (over every candidate and
    rank), `seconds`, and the whole swap in training-step equivalents, by tokens (`steps_by_tokens`, against
    `step_tokens` per step), by forward passes (`steps_by_flops`, an estimate: a trained token costs about
    four of a gate token's one) and by seconds (`steps_by_seconds`, against the run's mean `step_seconds`)."""

    @property
    def chosen_target(self) -> float:
        """The applied rank-1 candidate's target (its label is the bare target); NaN for any other choice."""
        try:
            return float(self.chosen)
        except (TypeError, ValueError):
            return float("nan")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, saved: dict) -> SwapRecord:
        """A record from its JSON form; keys a newer version added take their defaults."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in saved.items() if k in names})

    def logs(self) -> dict[str, float]:
        """The metrics a swap adds to the trainer's next log."""
        return {
            "alpharl/swap_time": self.seconds,
            "alpharl/forecast_time": self.forecast_time,
            "alpharl/mean_fit_r2": self.mean_fit_r2,
            "alpharl/chosen_target": self.chosen_target,
            "alpharl/rolled_back": float(self.chosen is None),
            "alpharl/candidates": float(len(self.candidates)),
            "alpharl/swap_delta_norm": self.delta_norm,
            **{f"alpharl/gate_{k}": float(v) for k, v in self.cost.items() if v is not None},
            **{f"alpharl/score/{k}": v for k, v in self.scores.items()},
        }


def describe_decision(swap: SwapRecord) -> str:
    """The gate's decision in one line, e.g. 'AlphaRL at step 60: applied the forecast to step 150 (held-out
    reward 0.361 vs 0.344 for the current weights, margin 0.01; others: 75 0.350, ...)'. Candidates are
    labelled (`candidates.py`): a rank-1 candidate by its target, a step or a reward level with the reward
    covariate."""
    scores = dict(swap.scores)
    current = scores.pop("current", None)
    head = f"AlphaRL at step {swap.step}: "
    dropped = f"; dropped for NaN or inf weights: {', '.join(swap.dropped)}" if swap.dropped else ""
    twins = ", ".join(
        f"{short(k, swap.covariate)} as {short(v, swap.covariate)}" for k, v in swap.collapsed.items()
    )
    collapsed = f"; near duplicates scored once: {twins}" if twins else ""
    if swap.eliminated:
        collapsed += f"; the race dropped {len(swap.eliminated)} of {len(swap.candidates)} early"
    return head + _decision(swap, scores, current, swap.covariate) + dropped + collapsed + _cost(swap.cost)


def _cost(cost: dict) -> str:
    """The swap's compute for the end of the decision line ('' for a record that has none)."""
    if not cost:
        return ""
    units = {"steps_by_tokens": "by tokens", "steps_by_flops": "by FLOPs", "steps_by_seconds": "by time"}
    steps = [f"{cost[k]:.1f} {unit}" for k, unit in units.items() if cost.get(k) is not None]
    if not cost["prompts"]:
        scored = "no gate"
    elif not cost["completions"]:  # exact scoring reads gold completions, generates none
        scored = f"{cost['prompts']:,} gold completions read teacher-forced"
    else:
        scored = f"{cost['completions']:,} completions on {cost['prompts']:,} prompts"
    in_steps = f" = {' / '.join(steps)} training steps" if steps else ""
    return f"; cost: {scored}, {cost['seconds']:.2f} s{in_steps}"


def _decision(swap: SwapRecord, scores: dict[str, float], current: float | None, unit: str) -> str:
    """What was decided, after the line's head; `scores` are the candidates' (`current` apart)."""
    others = ", ".join(f"{short(k, unit)} {v:.3f}" for k, v in scores.items())
    chosen = swap.chosen
    if current is None:
        if chosen is None:
            refused = f": refused {swap.refused}" if swap.refused else ""
            return f"kept the current weights unscored (acceptance gate off){refused}"
        return f"applied {describe(chosen, unit)} unscored (acceptance gate off)"
    bar = f"the margin {swap.margin:g}"
    if swap.margin_se:
        bar += f" + {swap.margin_se:g} paired SE"
    if chosen is None:
        return (
            f"rollback: kept the current weights (held-out reward {current:.3f}); no candidate beat them "
            f"by more than {bar} (candidates: {others})"
        )
    return (
        f"applied {describe(chosen, unit)} (held-out reward {scores[chosen]:.3f} vs {current:.3f} for "
        f"the current weights, {bar}; candidates: {others})"
    )
