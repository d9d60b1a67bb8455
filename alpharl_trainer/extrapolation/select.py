"""Which weights are extrapolated: by default every 2-D weight inside a numbered transformer block.

That is the attention and MLP projections (q/k/v/o, gate/up/down in Llama/Qwen/Mistral; c_attn/c_proj/c_fc
in GPT-2; query_key_value/dense in Falcon...) without listing architectures: norms and biases are 1-D,
and embeddings and `lm_head` sit outside the blocks. Fused 3-D expert tensors of MoE layers are not
matrices and are skipped. Extra tensors (e.g. `embed_tokens`) are opted in by pattern.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

IN_BLOCK = r"\.\d+\..*weight$"
"""`model.layers.3.self_attn.q_proj.weight`, `transformer.h.0.mlp.c_fc.weight`, ..."""


def select_matrices(
    shapes: Mapping[str, Sequence[int]], include: Iterable[str] = (IN_BLOCK,), exclude: Iterable[str] = ()
) -> list[str]:
    """Names (in `shapes` order) of the 2-D tensors matching any `include` and no `exclude` regex (search)."""
    inc = [re.compile(p) for p in include]
    exc = [re.compile(p) for p in exclude]
    return [
        name
        for name, shape in shapes.items()
        if len(shape) == 2 and any(p.search(name) for p in inc) and not any(p.search(name) for p in exc)
    ]
