import pytest

from alpharl_trainer.offline.plots import (
    _distributions_figure,
    _legend,
    _singular_values_figure,
    _tensor_kind,
)


def _synthetic_analysis(names: list[str], steps: list[int], r2: float | None = 0.9) -> dict:
    """The parts of an `analyze` result its plots read, without any checkpoint."""
    rows = {
        name: {
            "s1": [0.01 * (i + 1) * step for step in steps],
            "rank1_share": [min(1.0, 0.5 + 0.1 * k) for k in range(len(steps))],
            "r2_linear": r2,
        }
        for i, name in enumerate(names)
    }
    return {"steps": steps, "matrices": rows}


def test_plot_legend_names_few_tensors_and_groups_many_by_kind():
    assert _tensor_kind("model.layers.3.self_attn.q_proj.weight") == "q_proj"
    assert _tensor_kind("model.layers.3.self_attn.q_proj.bias") == "q_proj.bias"
    assert _tensor_kind("model.norm.weight") == "norm" and _tensor_kind("lm_head.weight") == "lm_head"
    few = [f"model.layers.0.self_attn.{p}.weight" for p in ("q_proj", "k_proj")]
    assert list(_legend(few)) == few
    many = [
        f"model.layers.{i}.self_attn.{p}.weight" for i in range(3) for p in ("q_proj", "k_proj", "v_proj")
    ]
    legend = _legend(many)
    assert list(legend) == ["q_proj (3)", "k_proj (3)", "v_proj (3)"]
    assert legend["k_proj (3)"][1] == [n for n in many if "k_proj" in n]
    assert len({color for color, _ in legend.values()}) == 3


@pytest.mark.parametrize("steps", [[1, 2, 3], [7], [10, 20, 30, 40, 50, 60]])
def test_analysis_plots_are_labelled_and_tick_whole_steps(steps):
    names = [f"model.layers.{i}.mlp.{p}.weight" for i in range(5) for p in ("up_proj", "down_proj")]
    analysis = _synthetic_analysis(names, steps, r2=0.9 if len(steps) >= 3 else None)
    for figure in (_distributions_figure(analysis), _singular_values_figure(analysis)):
        figure.draw_without_rendering()  # settles the autoscaled limits the tick locators use
        assert figure.get_suptitle()
        assert [t.get_text() for t in figure.legends[0].get_texts()] == ["up_proj (5)", "down_proj (5)"]
        for ax in figure.axes:
            assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    for ax in _singular_values_figure(analysis).axes:
        low, high = ax.get_xlim()
        ticks = [t for t in ax.get_xticks() if low <= t <= high]
        assert ticks and all(t == int(t) for t in ticks), ticks
        assert len(ax.get_lines()) == len(names)


def test_distributions_plot_says_when_r2_needs_more_checkpoints():
    analysis = _synthetic_analysis(["model.layers.0.self_attn.q_proj.weight"], [5, 10], r2=None)
    r2_ax = _distributions_figure(analysis).axes[1]
    assert [t.get_text() for t in r2_ax.texts] == ["needs 3 or more checkpoints"]
