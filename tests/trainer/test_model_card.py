"""The saved model card: what its AlphaRL section says for a swap, a rollback and no swap; the base policy
and the measured test accuracy; TRL's generic card replaced; and written by a real (tiny) run with
TensorBoard logging."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from alpharl_trainer.trainer.config import AlphaRLConfig
from alpharl_trainer.trainer.decision import SwapRecord
from alpharl_trainer.trainer.model_card import BEGIN, END, alpharl_section, write_alpharl_card

FIELDS = {
    "step": 60,
    "targets": [75.0, 90.0, 120.0],
    "scores": {"current": 0.5, "75": 0.52, "90": 0.55, "120": 0.49},
    "chosen": "90",
    "mean_fit_r2": 0.913,
    "delta_norm": 0.0123,
}


def record(**changes) -> SwapRecord:
    return SwapRecord.from_dict({**FIELDS, **changes})


SWAP = record()


def test_section_says_what_was_forecast_from_which_window():
    text = alpharl_section(
        SWAP, AlphaRLConfig(alpharl_finetune_steps=10), [10, 20, 30, 40, 50, 60], "base", 150
    )
    assert text.startswith(BEGIN) and text.rstrip().endswith(END)
    assert "10, 20, 30, 40, 50, 60" in text and "At step 60" in text
    assert "**applied**: the forecast to step 90" in text and "0.0123" in text
    assert "current: 0.5000" in text and "90: 0.5500" in text and "0.913" in text
    assert "linear" in text and "rank1_replace" in text and "10 ordinary RL step(s), then stopped" in text


def test_section_lists_every_jump():
    swaps = [record(step=60, chosen="expo a=0.5"), record(step=120, chosen=None)]
    text = alpharl_section(swaps[-1], AlphaRLConfig(alpharl_jumps=2), [70, 80], "base", 150, swaps)
    assert "step 60: expo a=0.5; step 120: kept W_K" in text


def test_section_for_rollback_and_for_no_swap():
    rolled = alpharl_section(record(chosen=None), AlphaRLConfig(), [10, 20, 30], "base", 150)
    assert "**rolled back**" in rolled and "**applied**" not in rolled
    none = alpharl_section(None, AlphaRLConfig(alpharl_window_end=0.4), [10], "base", 150)
    assert "window end: step 60" in none and "nothing was forecast" in none


TEST = {
    "problems": 1000,
    "scoring": "teacher-forced exact match",
    "interval": "paired 95% normal interval",
    "stages": [
        {"stage": "base policy", "step": 0, "accuracy": 0.559, "problems": 1000},
        {
            "stage": "final",
            "step": 70,
            "accuracy": 0.581,
            "problems": 1000,
            "vs": "truncated run",
            "paired": {"diff": 0.012, "ci95_low": 0.002, "ci95_high": 0.022, "n": 1000},
        },
    ],
}


def _callback(**swap):
    return SimpleNamespace(
        swap=record(**swap),
        swaps=[record(**swap)],
        config=AlphaRLConfig(),
        trajectory=SimpleNamespace(steps=[20, 40, 60]),
        trainer=SimpleNamespace(_name="AlphaRL-GRPO", args=SimpleNamespace(max_steps=150)),
    )


def test_card_replaces_trls_generic_card(tmp_path):
    """TRL's card names the base model `None` for local folders; ours names it and says what it scored."""
    (tmp_path / "README.md").write_text(
        "# Model card\nfine-tuned version of [None](https://huggingface.co/None)\n"
    )
    for _ in range(2):  # a resumed run writes it again
        path = write_alpharl_card(tmp_path, _callback(), "/models/Qwen3-8B-Base", TEST)
    text = path.read_text()
    assert (
        "None" not in text and text.count(BEGIN) == 1 and text.startswith("---\nlibrary_name: transformers")
    )
    assert "`/models/Qwen3-8B-Base`" in text and "AlphaRL-GRPO" in text and "base_model" not in text
    hub = write_alpharl_card(tmp_path, _callback(), "Qwen/Qwen3-8B-Base", TEST).read_text()
    assert hub.startswith("---\nbase_model: Qwen/Qwen3-8B-Base\nlibrary_name: transformers\n")
    write_alpharl_card(tmp_path, _callback(), "/models/Qwen3-8B-Base", TEST)
    assert "| final | 70 | 0.581 | +0.012 [+0.002, +0.022] vs truncated run |" in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md"]  # no temp file left


def test_card_names_the_shipped_policy_with_its_checksum(tmp_path):
    from alpharl_trainer.policies import ROOT

    sums = (ROOT / "tiny" / "SHA256SUMS").read_text()
    weights = next(line.split()[0] for line in sums.splitlines() if line.endswith("model.safetensors"))
    text = write_alpharl_card(tmp_path, _callback(chosen=None), "tiny").read_text()
    assert "alpharl_trainer/policies/tiny" in text and weights[:16] in text
    assert "**rolled back**" in text and "Test accuracy" not in text  # nothing measured, nothing claimed


@pytest.mark.slow
def test_tiny_run_writes_card_and_tensorboard_events(tmp_path):
    """~25 s on 2 cores: a real GRPO run through train.main with report_to tensorboard."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from alpharl_trainer.train import main
    from tests.trainer.harness import MAIN_RECIPE, main_recipe_overrides

    args = ["--config", str(MAIN_RECIPE), *main_recipe_overrides(tmp_path), "--report_to", "tensorboard"]
    assert main(args) == 0
    card = (tmp_path / "README.md").read_text()
    assert BEGIN in card and "| window (snapshot steps) | 2, 4, 6 |" in card
    (events,) = list((tmp_path / "runs").iterdir())
    accumulator = EventAccumulator(str(events))
    accumulator.Reload()
    tags = accumulator.Tags()["scalars"]
    assert "train/alpharl/mean_fit_r2" in tags and "train/alpharl/score/current" in tags
