"""AlphaRL inside TRL trainers: the config, the callback (any Trainer) and ready-made trainer classes."""

from alpharl_trainer.trainer.callback import AlphaRLCallback
from alpharl_trainer.trainer.config import AlphaRLConfig, AlphaRLGRPOConfig, AlphaRLRLOOConfig
from alpharl_trainer.trainer.grpo_rloo import AlphaRLGRPOTrainer, AlphaRLRLOOTrainer
from alpharl_trainer.trainer.ppo import AlphaRLPPOTrainer, PPOTrainer, ValueModel
from alpharl_trainer.trainer.ppo_config import AlphaRLPPOConfig, PPOConfig

__all__ = [
    "AlphaRLCallback",
    "AlphaRLConfig",
    "AlphaRLGRPOConfig",
    "AlphaRLGRPOTrainer",
    "AlphaRLPPOConfig",
    "AlphaRLPPOTrainer",
    "AlphaRLRLOOConfig",
    "AlphaRLRLOOTrainer",
    "PPOConfig",
    "PPOTrainer",
    "ValueModel",
]
