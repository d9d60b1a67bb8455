"""TRL trainers with AlphaRL installed from their config. They add nothing the callback cannot do."""

from __future__ import annotations

from trl import GRPOTrainer, RLOOTrainer

from alpharl_trainer.trainer.callback import AlphaRLCallback
from alpharl_trainer.trainer.config import AlphaRLConfig


class AlphaRLMixin:
    """Installs `AlphaRLCallback` when `args.alpharl` is on; the rest is the TRL trainer unchanged."""

    _tag_names = ["trl", "alpharl"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.alpharl = (
            AlphaRLCallback(AlphaRLConfig.from_args(self.args)).attach(self) if self.args.alpharl else None
        )


class AlphaRLGRPOTrainer(AlphaRLMixin, GRPOTrainer):
    """GRPO (and DAPO, Dr. GRPO, GSPO through GRPOConfig's loss settings) with AlphaRL."""

    _name = "AlphaRL-GRPO"
    _tag_names = ["trl", "grpo", "alpharl"]


class AlphaRLRLOOTrainer(AlphaRLMixin, RLOOTrainer):
    """RLOO with AlphaRL."""

    _name = "AlphaRL-RLOO"
    _tag_names = ["trl", "rloo", "alpharl"]
