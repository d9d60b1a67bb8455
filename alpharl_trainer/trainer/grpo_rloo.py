"""TRL trainers with AlphaRL installed from their config. They add nothing the callback cannot do."""

from __future__ import annotations

from transformers.trainer_utils import get_last_checkpoint
from trl import GRPOTrainer, RLOOTrainer

from alpharl_trainer.trainer.callback import AlphaRLCallback


class AlphaRLMixin:
    """Installs `AlphaRLCallback` when `args.alpharl` is on; the rest is the TRL trainer unchanged."""

    _tag_names = ["trl", "alpharl"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.alpharl = AlphaRLCallback(self.args).attach(self) if self.args.alpharl else None

    def train(self, resume_from_checkpoint: str | bool | None = None, *args, **kwargs):
        """Trainer.train, telling AlphaRL which checkpoint it resumes from (its state is read from there,
        not from `output_dir/checkpoint-N`, which may belong to another run)."""
        if self.alpharl is not None:
            if resume_from_checkpoint is True:
                resume_from_checkpoint = get_last_checkpoint(self.args.output_dir)
            self.alpharl.resume_checkpoint = resume_from_checkpoint or None
        return super().train(resume_from_checkpoint, *args, **kwargs)


class AlphaRLGRPOTrainer(AlphaRLMixin, GRPOTrainer):
    """GRPO (and DAPO, Dr. GRPO, GSPO through GRPOConfig's loss settings) with AlphaRL."""

    _name = "AlphaRL-GRPO"
    _tag_names = ["trl", "grpo", "alpharl"]


class AlphaRLRLOOTrainer(AlphaRLMixin, RLOOTrainer):
    """RLOO with AlphaRL."""

    _name = "AlphaRL-RLOO"
    _tag_names = ["trl", "rloo", "alpharl"]
