"""Which weights are tracked at all: by name and shape, the same rule in the trainer and offline."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

_PROJECTIONS = (
    r"[qkvo]_proj|qkv_proj|gate_proj|up_proj|down_proj|gate_up_proj|c_attn|c_proj|c_fc|query_key_value"
    r"|dense\w*|fc[12]|out_proj|w[qkvo]|w[123]"
)
PROJECTION = re.compile(rf"\.\d+\.(?:\w+\.)*(?:{_PROJECTIONS})\.weight$")
"""An attention/MLP projection weight inside a numbered block (`model.layers.3.self_attn.q_proj.weight`)."""
EMBEDDING = re.compile(
    r"(?:embed_tokens|wte|wpe|word_embeddings|embed_in|tok_embeddings|embed_positions)\.weight$"
)
LM_HEAD = re.compile(r"(?:^|\.)(?:lm_head|embed_out)\.weight$")


@dataclass
class ParamSelector:
    """Which parameters are tracked: by default the 2-D attention and MLP projections of every block.

    Embeddings, an untied `lm_head` and 1-D tensors (norms, biases) are opt-in; `include` adds any
    1-D/2-D tensor by regex and `exclude` removes any (it wins). Tensors of 3 or more dims (fused MoE
    experts, convolutions) are never tracked: the rank-1 method is defined for matrices.
    """

    embeddings: bool = False
    lm_head: bool = False
    vectors: bool = False
    include: str | None = None
    exclude: str | None = None

    def __call__(self, name: str, shape: Sequence[int]) -> bool:
        if len(shape) not in (1, 2) or (self.exclude and re.search(self.exclude, name)):
            return False
        if self.include and re.search(self.include, name):
            return True
        if len(shape) == 1:
            return self.vectors
        return bool(
            PROJECTION.search(name)
            or (self.embeddings and EMBEDDING.search(name))
            or (self.lm_head and LM_HEAD.search(name))
        )
