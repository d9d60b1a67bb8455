"""The suite's product runs: the gate's scoring follows the recipe's rewards."""

from __future__ import annotations

import yaml

from alpharl_trainer.reproduce.runs import RECIPES, gate_scoring


def test_the_gate_reads_gold_completions_only_where_the_task_reward_is_the_whole_reward():
    rewards = {
        loss: yaml.safe_load((RECIPES / f"{loss}.yaml").read_text())["rewards"] for loss in ("grpo", "dapo")
    }
    assert gate_scoring(rewards["grpo"]) == "exact_greedy"
    assert gate_scoring(rewards["dapo"]) == "greedy"  # task + overlong: the length counts too
