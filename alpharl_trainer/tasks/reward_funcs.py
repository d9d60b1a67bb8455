"""The recipe's reward functions by name: a built-in (`REWARDS`) or a dotted import path, as TRL's
`reward_funcs` accepts them (a user's own function, `trl.rewards.*`)."""

from __future__ import annotations

from alpharl_trainer.errors import AlphaRLError, check_known

REWARDS = ("task", "math_accuracy", "format", "overlong")


def reward_function(name: str):
    """A reward named by its dotted import path (`package.module.function`), imported; a built-in name
    (`REWARDS`) is returned as is. Anything else is one error naming what could not be found."""
    import importlib

    if name in REWARDS:
        return name
    module, _, attribute = name.replace(":", ".").rpartition(".")
    if not module:  # a bare name: one of the built-ins, misspelt
        check_known(name, REWARDS, "reward")
    try:
        function = getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as err:
        raise AlphaRLError(
            f"reward {name!r} is neither a built-in ({', '.join(REWARDS)}) nor an importable function: {err}"
        ) from err
    if not callable(function):
        raise AlphaRLError(f"reward {name!r} is not callable (a {type(function).__name__})")
    return function


def reward_names(script) -> list[str]:
    """The recipe's rewards: `reward_funcs` (TRL's key) when set, else `rewards`."""
    return list(script.reward_funcs) if script.reward_funcs else list(script.rewards)


def build_rewards(script, task, config, tokenizer) -> list:
    """The reward functions of `script.rewards` (a ScriptArguments), in order."""
    from alpharl_trainer.tasks import rewards

    funcs = []
    for name in reward_names(script):
        if name not in REWARDS:
            funcs.append(reward_function(name))
        elif name == "task":
            if task is None:
                raise AlphaRLError(
                    "reward 'task' needs a synthetic task; use 'math_accuracy' for benchmark files"
                )
            funcs.append(rewards.task_reward(task))
        elif name == "math_accuracy":
            funcs.append(rewards.math_accuracy_reward)
        elif name == "format":
            funcs.append(rewards.format_reward)
        else:  # overlong
            funcs.append(
                rewards.overlong_penalty(config.max_completion_length, script.overlong_buffer, tokenizer)
            )
    return funcs
