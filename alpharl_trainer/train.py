"""Train entry point: run a recipe (alpharl_trainer/recipe.py) from start, or from where it stopped, to its
end-of-run report.

    alpharl train recipes/tiny/grpo.yaml [--learning_rate 1e-5 ...]
    accelerate launch --config_file configs/ddp.yaml -m alpharl_trainer.train --config recipes/tiny/grpo.yaml

Command-line flags override the recipe. `--dry-run` resolves and checks the whole run (batch arithmetic,
AlphaRL window, memory per GPU) and exits before loading any weights (alpharl_trainer/plan/).
"""

from __future__ import annotations

import logging
import sys
import warnings

from alpharl_trainer import recipe
from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.recipe import ScriptArguments
from alpharl_trainer.resume import resume_point
from alpharl_trainer.run_lock import run_lock
from alpharl_trainer.run_summary import print_summary, write_summary
from alpharl_trainer.stage_scoring import BASE, StageScorer


def main(argv: list[str] | None = None) -> int:
    """parse -> check -> (one run per output_dir) resume -> build -> train -> report."""
    from alpharl_trainer import plan

    dry_run, argv = plan.pop_plan_args(sys.argv[1:] if argv is None else argv)
    if dry_run is not None:
        return plan.run(argv, dry_run)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    # TRL 1.16 itself reads transformers' deprecated `is_gradient_checkpointing` at every generation: a
    # warning no recipe can avoid (recipes use `activation_checkpointing`), printed per rollout batch.
    warnings.filterwarnings("ignore", "`is_gradient_checkpointing` is deprecated", FutureWarning)
    script, config = recipe.parse(argv)  # the configs check their own fields (AlphaRL's window included)
    recipe.check(script, config)  # what else can be checked before loading weights
    with run_lock(config.output_dir):  # a second run on the same output_dir is refused here
        run = TrainRun(argv, script, config)
        resume = resume_point(script, config)
        run.build()
        run.train(resume)
        run.report()
    return 0


class TrainRun:
    """One recipe's run: its policy, data and trainer, and the test-split scores of its stages."""

    def __init__(self, argv: list[str], script: ScriptArguments, config):
        self.argv, self.script, self.config = argv, script, config
        self.trainer, self.data, self.scorer = None, None, None

    def build(self) -> None:
        """Load the policy and the data, score the base policy, and build the trainer (AlphaRL attached)."""
        script, config = self.script, self.config
        if script.torch_threads:
            import torch

            torch.set_num_threads(script.torch_threads)
        from alpharl_trainer.distributed import gathered_model

        model, tokenizer = recipe.load_policy(script)
        self.data = recipe.build_data(script)
        task = self.data[2]
        if script.report_test_size and task is not None:
            self.scorer = StageScorer(script, tokenizer, task, config.max_completion_length)
            self.scorer.score(BASE, 0, gathered_model(model))
        self.trainer = recipe.build_trainer(script, config, model=model, tokenizer=tokenizer, data=self.data)
        if self.scorer is not None and self.trainer.alpharl is not None:
            self.scorer.listen(self.trainer)

    def train(self, resume: str | None) -> None:
        self.trainer.train(resume_from_checkpoint=resume)
        self.trainer.save_model(self.config.output_dir)

    def report(self) -> None:
        """Score the final model (every rank: under ZeRO-3 scoring is collective); write the summary."""
        if self.scorer is not None:
            self.scorer.finish(self.trainer, self.argv, self.data)
        stages = self.scorer.stages if self.scorer is not None else []
        if self.trainer.accelerator.is_main_process:
            print_summary(write_summary(self.script, self.config, self.trainer, stages))


if __name__ == "__main__":  # `accelerate launch -m alpharl_trainer.train`
    from alpharl_trainer.hub_offline import stay_offline

    stay_offline()
    try:
        sys.exit(main())
    except AlphaRLError as err:
        print(f"alpharl train: error: {err}", file=sys.stderr)
        sys.exit(2)
