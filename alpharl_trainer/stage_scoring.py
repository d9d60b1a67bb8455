"""The test-split accuracy of every stage of a run, for its end-of-run report: the base policy, each window
end, each candidate the gate scored, the applied one, the truncated run and the final model.

`StageScorer` listens to the AlphaRL callback (`AlphaRLCallback.listeners`): the callback calls it with the
weights in question in the model, and it only reads them.
"""

from __future__ import annotations

import os
import tempfile

from alpharl_trainer import recipe
from alpharl_trainer.distributed import gathered_model
from alpharl_trainer.recipe import ScriptArguments
from alpharl_trainer.run_summary import Stage
from alpharl_trainer.trainer.candidates import describe

BASE, TRUNCATED, WINDOW_END = "base policy", "truncated run", "window end (truncated run)"


def test_score(model, tokenizer, task, script: ScriptArguments, max_new_tokens: int) -> dict:
    """Exact match on the task's test split: teacher-forced for the plain tasks (one forward pass, equal to
    greedy decoding), greedy generation graded by the task for chat tasks."""
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


def whole_model(trainer):
    """A context yielding the trainer's policy whole, for a forward pass outside the training step (TRL's
    own path for generation: under ZeRO-3 it lifts DeepSpeed's hooks and gathers the parameters)."""
    from trl.models import unwrap_model_for_generation

    return unwrap_model_for_generation(
        trainer.model_wrapped, trainer.accelerator, gather_deepspeed3_params=True
    )


def train_truncated(argv: list[str], stop_step: int, data):
    """The truncated run: the same recipe (`argv`) without AlphaRL (same seed, data, schedule), stopped at
    `stop_step`, in a temporary folder (nothing of it is kept). Returns its model."""
    from transformers import TrainerCallback

    class StopAt(TrainerCallback):
        """Ends training at `stop_step` (transformers stops at `state.max_steps`); the learning-rate schedule,
        built from args.max_steps before training starts, stays the recipe's."""

        def on_train_begin(self, args, state, control, **kwargs):
            state.max_steps = min(state.max_steps, stop_step)

    with tempfile.TemporaryDirectory(prefix="alpharl-truncated-") as out:
        overrides = ["--alpharl", "false", "--output_dir", out, "--save_strategy", "no"]
        script, config = recipe.parse([*argv, *overrides, "--report_to", "none"])
        trainer = recipe.build_trainer(script, config, data=data, callbacks=[StopAt()])
        trainer.train()
        return trainer.accelerator.unwrap_model(trainer.model)


class StageScorer:
    """Scores stages on the test split and keeps them (`stages`), in the order scored. Every rank calls it
    (under ZeRO-3 the gather is collective); rank 0 says what it scores."""

    def __init__(self, script: ScriptArguments, tokenizer, task, max_new_tokens: int):
        self.script, self.tokenizer, self.task, self.max_new_tokens = script, tokenizer, task, max_new_tokens
        self.stages: list[Stage] = []
        self.trainer = None
        self.jumps, self.unit, self.windows = 1, "step", 0
        self._main = int(os.environ.get("RANK", "0")) == 0

    def score(self, name: str, step: int, whole, reference: str | None = None) -> None:
        """Score the model `whole` yields (a context) as the stage `name`, paired with `reference`."""
        if self._main:
            print(
                f"scoring the {name} (step {step}) on {self.script.report_test_size} test problems",
                flush=True,
            )
        with whole as policy:
            result = test_score(policy, self.tokenizer, self.task, self.script, self.max_new_tokens)
        self.stages.append(Stage(name, step, result["exact_per_problem"], reference))

    def listen(self, trainer) -> None:
        """Score every window end's stages of `trainer`'s AlphaRL run as they happen."""
        self.trainer = trainer
        self.jumps = trainer.alpharl.config.alpharl_jumps
        self.unit = trainer.alpharl.config.alpharl_covariate  # a target's unit
        trainer.alpharl.listeners.append(self)

    def _window(self) -> str:
        """The stage of the weights at the current window's end (after the first jump: not the truncated
        run, and every later jump's stages carry its number)."""
        return WINDOW_END if self.windows == 1 else f"window end before jump {self.windows}"

    def _candidate(self, label: str) -> str:
        tag = "" if self.jumps == 1 else f" (jump {self.windows})"
        return describe(label, self.unit).removeprefix("the ") + tag

    def __call__(self, event: str, label: str | None) -> None:
        step, whole = self.trainer.state.global_step, whole_model(self.trainer)
        if event == "window":
            self.windows += 1
            self.score(self._window(), step, whole, BASE)
        elif event == "candidate":
            self.score(self._candidate(label), step, whole, self._window())
        elif label is not None:  # decided: the applied candidate (already scored if the gate ran)
            name = self._candidate(label)
            scored = [s for s in self.stages if s.name == name]
            if scored:
                scored[0].name = f"{name} (applied)"
            else:
                self.score(f"{name} (applied, unscored)", step, whole, self._window())

    def finish(self, trainer, argv: list[str], data) -> None:
        """The final model's stage, paired with what it should be compared to: the truncated run trained to
        the same step when the final model is past the window end (single process only), else W_K."""
        step, swap = trainer.state.global_step, trainer.alpharl.swap if trainer.alpharl else None
        reference = None
        single = trainer.accelerator.num_processes == 1
        # past the window end (or after a jump), W_K is not the truncated run
        after_window = swap is not None and (step > swap.step or self.jumps > 1)
        if after_window and self.script.report_truncated and single:
            print(f"training the truncated run to step {step} (same recipe, no AlphaRL) for the report")
            reference = TRUNCATED
            self.score(reference, step, gathered_model(train_truncated(argv, step, data)), BASE)
        elif swap is not None and not after_window:
            reference = WINDOW_END
        elif swap is not None and self._main:
            why = "report_truncated is off" if single else "it is trained in single-process runs only"
            print(f"the final model is not paired with a truncated run: {why}")
        self.score("final", step, whole_model(trainer), reference)
