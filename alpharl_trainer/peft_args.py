"""LoRA from a recipe, with the names of TRL's `ModelConfig` (`use_peft: true`, `lora_r`, `lora_alpha`, ...),
so a TRL recipe's PEFT keys work unchanged. The trainer wraps the policy (TRL's own `peft_config` path), and
AlphaRL extrapolates each adapted matrix on its merged update (`trainer/lora.py`)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class PeftArguments:
    use_peft: bool = field(default=False, metadata={"help": "Train LoRA adapters instead of every weight."})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha (the update is scaled alpha / r)."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA branch."})
    lora_target_modules: list[str] | None = field(
        default=None,
        metadata={"help": "Module names to adapt (e.g. q_proj v_proj); none: PEFT's default for the model."},
    )
    lora_modules_to_save: list[str] | None = field(
        default=None, metadata={"help": "Modules trained in full beside the adapters (e.g. lm_head)."}
    )
    lora_task_type: str = field(default="CAUSAL_LM", metadata={"help": "PEFT task type."})
    use_rslora: bool = field(
        default=False, metadata={"help": "Rank-stabilised LoRA: the update is scaled alpha / sqrt(r)."}
    )

    def peft_config(self):
        """The `peft.LoraConfig` these fields describe, or None without `use_peft`."""
        if not self.use_peft:
            return None
        from peft import LoraConfig

        return LoraConfig(
            r=self.lora_r,
            lora_alpha=self.lora_alpha,
            lora_dropout=self.lora_dropout,
            target_modules=self.lora_target_modules,
            modules_to_save=self.lora_modules_to_save,
            task_type=self.lora_task_type,
            use_rslora=self.use_rslora,
        )
