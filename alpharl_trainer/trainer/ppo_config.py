"""PPO settings: TRL's RLOOConfig (generation, rollout batching, clipping, KL reference, vLLM) + a critic.

TRL 1.16 has no PPO trainer; `PPOTrainer` (ppo.py) reuses RLOOTrainer's rollout machinery, so the batching
fields keep their TRL meaning and become PPO's loop:

- a rollout batch is `generation_batch_size` completions (`num_generations` per prompt), sampled at once;
- it is shuffled and split into `steps_per_generation` micro-batches of `per_device_train_batch_size` per
  device; every `gradient_accumulation_steps` of them make one optimizer step (a PPO mini-batch);
- the rollout is reused for `num_iterations` PPO epochs (same split), then a new one is sampled.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import RLOOConfig

from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.trainer.config import AlphaRLConfig

VALUE_MODEL = "value_model"
"""Attribute of the policy holding the critic, hence the prefix of the critic's parameter names."""
VALUE_MODELS = ("head", "separate")
KL_ESTIMATORS = ("k1", "k3")


@dataclass
class PPOConfig(RLOOConfig):
    """RLOOConfig's fields (see TRL) plus PPO's critic, GAE and value-loss settings."""

    value_model: str = field(
        default="head",
        metadata={
            "help": "Critic: 'head' (a linear value head on the policy's own last hidden state: one "
            "forward gives log-probs and values; the value loss also trains the shared backbone) or "
            "'separate' (a copy of the policy backbone with its own head, trained only by the value loss)."
        },
    )
    gamma: float = field(default=1.0, metadata={"help": "Discount factor of GAE (1 = undiscounted)."})
    lam: float = field(
        default=0.95,
        metadata={"help": "GAE lambda: 1 = Monte-Carlo returns minus the value baseline, 0 = one-step TD."},
    )
    vf_coef: float = field(default=0.1, metadata={"help": "Weight of the value loss in the total loss."})
    epsilon_value: float = field(
        default=0.2,
        metadata={"help": "Value clipping: a new value may move at most this far from the rollout's value."},
    )
    value_learning_rate: float | None = field(
        default=None,
        metadata={
            "help": "Learning rate of the critic's own parameters (value head, separate backbone); None = "
            "learning_rate. Follows the same schedule."
        },
    )
    kl_estimator: str = field(
        default="k1",
        metadata={
            "help": "Per-token KL to the reference used in the reward penalty (when beta > 0): 'k1' "
            "(log pi - log ref, unbiased) or 'k3' ((ref/pi) - 1 - log(ref/pi), non-negative)."
        },
    )
    beta: float = field(
        default=0.0,
        metadata={
            "help": "KL penalty coefficient: every token's reward gets -beta * KL(policy || reference). "
            "0 loads no reference model (the Open-Reasoner-Zero setting)."
        },
    )
    normalize_advantages: bool = field(
        default=True,
        metadata={"help": "Whiten GAE advantages over the tokens of the whole rollout batch (all ranks)."},
    )
    num_iterations: int = field(
        default=1, metadata={"help": "PPO epochs: optimization passes over each rollout batch."}
    )

    def __post_init__(self):
        super().__post_init__()
        if self.value_model not in VALUE_MODELS:
            raise AlphaRLError(f"value_model must be one of {VALUE_MODELS}, got {self.value_model!r}")
        if self.kl_estimator not in KL_ESTIMATORS:
            raise AlphaRLError(f"kl_estimator must be one of {KL_ESTIMATORS}, got {self.kl_estimator!r}")
        if not (0.0 <= self.gamma <= 1.0 and 0.0 <= self.lam <= 1.0):
            raise AlphaRLError(f"gamma and lam must lie in [0, 1], got {self.gamma} and {self.lam}")
        if self.epsilon_value <= 0 or self.vf_coef < 0:
            raise AlphaRLError("epsilon_value must be > 0 and vf_coef >= 0")
        if self.value_model == "separate" and self.ddp_find_unused_parameters is None:
            # The separate critic's backbone runs outside the DDP-wrapped forward. Without activation
            # checkpointing, transformers asks DDP to find unused parameters; DDP then marks the critic's as
            # unused after the forward and fails when their gradients arrive ("mark a variable ready only
            # once"). Every trained parameter gets a gradient in PPO (policy, value loss): none is unused.
            self.ddp_find_unused_parameters = False


@dataclass
class AlphaRLPPOConfig(AlphaRLConfig, PPOConfig):
    """PPOConfig plus the AlphaRL fields. The critic is never extrapolated unless `alpharl_critic` is set."""

    alpharl_critic: bool = field(
        default=False,
        metadata={
            "help": f"Also extrapolate the critic's matrices (a separate critic's projections). Off: "
            f"'^{VALUE_MODEL}\\.' is added to alpharl_exclude, so only the policy is forecast."
        },
    )

    def __post_init__(self):
        super().__post_init__()
        critic = rf"^{VALUE_MODEL}\."
        if not self.alpharl_critic and critic not in (self.alpharl_exclude or ""):
            self.alpharl_exclude = f"(?:{self.alpharl_exclude})|{critic}" if self.alpharl_exclude else critic
