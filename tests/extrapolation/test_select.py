import pytest

from alpharl_trainer.extrapolation.select import ParamSelector

QWEN2 = {
    "model.embed_tokens.weight": (64, 32),
    "model.layers.0.self_attn.q_proj.weight": (32, 32),
    "model.layers.0.self_attn.q_proj.bias": (32,),
    "model.layers.0.self_attn.k_proj.weight": (16, 32),
    "model.layers.0.self_attn.v_proj.weight": (16, 32),
    "model.layers.0.self_attn.o_proj.weight": (32, 32),
    "model.layers.0.mlp.gate_proj.weight": (64, 32),
    "model.layers.0.mlp.up_proj.weight": (64, 32),
    "model.layers.0.mlp.down_proj.weight": (32, 64),
    "model.layers.0.input_layernorm.weight": (32,),
    "model.layers.0.self_attn.q_norm.weight": (8,),
    "model.norm.weight": (32,),
    "lm_head.weight": (64, 32),
}


def _tracked(selector: ParamSelector, shapes: dict) -> set[str]:
    return {name for name, shape in shapes.items() if selector(name, shape)}


def test_default_selector_tracks_exactly_the_block_projections():
    got = _tracked(ParamSelector(), QWEN2)
    assert got == {n for n in QWEN2 if n.endswith("_proj.weight")}


def test_selector_options():
    vectors = {n for n, s in QWEN2.items() if len(s) == 1}
    projections = _tracked(ParamSelector(), QWEN2)
    assert _tracked(ParamSelector(embeddings=True), QWEN2) == projections | {"model.embed_tokens.weight"}
    assert _tracked(ParamSelector(lm_head=True), QWEN2) == projections | {"lm_head.weight"}
    assert _tracked(ParamSelector(vectors=True), QWEN2) == projections | vectors
    assert _tracked(ParamSelector(include=r"model\.norm"), QWEN2) == projections | {"model.norm.weight"}
    assert _tracked(ParamSelector(exclude=r"mlp\."), QWEN2) == {n for n in projections if "self_attn" in n}
    assert not ParamSelector(include="experts")("model.layers.0.mlp.experts.gate_up_proj", (8, 64, 32))


@pytest.mark.parametrize(
    "name",
    [
        "transformer.h.3.attn.c_attn.weight",  # GPT-2
        "transformer.h.3.mlp.c_proj.weight",
        "gpt_neox.layers.1.attention.query_key_value.weight",  # NeoX
        "transformer.h.0.mlp.dense_h_to_4h.weight",  # Falcon
        "model.decoder.layers.2.fc1.weight",  # OPT
        "model.decoder.layers.2.self_attn.out_proj.weight",
        "layers.5.attention.wq.weight",  # original Llama
        "layers.5.feed_forward.w2.weight",
        "model.layers.0.self_attn.qkv_proj.weight",  # Phi-3
        "model.layers.0.mlp.experts.3.down_proj.weight",  # per-expert MoE
    ],
)
def test_selector_knows_other_architectures(name):
    assert ParamSelector()(name, (64, 32))


@pytest.mark.parametrize(
    "name", ["transformer.wte.weight", "transformer.ln_f.weight", "model.embed_out.weight"]
)
def test_selector_leaves_non_block_matrices(name):
    assert not ParamSelector()(name, (64, 32))
