"""AlphaRL on LoRA policies: extrapolate the merged update `scaling * B A` of each adapted matrix.

In a PEFT model the effective weight of an adapted layer is `W_base + scaling * B A`, and only `A`, `B`
train. The update the method is about is the merged one, `dW_t = scaling (B_t A_t - B_0 A_0)`: a product
of thin factors, whose top singular triplet is computed exactly from them
(`top_singular_factored`), never forming the m x n matrix. The forecast correction
`(a_hat - a_K) v^T` is then added to the frozen `W_base`, so the effective weight moves exactly as for a
full fine-tune and the adapters keep training from where they were. (`rank1_only` rebuilds the weight from
`W_0` and has no such additive form: it is refused for LoRA policies.)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from alpharl_trainer.extrapolation import Rank1, top_singular_factored


@dataclass(frozen=True)
class LoraSite:
    """One adapted matrix: where its factors live, by parameter name in `model.named_parameters()`."""

    base: str
    """The frozen base weight (`...q_proj.base_layer.weight`): what a swap writes."""
    lora_a: str
    lora_b: str
    scaling: float


def lora_sites(model: torch.nn.Module) -> dict[str, LoraSite]:
    """Adapted matrices of a PEFT model, keyed by their logical name (`...q_proj.weight`, as without PEFT)."""
    sites = {}
    for module_name, module in model.named_modules():
        if not (hasattr(module, "lora_A") and hasattr(module, "base_layer")):
            continue
        adapters = [a for a in getattr(module, "active_adapters", []) if a in module.lora_A]
        if len(adapters) != 1:
            continue  # none active, or several mixed: not one well-defined update
        adapter = adapters[0]
        sites[f"{module_name}.weight"] = LoraSite(
            base=f"{module_name}.base_layer.weight",
            lora_a=f"{module_name}.lora_A.{adapter}.weight",
            lora_b=f"{module_name}.lora_B.{adapter}.weight",
            scaling=float(module.scaling[adapter]),
        )
    return sites


def merged_update_rank1(
    b_t: torch.Tensor, a_t: torch.Tensor, b_0: torch.Tensor, a_0: torch.Tensor, scaling: float, name: str
) -> Rank1:
    """Top triplet of `scaling (B_t A_t - B_0 A_0)` from the factors (B_0 = 0 for a fresh adapter)."""
    if torch.count_nonzero(b_0) == 0:
        return top_singular_factored(scaling * b_t.float(), a_t.float(), name=name)
    left = torch.cat([scaling * b_t.float(), -scaling * b_0.float()], dim=1)
    right = torch.cat([a_t.float(), a_0.float()], dim=0)
    return top_singular_factored(left, right, name=name)
