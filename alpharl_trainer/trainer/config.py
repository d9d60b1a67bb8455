"""AlphaRL settings, as a dataclass whose fields carry their docs, and the TRL configs that include them.

Every field is prefixed `alpharl_` so that it can sit beside TRL's own fields in one flat config (one
YAML recipe, one `TrlParser`) without a name clash, the way TRL prefixes its `vllm_*` fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from trl import GRPOConfig, RLOOConfig

from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.extrapolation import ParamSelector
from alpharl_trainer.extrapolation.forecast import MIN_STEPS as MIN_SNAPSHOTS
from alpharl_trainer.trainer.candidates import families_left_out, unscored_jump_warning
from alpharl_trainer.trainer.config_checks import check_fields
from alpharl_trainer.trainer.schedule import Schedule, window_length


@dataclass
class AlphaRLConfig:
    r"""
    Configuration of AlphaRL inside an RL run: where the window ends, how the rank-1 trajectory is fitted and
    written back, how candidates are judged, and what happens after the swap. Each field's `help` is its full
    documentation (`alpharl train --help` prints them; recipes in `recipes/` comment every key).

    Parameters:
        > The window

        alpharl (`bool`, defaults to `True`): turn AlphaRL on.
        alpharl_interval (`int`, defaults to `10`): steps between rank-1 snapshots of `W_t - W_0`.
        alpharl_window_end (`float`, defaults to `0.4`): the window's last step (>= 1) or share of
            `max_steps` (< 1); the forecast is made and applied there.
        alpharl_jumps (`int`, defaults to `1`): gated jumps, one per window of that length, each fitted on the
            snapshots since the previous one.

        > The forecast

        alpharl_fit (`Literal["linear", "pls"]`): the trend of `a_t = s_t u_t`.
        alpharl_covariate (`Literal["step", "reward"]`): what the trend is fitted against.
        alpharl_horizons (`list[float]`): candidate targets as multiples of the window end (step covariate).
        alpharl_saturation_threshold (`float`, defaults to `0`): also the step where a saturating fit of the
            training reward stops predicting gain, or with the reward covariate the reward it predicts at
            `max_steps` (0 = off).
        alpharl_target_rewards (`list[float]`): candidate reward levels (reward covariate).
        alpharl_mode (`Literal["rank1_replace", "rank1_only", "reference"]`): how a forecast becomes weights.
        alpharl_scale (`float`, defaults to `1.0`): shrinkage of the extrapolated step.
        alpharl_candidates (`list[str]`): the gate's portfolio, by family: the rank-1 forecast, the
            fixed-basis forecast, ExPO, the average of the last snapshots (`trainer/candidates.py`).
        alpharl_basis_ranks (`list[int]`), alpharl_basis_profile (`str`), alpharl_expo_factors
            (`list[float]`), alpharl_average_snapshots (`int`): each family's knobs.

        > The acceptance gate

        alpharl_acceptance_prompts (`int`, defaults to `64`): held-out prompts scoring each candidate; 0
            applies the first candidate unscored.
        alpharl_acceptance_samples (`int`, defaults to `4`), alpharl_acceptance_margin (`float`, defaults to
            `0.01`), alpharl_acceptance_margin_se (`float`, defaults to `0`), alpharl_acceptance_scoring
            (`Literal["sampled", "greedy"]`), alpharl_acceptance_seed (`int`), alpharl_acceptance_duplicates
            (`float`, defaults to `0.05`): samples per prompt, the win a candidate needs (in reward, and in
            paired standard errors), how completions are drawn, the seed every candidate is sampled with, and
            how close two candidates' weights must be for only the first to be scored.
        alpharl_acceptance_rule (`Literal["full", "race"]`, defaults to `"full"`), alpharl_acceptance_first
            (`int`, defaults to `16`), alpharl_acceptance_alpha (`float`, defaults to `0.05`),
            alpharl_acceptance_tolerance (`float`, defaults to `0`), alpharl_acceptance_finalists (`int`,
            defaults to `0`), alpharl_acceptance_finalists_at (`int`, defaults to `64`): every candidate on
            every prompt, or a race that drops candidates as soon as they are clearly out, can shortlist the
            leaders, and stops once the choice is clear.

        > After the swap

        alpharl_finetune_steps (`int`), alpharl_continue_after_swap (`bool`), alpharl_optimizer_state
            (`Literal["keep", "reset"]`): ordinary steps after the swap, whether to train on to `max_steps`,
            and what happens to the Adam moments of the swapped matrices.

        > Which weights

        alpharl_track_embeddings, alpharl_track_lm_head, alpharl_track_vectors (`bool`), alpharl_include,
            alpharl_exclude (`str` regex): beyond the attention and MLP projections tracked by default.
    """

    alpharl: bool = field(
        default=True,
        metadata={"help": "Enable AlphaRL: rank-1 snapshots during the window, then forecast and hot-swap."},
    )
    alpharl_interval: int = field(
        default=10,
        metadata={"help": "Optimizer steps between rank-1 snapshots of the weight update W_t - W_0."},
    )
    alpharl_window_end: float = field(
        default=0.4,
        metadata={
            "help": "Step at which the window closes and the forecast is applied: a step number if >= 1, "
            "else a fraction of max_steps (the paper: 0.4), rounded to the nearest step. Snapshots are taken "
            "every alpharl_interval steps and at the window end itself."
        },
    )
    alpharl_jumps: int = field(
        default=1,
        metadata={
            "help": "How many gated jumps the run makes (1: the paper's single jump). The window repeats: "
            "jump j is decided at step j x the window end, from the snapshots taken since the previous jump, "
            "with the weights right after that jump as W_0; the steps in between are ordinary training. The "
            "fine-tune, stop or continuation follows the last jump."
        },
    )
    alpharl_fit: Literal["linear", "pls"] = field(
        default="linear",
        metadata={
            "help": "Trend fitted to the rank-1 state a_t = s_t u_t: 'linear' (least squares) or 'pls'."
        },
    )
    alpharl_covariate: Literal["step", "reward"] = field(
        default="step",
        metadata={
            "help": "What a_t is regressed on: 'step' (no oracle needed) or 'reward' (the mean training "
            "reward between snapshots: the paper's PLS variant; candidates are then alpharl_target_rewards)."
        },
    )
    alpharl_horizons: list[float] = field(
        default_factory=lambda: [1.25, 1.5, 2.0, 2.5],
        metadata={
            "help": "Candidate forecast targets as multiples of the window-end step (covariate 'step'), "
            "rounded to whole steps. Each is scored on held-out prompts and the best one is applied (see "
            "alpharl_acceptance_prompts)."
        },
    )
    alpharl_saturation_threshold: float = field(
        default=0.0,
        metadata={
            "help": "0 = off. Otherwise (reward recorded) fit a saturating curve (exponential or power law) "
            "to the window's mean training reward per snapshot and score one more candidate from it "
            "(extrapolation/saturation.py): with covariate 'step', the saturation horizon, the step at "
            "which the gain it predicts over the next window falls under this share of the window's gain, "
            "capped at the longest of alpharl_horizons; with covariate 'reward', the reward it predicts at "
            "max_steps (the paper's target y*, read off the run's own curve instead of fixed in advance)."
        },
    )
    alpharl_target_rewards: list[float] = field(
        default_factory=lambda: [1.0],
        metadata={"help": "Candidate target reward levels (covariate 'reward'; the paper uses one, 1.0)."},
    )
    alpharl_mode: Literal["rank1_replace", "rank1_only", "reference"] = field(
        default="rank1_replace",
        metadata={
            "help": "How a forecast becomes weights: 'rank1_replace' (W_K + (a_hat - a_K) v^T), 'rank1_only' "
            "(W_0 + c a_hat v^T, the paper's rank-1 model) or 'reference' (W_K + a_hat v^T, the reference "
            "scripts; comparison only)."
        },
    )
    alpharl_scale: float = field(
        default=1.0,
        metadata={"help": "Shrinkage of the extrapolated step (1 = the straight-line forecast itself)."},
    )
    alpharl_candidates: list[str] = field(
        default_factory=lambda: ["rank1", "fixed_basis", "expo", "average"],
        metadata={
            "help": "The families of candidates the gate chooses from (with the option to keep the current "
            "weights): 'rank1' (the rank-1 forecast at each target), 'fixed_basis' (the denoised fixed-basis "
            "forecast at each target step, extrapolation/fixed_basis.py), 'expo' (W_K + a (W_K - W_0)), "
            "'average' (the mean of the last alpharl_average_snapshots snapshots' weights) and 'relex' "
            "(RELEX: rank-1 in time of the whole model's deltas, to each target step; not in the default, "
            "see results/reproduce/READING.md). 'fixed_basis', 'average' and 'relex' keep each snapshot's "
            "tracked weights on disk under output_dir/alpharl/window/ (one copy per snapshot)."
        },
    )
    alpharl_basis_ranks: list[int] = field(
        default_factory=lambda: [1, 4],
        metadata={
            "help": "'fixed_basis': the ranks k of the right singular subspace the window's updates are "
            "projected on; one candidate per rank and target step."
        },
    )
    alpharl_basis_profile: Literal["linear", "saturating"] = field(
        default="saturating",
        metadata={
            "help": "'fixed_basis': how the shared time profile is extrapolated: a line through the origin "
            "or a saturating curve (exponential or power law, whichever fits the window better)."
        },
    )
    alpharl_expo_factors: list[float] = field(
        default_factory=lambda: [0.1, 0.25, 0.5, 1.0, 2.0],
        metadata={
            "help": "'expo': the factors a of W_K + a (W_K - W_0), plus the straight line to max_steps "
            "(a = max_steps / window end - 1)."
        },
    )
    alpharl_average_snapshots: int = field(
        default=4,
        metadata={"help": "'average': how many of the window's last snapshots are averaged (W_K included)."},
    )
    alpharl_acceptance_prompts: int = field(
        default=64,
        metadata={
            "help": "Held-out prompts (from eval_dataset) on which the current weights and every candidate "
            "are scored by mean reward, sampled as in training. The best candidate is applied only if it "
            "beats the current weights; otherwise they are kept (rollback). 0 applies the first candidate "
            "unscored."
        },
    )
    alpharl_acceptance_samples: int = field(
        default=4, metadata={"help": "Completions sampled per acceptance prompt."}
    )
    alpharl_acceptance_margin: float = field(
        default=0.01,
        metadata={
            "help": "A candidate is applied only if its acceptance score beats the current weights' by more "
            "than this (fixed in advance: a tie or a one-completion win keeps the current weights)."
        },
    )
    alpharl_acceptance_margin_se: float = field(
        default=0.0,
        metadata={
            "help": "Also require the win to exceed this many paired standard errors of the per-prompt "
            "difference to the current weights (e.g. 2): a bar that scales with the held-out set's noise."
        },
    )
    alpharl_acceptance_scoring: Literal["sampled", "greedy", "exact", "exact_greedy"] = field(
        default="sampled",
        metadata={
            "help": "'sampled': completions sampled as in training (alpharl_acceptance_samples per prompt). "
            "'greedy': one greedy completion per prompt, for tasks with a verifier whose greedy answer is "
            "what gets evaluated (less noisy; the samples setting is ignored). 'exact' and 'exact_greedy': "
            "the same two scores without generating, from one teacher-forced pass over each prompt's gold "
            "completion (the probability the sampler writes it; whether greedy decoding does): for a "
            "synthetic task's exact-answer reward only, with no sampling noise (reference_scoring.py)."
        },
    )
    alpharl_acceptance_seed: int = field(
        default=1234,
        metadata={
            "help": "Sampling seed for acceptance: every candidate is scored with the same random numbers "
            "(common random numbers make the comparison far less noisy). The training RNG is untouched."
        },
    )
    alpharl_acceptance_rule: Literal["full", "race"] = field(
        default="full",
        metadata={
            "help": "'full': every candidate on every acceptance prompt. 'race': all of them on the first "
            "alpharl_acceptance_first prompts, then on twice as many each look, dropping the candidates that "
            "cannot clear the bar or are significantly behind the leader, and stopping once the choice is "
            "clear; at the last look the full rule decides among those left (trainer/racing.py)."
        },
    )
    alpharl_acceptance_first: int = field(
        default=16, metadata={"help": "'race': prompts scored at the first look (each later look doubles)."}
    )
    alpharl_acceptance_alpha: float = field(
        default=0.05,
        metadata={
            "help": "'race': probability of any wrong early decision (dropping a candidate that truly clears "
            "the bar or is truly best, or stopping with one that does not clear it), by a union bound over "
            "every look and candidate."
        },
    )
    alpharl_acceptance_tolerance: float = field(
        default=0.0,
        metadata={
            "help": "'race': a held-out score difference it need not resolve: it drops a candidate that "
            "cannot beat the current weights by the margin plus this, and stops with the leader once no "
            "survivor can beat it by more than this (0: only once the leader is alone). An early decision is "
            "then within this of the best one, with probability 1 - alpharl_acceptance_alpha."
        },
    )
    alpharl_acceptance_finalists: int = field(
        default=0,
        metadata={
            "help": "'race': with k > 0, at the first look of alpharl_acceptance_finalists_at prompts or "
            "more only the k survivors with the highest means go on to the last look (a shortlist: most of a "
            "portfolio's cost is its near-tied candidates scored on every prompt), ranked under exact "
            "scoring by the gold completion's probability (smoother than a greedy outcome); 0 keeps all. "
            "A heuristic cut, not a test: the reproduction suite's windows chose 2 at 64 (README)."
        },
    )
    alpharl_acceptance_finalists_at: int = field(
        default=64, metadata={"help": "'race': prompts scored by every survivor before the shortlist is cut."}
    )
    alpharl_acceptance_duplicates: float = field(
        default=0.05,
        metadata={
            "help": "Score only the first of candidates whose weights differ by at most this share of the "
            "window's whole update ||W_K - W_0|| (e.g. the rank-1 line and the fixed-basis k=1 forecast to "
            "the nearest step): moving the weights 5% of the window's update changes a score by about 5% of "
            "the window's gain, under the acceptance margin in a typical window (0 = score all)."
        },
    )
    alpharl_finetune_steps: int = field(
        default=0, metadata={"help": "Optimizer steps of ordinary training after the swap before stopping."}
    )
    alpharl_continue_after_swap: bool = field(
        default=False,
        metadata={"help": "Train on to max_steps after the swap (and fine-tune) instead of stopping."},
    )
    alpharl_optimizer_state: Literal["keep", "reset"] = field(
        default="keep",
        metadata={"help": "Adam moments of swapped matrices after a swap: 'keep' or 'reset' (zero them)."},
    )
    alpharl_track_embeddings: bool = field(default=False, metadata={"help": "Also extrapolate embeddings."})
    alpharl_track_lm_head: bool = field(
        default=False, metadata={"help": "Also extrapolate an untied lm_head."}
    )
    alpharl_track_vectors: bool = field(
        default=False, metadata={"help": "Also extrapolate 1-D parameters (norms, biases)."}
    )
    alpharl_include: str | None = field(
        default=None, metadata={"help": "Regex of extra parameter names to track."}
    )
    alpharl_exclude: str | None = field(
        default=None, metadata={"help": "Regex of parameter names never to track (wins over everything)."}
    )

    def __post_init__(self):
        parent = getattr(super(), "__post_init__", None)
        if parent is not None:  # TRL's config first (AlphaRLGRPOConfig and the others)
            parent()
        check_fields(self)
        if self.alpharl and hasattr(self, "max_steps"):  # a trainer's config: the run's length is known
            self.validate_alpharl(self.max_steps)

    def validate_alpharl(self, max_steps: int) -> str | None:
        """Raise AlphaRLError for a run of `max_steps` this config cannot serve (a window that never closes,
        too few snapshots, no family it can offer): at construction for a trainer's config, by the planner,
        and when the callback is attached. Returns the warning for a far jump applied unscored, or None."""
        schedule = self.schedule(max_steps)
        end = schedule.length
        if max_steps > 0 and end > max_steps:
            raise AlphaRLError(
                f"the AlphaRL window ends at step {end}, after max_steps {max_steps}: the forecast would "
                "never run; lower alpharl_window_end or raise max_steps"
            )
        if max_steps > 0 and schedule.jump_steps[-1] > max_steps:
            raise AlphaRLError(
                f"alpharl_jumps {self.alpharl_jumps} windows of {end} steps end at step "
                f"{schedule.jump_steps[-1]}, after max_steps {max_steps}: lower one of them"
            )
        snapshots = schedule.snapshot_steps()
        if len(snapshots) < MIN_SNAPSHOTS:
            raise AlphaRLError(
                f"the window (ends at step {end}) holds {len(snapshots)} snapshot(s) at alpharl_interval="
                f"{self.alpharl_interval} (steps {snapshots}); a line fit needs {MIN_SNAPSHOTS}: lower the "
                "interval or widen the window"
            )
        left_out = families_left_out(self, len(snapshots))
        if set(left_out) == set(self.alpharl_candidates):
            reasons = "; ".join(f"{family}: {why}" for family, why in left_out.items())
            raise AlphaRLError(f"no candidate family of alpharl_candidates can be offered ({reasons})")
        return unscored_jump_warning(self, schedule)

    def schedule(self, max_steps: int) -> Schedule:
        """When AlphaRL acts in a run of `max_steps` (window ends, snapshots, targets, the stop)."""
        return Schedule(
            max_steps=max_steps,
            length=window_length(self.alpharl_window_end, max_steps),
            interval=self.alpharl_interval,
            jumps=self.alpharl_jumps,
            covariate=self.alpharl_covariate,
            horizons=tuple(self.alpharl_horizons),
            target_rewards=tuple(self.alpharl_target_rewards),
            finetune_steps=self.alpharl_finetune_steps,
            continue_after_swap=self.alpharl_continue_after_swap,
        )

    def selector(self) -> ParamSelector:
        return ParamSelector(
            embeddings=self.alpharl_track_embeddings,
            lm_head=self.alpharl_track_lm_head,
            vectors=self.alpharl_track_vectors,
            include=self.alpharl_include,
            exclude=self.alpharl_exclude,
        )


@dataclass
class AlphaRLGRPOConfig(AlphaRLConfig, GRPOConfig):
    """TRL's GRPOConfig (GRPO, DAPO, Dr. GRPO, GSPO by its loss settings) plus the AlphaRL fields."""


@dataclass
class AlphaRLRLOOConfig(AlphaRLConfig, RLOOConfig):
    """TRL's RLOOConfig plus the AlphaRL fields."""
