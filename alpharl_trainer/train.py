"""Train entry point: run a recipe (alpharl_trainer/recipe.py) from start, or from where it stopped, to its
end-of-run report.

    alpharl train recipes/tiny/grpo.yaml [--learning_rate 1e-5 ...]
    accelerate launch --config_file configs/ddp.yaml -m alpharl_trainer.train --config recipes/tiny/grpo.yaml

Command-line flags override the recipe. `--dry-run` resolves and checks the whole run (batch arithmetic,
AlphaRL window, memory per GPU) and exits before loading any weights (alpharl_trainer/plan/).
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

from alpharl_trainer import recipe
from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.recipe import ScriptArguments
from alpharl_trainer.resume import resume_point
from alpharl_trainer.run_lock import run_lock
from alpharl_trainer.run_report import print_summary, write_summary
from alpharl_trainer.trainer.candidates import describe


def test_score(model, tokenizer, task, script: ScriptArguments, max_new_tokens: int) -> dict | None:
    """Exact match on the task's test split (synthetic tasks only): teacher-forced for the plain tasks (one
    forward pass, equal to greedy decoding), greedy generation graded by the task for chat tasks."""
    if task is None:
        return None
    from alpharl_trainer.evaluate import greedy_exact, teacher_forced
    from alpharl_trainer.tasks import is_chat

    problems = task.problems("test", script.report_test_size, script.task_seed)
    was_training = model.training
    model.eval()
    if is_chat(task):
        scores = greedy_exact(model, tokenizer, task, problems, max_new_tokens, chat=True)
    else:
        scores = teacher_forced(model, tokenizer, problems)
    model.train(was_training)
    return scores


def train_truncated(argv: list[str], stop_step: int, train, heldout, task):
    """The truncated run: the same recipe (`argv`) without AlphaRL (same seed, data, schedule), stopped at
    `stop_step`, in a temporary folder (nothing of it is kept). Returns its model."""
    import tempfile

    from transformers import TrainerCallback

    class StopAt(TrainerCallback):
        """Ends training at `stop_step` (transformers stops at `state.max_steps`); the learning-rate schedule,
        built from args.max_steps before training starts, stays the recipe's."""

        def on_train_begin(self, args, state, control, **kwargs):
            state.max_steps = min(state.max_steps, stop_step)

    with tempfile.TemporaryDirectory(prefix="alpharl-truncated-") as out:
        overrides = ["--alpharl", "false", "--output_dir", out, "--save_strategy", "no"]
        script, config = recipe.parse([*argv, *overrides, "--report_to", "none"])
        trainer = recipe.build_trainer(script, config, data=(train, heldout, task), callbacks=[StopAt()])
        trainer.train()
        return trainer.accelerator.unwrap_model(trainer.model)


def whole_model(trainer):
    """A context yielding the trainer's policy whole, for a forward pass outside the training step (TRL's
    own path for generation: under ZeRO-3 it lifts DeepSpeed's hooks and gathers the parameters)."""
    from trl.models import unwrap_model_for_generation

    return unwrap_model_for_generation(
        trainer.model_wrapped, trainer.accelerator, gather_deepspeed3_params=True
    )


def main(argv: list[str] | None = None) -> int:
    from alpharl_trainer import plan

    dry_run, argv = plan.pop_plan_args(sys.argv[1:] if argv is None else argv)
    if dry_run is not None:
        return plan.run(argv, dry_run)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    # TRL 1.16 itself reads transformers' deprecated `is_gradient_checkpointing` at every generation: a
    # warning no recipe can avoid (recipes use `activation_checkpointing`), printed per rollout batch.
    warnings.filterwarnings("ignore", "`is_gradient_checkpointing` is deprecated", FutureWarning)
    script, config = recipe.parse(argv)
    recipe.check(script, config)
    with run_lock(config.output_dir):  # one run per output_dir: a second one is refused here
        return _train(argv, script, config)


