"""AlphaRL inside TRL trainers: the config, the callback (any Trainer) and ready-made trainer classes."""

from alpharl_trainer.trainer.callback import AlphaRLCallback
from alpharl_trainer.trainer.config import AlphaRLConfig, AlphaRLGRPOConfig, AlphaRLRLOOConfig
from alpharl_trainer.trainer.trainers import AlphaRLGRPOTrainer, AlphaRLRLOOTrainer

__all__ = [
    "AlphaRLCallback",
    "AlphaRLConfig",
    "AlphaRLGRPOConfig",
    "AlphaRLGRPOTrainer",
    "AlphaRLRLOOConfig",
    "AlphaRLRLOOTrainer",
]
