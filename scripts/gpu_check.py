"""One-GPU check of what the CPU tests cannot show: AlphaRL's gate and swap through a real vLLM engine.

A short GRPO run of the shipped tiny policy with `use_vllm: true` (colocate) and AlphaRL with its gate on.
Each check prints one line (`ok` or `FAIL`), and the exit code is non-zero when any check fails:

1. the swap happened at the window end;
2. the gate scored the candidates through vLLM (not transformers `generate`);
3. the gate's scores repeat: W_K scored twice through vLLM gives one value (common random numbers);
4. vLLM serves the decided weights: its greedy completions right after the swap match transformers' greedy
   completions from the policy (and a probe with W_K in the policy instead differs, so the probe can tell);
5. the run continued to `max_steps` after the swap, with rewards logged.

Preflight first: without a CUDA GPU, CUDA torch, vLLM or the pinned TRL it refuses (exit 2), naming what is
missing. Run it with `bash scripts/gpu_check.sh` (about 5 minutes on one GPU).
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WINDOW_END, MAX_STEPS = 20, 26
PROBE_PROMPTS = 64


def preflight() -> list[str]:
    """What is missing for the check, as lines; empty when everything is there."""
    missing = []
    if shutil.which("nvidia-smi") is None:
        missing.append("nvidia-smi is not on PATH: no NVIDIA driver here")
    import torch

    if torch.version.cuda is None:
        missing.append(
            f"torch {torch.__version__} is a CPU build: install the CUDA build of torch (README, GPU)"
        )
    elif not torch.cuda.is_available():
        missing.append("torch sees no CUDA device (CUDA_VISIBLE_DEVICES, driver)")
    if importlib.util.find_spec("vllm") is None:
        missing.append("vllm is not installed: pip install the vLLM release matching torch (README, GPU)")
    import trl

    if trl.__version__ != "1.16.0":
        missing.append(f"trl {trl.__version__} is installed; the gate is written against trl 1.16.0")
    return missing


def report(name: str, ok: bool, detail: str) -> bool:
    print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}", flush=True)
    return ok


def main() -> int:
    missing = preflight()
    for line in missing:
        print(f"MISSING {line}", flush=True)
    if missing:
        print("gpu_check: refused: the check needs a CUDA GPU with CUDA torch and vLLM", file=sys.stderr)
        return 2

    import torch
    from transformers import TrainerCallback

    from alpharl_trainer import recipe
    from alpharl_trainer.trainer.acceptance import AcceptanceScorer

    class Probe(TrainerCallback):
        """Added after AlphaRL's callback: keeps W_K just before the swap, then, right after it, checks the
        gate's reproducibility and what vLLM serves."""

        def __init__(self, trainer):
            self.trainer, self.results, self.w_k = trainer, {}, {}

        def on_optimizer_step(self, args, state, control, **kwargs):
            if state.global_step + 1 == WINDOW_END:  # global_step is incremented after this event
                self.w_k = {n: p.detach().clone() for n, p in self.trainer.model.named_parameters()}

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step != WINDOW_END:
                return
            trainer, model = self.trainer, self.trainer.model
            rows = [trainer.eval_dataset[i] for i in range(PROBE_PROMPTS)]
            scorer = AcceptanceScorer(trainer, rows, 4, 1234)
            self.results["repeat"] = (scorer.score(), scorer.score())
            self.results["served"] = agreement(trainer, rows)  # vLLM holds the decided weights here
            decided = {n: p.detach().clone() for n, p in model.named_parameters()}
            with torch.no_grad():  # negative control: W_K back in the policy, vLLM not told
                for name, param in model.named_parameters():
                    param.copy_(self.w_k[name])
                self.results["control"] = agreement(trainer, rows)
                for name, param in model.named_parameters():
                    param.copy_(decided[name])

    with tempfile.TemporaryDirectory(prefix="alpharl-gpu-check-") as out:
        script, config = recipe.parse(
            ["--config", str(REPO / "recipes" / "tiny" / "grpo.yaml")],
            output_dir=out,
            use_cpu=False,
            use_vllm=True,
            vllm_mode="colocate",
            vllm_gpu_memory_utilization=0.3,
            max_steps=MAX_STEPS,
            alpharl_interval=5,
            alpharl_window_end=WINDOW_END,
            alpharl_horizons=[1.5, 2.0],
            alpharl_acceptance_prompts=64,
            alpharl_continue_after_swap=True,
            report_test_size=0,
            save_strategy="no",
            logging_steps=1,
        )
        trainer = recipe.build_trainer(script, config)
        probe = Probe(trainer)
        trainer.add_callback(probe)
        trainer.train()

    swap = trainer.alpharl.swap or {}
    step, chosen, engine = swap.get("step"), swap.get("chosen"), swap.get("gate_engine")
    rewards = [h["reward"] for h in trainer.state.log_history if "reward" in h and h["step"] > WINDOW_END]
    (first, second), served = probe.results["repeat"], probe.results["served"]
    control = probe.results["control"]
    ok = [
        report("swap", step == WINDOW_END, f"decided at step {step}: forecast to {chosen} (None: rollback)"),
        report("gate engine", engine == "vllm", f"the candidates were scored through {engine}"),
        report("gate repeat", first == second, f"W_K scored twice through vLLM: {first:.4f}, {second:.4f}"),
        report(
            "vLLM serves the decided weights",
            served >= 0.95 and (chosen is None or control < served),
            f"greedy agreement with the policy {served:.0%} (W_K in the policy instead: {control:.0%})",
        ),
        report(
            "run continues",
            trainer.state.global_step == MAX_STEPS and len(rewards) == MAX_STEPS - WINDOW_END,
            f"step {trainer.state.global_step} of {MAX_STEPS}, {len(rewards)} rewards after the swap",
        ),
    ]
    return 0 if all(ok) else 1


def agreement(trainer, rows: list[dict]) -> float:
    """Share of prompts whose greedy completion from vLLM equals transformers' from the policy."""
    import torch

    tok, generation = trainer.processing_class, trainer.vllm_generation
    prompt_ids, _ = trainer._tokenize_prompts([row["prompt"] for row in rows])[:2]
    saved = generation.temperature
    generation.temperature = 0.0  # greedy
    try:
        _, from_vllm, _, _ = generation.generate(prompts=prompt_ids, images=None, num_generations=1)
    finally:
        generation.temperature = saved
    model = trainer.accelerator.unwrap_model(trainer.model)
    same = 0
    with torch.no_grad():
        for ids, vllm_ids in zip(prompt_ids, from_vllm, strict=True):
            out = model.generate(
                torch.tensor([ids], device=model.device),
                do_sample=False,
                max_new_tokens=trainer.args.max_completion_length,
                pad_token_id=tok.pad_token_id,
                eos_token_id=tok.eos_token_id,
            )
            text = tok.decode(out[0, len(ids) :], skip_special_tokens=True)
            same += text == tok.decode(vllm_ids, skip_special_tokens=True)
    return same / len(rows)


if __name__ == "__main__":
    sys.exit(main())