def _train(argv: list[str], script: ScriptArguments, config) -> int:
    """The run itself (`main` has checked the recipe and holds the output_dir): resume point, training, the
    test-split scoring of each stage, the summary."""
    from alpharl_trainer.run_report import Stage

    if script.torch_threads:
        import torch

        torch.set_num_threads(script.torch_threads)
    resume = resume_point(script, config)
    from alpharl_trainer.distributed import gathered_model

    model, tokenizer = recipe.load_policy(script)
    train, heldout, task = recipe.build_data(script)
    scoring = bool(script.report_test_size) and task is not None
    stages: list[Stage] = []

    main_process = int(os.environ.get("RANK", "0")) == 0

    def score(name: str, step: int, whole_model, reference: str | None = None) -> None:
        """Score on the test split; every rank calls it (under ZeRO-3 the gather is collective)."""
        if main_process:
            print(f"scoring the {name} (step {step}) on {script.report_test_size} test problems", flush=True)
        with whole_model as policy:
            result = test_score(policy, tokenizer, task, script, config.max_completion_length)
        stages.append(Stage(name, step, result["exact_per_problem"], reference))

    if scoring:
        score("base policy", 0, gathered_model(model))
    trainer = recipe.build_trainer(
        script, config, model=model, tokenizer=tokenizer, data=(train, heldout, task)
    )
    jumps = trainer.alpharl.config.alpharl_jumps if trainer.alpharl is not None else 1

    def window_name() -> str:
        """The stage of the weights at the current window's end (after the first jump: not the truncated
        run, and every later jump's stages carry its number)."""
        j = len(trainer.alpharl.swaps) + 1
        return "window end (truncated run)" if j == 1 else f"window end before jump {j}"

    if scoring and trainer.alpharl is not None:
        unit = "step" if trainer.alpharl.config.alpharl_covariate == "step" else "reward"

        def at_window_end(event: str, label: str | None) -> None:
            step, window = trainer.state.global_step, window_name()
            tag = "" if jumps == 1 else f" (jump {len(trainer.alpharl.swaps) + 1})"
            if event == "window":
                score(window, step, whole_model(trainer), "base policy")
            elif event == "candidate":
                score(describe(label, unit).removeprefix("the ") + tag, step, whole_model(trainer), window)
            elif label is not None:  # decided: the applied candidate (already scored if the gate ran)
                name = describe(label, unit).removeprefix("the ") + tag
                scored = [s for s in stages if s.name == name]
                if scored:
                    scored[0].name = f"{name} (applied)"
                else:
                    score(f"{name} (applied, unscored)", step, whole_model(trainer), window)

        trainer.alpharl.listeners.append(at_window_end)
    trainer.train(resume_from_checkpoint=resume)
    trainer.save_model(config.output_dir)
    step = trainer.state.global_step
    swap = trainer.alpharl.swap if trainer.alpharl is not None else None
    if scoring:  # on every rank: under ZeRO-3 scoring gathers the model collectively
        reference = None
        single = trainer.accelerator.num_processes == 1
        after_window = swap is not None and (step > swap["step"] or jumps > 1)  # W_K is not the truncated run
        if after_window and script.report_truncated and single:
            print(f"training the truncated run to step {step} (same recipe, no AlphaRL) for the report")
            reference = "truncated run"
            truncated = train_truncated(argv, step, train, heldout, task)
            score(reference, step, gathered_model(truncated), "base policy")
        elif swap is not None and not after_window:
            reference = "window end (truncated run)"
        elif swap is not None and main_process:
            why = "report_truncated is off" if single else "it is trained in single-process runs only"
            print(f"the final model is not paired with a truncated run: {why}")
        score("final", step, whole_model(trainer), reference)
    if trainer.accelerator.is_main_process:
        print_summary(write_summary(script, config, trainer, stages))
    return 0


if __name__ == "__main__":  # `accelerate launch -m alpharl_trainer.train`
    from alpharl_trainer.offline_mode import stay_offline

    stay_offline()
    try:
        sys.exit(main())
    except AlphaRLError as err:
        print(f"alpharl train: error: {err}", file=sys.stderr)
        sys.exit(2)
