"""PPO with a critic, on TRL's rollout machinery (TRL 1.16 has no PPO trainer), and its AlphaRL version.

`PPOTrainer` subclasses TRL's `RLOOTrainer` and replaces only the two algorithm-specific parts:

- scoring a rollout (`_generate_and_score_completions`): the same generation (transformers `generate`, or
  vLLM) and reward functions as GRPO/RLOO, then per token: the old log-prob, the critic's value, the reward
  (the sequence reward on the last token, minus `beta` x KL to the reference on every token), GAE advantages
  (whitened over the whole rollout batch) and returns;
- the loss (`_compute_loss`): PPO's clipped surrogate plus `vf_coef` x the clipped value loss.

Rollout buffering, mini-batches and epochs (`steps_per_generation`, `num_iterations`), the KL reference model,
logging and the Trainer's loop (gradient clipping, DDP/DeepSpeed, checkpoints) are TRL's/transformers' own.

The critic (`ValueModel`) is attached to the policy as the submodule `policy.value_model`, so that one module
holds everything the optimizer, DDP/DeepSpeed and checkpoint resume must see, while `trainer.model` stays the
causal LM the AlphaRL callback, generation and evaluation expect. Saved model folders hold the policy alone
(loadable with `from_pretrained`, pushable to vLLM); the critic goes beside it in `value_model.safetensors`.
"""

from __future__ import annotations

import copy
import os
from contextlib import contextmanager

import torch
from accelerate.utils import gather_object
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import PreTrainedModel
from trl import RLOOTrainer
from trl.models.utils import disable_gradient_checkpointing
from trl.trainer.utils import nanstd, pad

from alpharl_trainer.atomic import atomic_file
from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.trainer.grpo_rloo import AlphaRLMixin
from alpharl_trainer.trainer.ppo_config import VALUE_MODEL, PPOConfig
from alpharl_trainer.trainer.ppo_math import (
    explained_variance,
    gae,
    masked_mean,
    policy_loss,
    value_loss,
    whiten,
)

VALUE_WEIGHTS = "value_model.safetensors"
"""The critic's weights, beside the policy's in every saved folder (checkpoints and the final model)."""


class ValueModel(nn.Module):
    """V(s) at every position: a linear head on hidden states, the policy's own (`backbone` None) or its own
    backbone's. The head starts at zero, so the first advantages are the plain returns, not critic noise."""

    def __init__(self, hidden_size: int, backbone: nn.Module | None = None, dtype: torch.dtype | None = None):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(hidden_size, 1, dtype=dtype)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """(batch, positions, hidden) -> float32 values (batch, positions)."""
        return self.head(hidden.to(self.head.weight.dtype)).squeeze(-1).float()


def attach_value_model(policy: PreTrainedModel, kind: str) -> ValueModel:
    """Give `policy` a critic as `policy.value_model` ('head' or 'separate'; an existing one is kept)."""
    existing = getattr(policy, VALUE_MODEL, None)
    if existing is not None:
        if (existing.backbone is None) != (kind == "head"):
            raise AlphaRLError(f"the policy already has a value model that is not of kind {kind!r}")
        return existing
    backbone = copy.deepcopy(policy.base_model) if kind == "separate" else None
    critic = ValueModel(policy.config.get_text_config().hidden_size, backbone, dtype=policy.dtype)
    policy.add_module(VALUE_MODEL, critic.to(policy.device))
    return critic


def _is_critic(name: str) -> bool:
    return name.startswith(f"{VALUE_MODEL}.")


class PPOTrainer(RLOOTrainer):
    """PPO with a critic (GAE, clipped policy and value losses, optional KL-to-reference reward penalty).

    Same inputs as TRL's RLOOTrainer: a causal LM instance, reward functions, a prompt dataset; see
    `PPOConfig` for the settings. Text prompts only; no PEFT.
    """

    _name = "PPO"
    _tag_names = ["trl", "ppo"]
    _paper = {
        "title": "Proximal Policy Optimization Algorithms",
        "id": "1707.06347",
        "citation": "@article{schulman2017proximal, title={Proximal Policy Optimization Algorithms}, "
        "author={Schulman, John and others}, journal={arXiv:1707.06347}, year={2017}}",
    }

    def __init__(
        self,
        model: PreTrainedModel,
        reward_funcs,
        args: PPOConfig,
        train_dataset=None,
        eval_dataset=None,
        processing_class=None,
        callbacks=None,
        optimizers=(None, None),
    ):
        if not isinstance(args, PPOConfig):
            raise AlphaRLError(f"PPOTrainer needs a PPOConfig, got {type(args).__name__}")
        if not isinstance(model, PreTrainedModel):
            raise AlphaRLError("PPOTrainer needs the policy as a loaded causal LM (PreTrainedModel) instance")
        if hasattr(model, "peft_config"):
            raise AlphaRLError("PPOTrainer does not support PEFT models")
        attach_value_model(model, args.value_model)
        super().__init__(
            model=model,
            reward_funcs=reward_funcs,
            args=args,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=processing_class,
            callbacks=callbacks,
            optimizers=optimizers,
        )
        if self.use_vllm:  # vLLM holds the policy only: never push the critic's weights to it
            named = self.vllm_generation._iter_named_params
            self.vllm_generation._iter_named_params = lambda: (
                (n, p) for n, p in named() if not _is_critic(n)
            )

    # ---- forward passes --------------------------------------------------------------------------------
    @contextmanager
    def _policy_hidden_states(self):
        """Collect the policy backbone's last hidden states of each forward in the block (value head)."""
        captured: list[torch.Tensor] = []
        if self.model.value_model.backbone is not None:
            yield captured
            return
        hook = self.model.base_model.register_forward_hook(
            lambda _module, _args, out: captured.append(out.last_hidden_state)
        )
        try:
            yield captured
        finally:
            hook.remove()

    def _logps_and_values(
        self, model, input_ids, attention_mask, n_completion, batch_size=None, entropy=False
    ):
        """Per completion token: log-prob under `model` (the wrapped policy), the critic's value of the state
        before the token, and optionally the entropy. Values come from the same forward for a value head."""
        with self._policy_hidden_states() as hidden:
            logps, entropies, _ = self._get_per_token_logps_and_entropies(
                model, input_ids, attention_mask, n_completion, batch_size, compute_entropy=entropy
            )
        critic = self.model.value_model
        if critic.backbone is None:
            states = torch.cat(hidden)
        else:
            states = critic.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        # the state before completion token t is the position just before it: the one that predicts it
        return logps, critic(states[:, -n_completion - 1 : -1]), entropies

    def _padded(self, ids: list[list[int]], side: str) -> tuple[torch.Tensor, torch.Tensor]:
        tensors = [torch.tensor(row, dtype=torch.long) for row in ids]
        masks = [torch.ones_like(t) for t in tensors]
        device = self.accelerator.device
        kw = dict(padding_side=side, pad_to_multiple_of=self.pad_to_multiple_of)
        return (
            pad(tensors, padding_value=self._tokenizer.pad_token_id, **kw).to(device),
            pad(masks, padding_value=0, **kw).to(device),
        )

    # ---- rollout -----------------------------------------------------------------------------------------
    def _generate_and_score_completions(self, inputs: list[dict]) -> dict[str, torch.Tensor]:
        mode = "train" if self.model.training else "eval"
        if "image" in inputs[0] or "images" in inputs[0]:
            raise AlphaRLError("PPOTrainer supports text prompts only")
        prompts = [x["prompt"] for x in inputs]
        prompt_ids_list, completion_ids_list, completions = self._generate(prompts)
        prompt_ids, prompt_mask = self._padded(prompt_ids_list, "left")
        completion_ids, completion_mask = self._padded(completion_ids_list, "right")
        if self.mask_truncated_completions:
            stops = {*self.eos_token_ids, self._tokenizer.pad_token_id}
            finished = [bool(ids) and ids[-1] in stops for ids in completion_ids_list]
            completion_mask = completion_mask * torch.tensor(finished, device=completion_mask.device)[:, None]
        input_ids = torch.cat([prompt_ids, completion_ids], dim=1)
        attention_mask = torch.cat([prompt_mask, completion_mask], dim=1)
        n_completion = completion_ids.size(1)
        batch_size = (
            self.args.per_device_train_batch_size if mode == "train" else self.args.per_device_eval_batch_size
        )
        with (
            torch.no_grad(),
            disable_gradient_checkpointing(self.model, self.args.gradient_checkpointing_kwargs),
        ):
            old_logps, values, _ = self._logps_and_values(
                self.model, input_ids, attention_mask, n_completion, batch_size
            )
            if self.beta != 0.0:
                ref_logps, _, _ = self._get_per_token_logps_and_entropies(
                    self.ref_model, input_ids, attention_mask, n_completion, batch_size
                )

        # sequence rewards: computed on this rank's completions, gathered over ranks by TRL
        per_func = self._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        unscorable = torch.isnan(per_func).all(dim=1)
        scores = (per_func * self.reward_weights.to(per_func.device)).nansum(dim=1)
        local = slice(
            self.accelerator.process_index * len(prompts), (self.accelerator.process_index + 1) * len(prompts)
        )
        completion_mask = completion_mask * (~unscorable[local]).long()[:, None]  # no signal: no update
        mask = completion_mask.float()

        token_rewards = torch.zeros_like(old_logps)
        if self.beta != 0.0:
            log_ratio = old_logps - ref_logps
            kl = log_ratio if self.args.kl_estimator == "k1" else torch.expm1(-log_ratio) + log_ratio
            token_rewards -= self.beta * kl
        last = (completion_mask.sum(dim=1) - 1).clamp(min=0)
        token_rewards[torch.arange(len(last)), last] += scores[local].to(token_rewards) * mask.amax(dim=1)
        advantages, returns = gae(token_rewards, values, mask, self.args.gamma, self.args.lam)
        if self.normalize_advantages:
            advantages = whiten(advantages, mask)

        metrics = self._metrics[mode]
        scored = scores.clone()
        scored[unscorable] = torch.nan
        metrics["reward"].append(torch.nanmean(scored).item())
        metrics["reward_std"].append(nanstd(scored).item())
        for i, name in enumerate(self.reward_func_names):
            metrics[f"rewards/{name}/mean"].append(torch.nanmean(per_func[:, i]).item())
        if self.beta != 0.0:
            metrics["kl"].append(self._global_token_mean(kl, mask))
        metrics["values/mean"].append(self._global_token_mean(values, mask))
        metrics["returns/mean"].append(self._global_token_mean(returns, mask))
        metrics["values/explained_variance"].append(explained_variance(values, returns, mask))
        self._logs["prompt"].extend(gather_object(prompts))
        self._logs["completion"].extend(gather_object(completions))
        for i, name in enumerate(self.reward_func_names):
            self._logs["rewards"][name].extend(per_func[:, i].tolist())
        self._logs["advantages"].extend(self.accelerator.gather(advantages[:, 0]).tolist())
        return {
            "prompt_ids": prompt_ids,
            "prompt_mask": prompt_mask,
            "completion_ids": completion_ids,
            "completion_mask": completion_mask,
            "old_logps": old_logps,
            "old_values": values,
            "advantages": advantages,
            "returns": returns,
        }

    def _global_token_mean(self, x: torch.Tensor, mask: torch.Tensor) -> float:
        sums = self.accelerator.reduce(torch.stack([(x * mask).sum(), mask.sum()]), reduction="sum")
        return (sums[0] / sums[1].clamp(min=1)).item()

    # ---- loss ----------------------------------------------------------------------------------------------
    def _compute_loss(self, model, inputs):
        completion_ids, mask = inputs["completion_ids"], inputs["completion_mask"].float()
        input_ids = torch.cat([inputs["prompt_ids"], completion_ids], dim=1)
        attention_mask = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
        logps, values, entropies = self._logps_and_values(
            model, input_ids, attention_mask, completion_ids.size(1), entropy=True
        )
        pg_loss, pg_clipped = policy_loss(
            logps, inputs["old_logps"], inputs["advantages"], mask, self.epsilon_low, self.epsilon_high
        )
        vf_loss, vf_clipped = value_loss(
            values, inputs["old_values"], inputs["returns"], mask, self.args.epsilon_value
        )
        loss = pg_loss + self.args.vf_coef * vf_loss

        mode = "train" if self.model.training else "eval"
        approx_kl = 0.5 * (logps - inputs["old_logps"]) ** 2
        stats = torch.stack(
            [
                pg_loss,
                vf_loss,
                pg_clipped,
                vf_clipped,
                masked_mean(approx_kl, mask),
                masked_mean(entropies, mask),
            ]
        ).detach()
        stats = self.accelerator.gather(stats[None]).mean(dim=0).tolist()
        names = (
            "loss/policy",
            "loss/value",
            "clip_ratio/policy",
            "clip_ratio/value",
            "policy/approx_kl",
            "entropy",
        )
        for name, value in zip(names, stats, strict=True):
            self._metrics[mode][name].append(value)
        return loss

    # ---- optimizer and checkpoints -------------------------------------------------------------------------
    def create_optimizer(self, model=None):
        """The Trainer's optimizer; with `value_learning_rate` the critic's parameters get own groups."""
        optimizer = super().create_optimizer(model)
        lr = self.args.value_learning_rate
        if lr is None:
            return optimizer
        critic = {id(p) for p in self.model.value_model.parameters()}
        for group in list(optimizer.param_groups):
            own = [p for p in group["params"] if id(p) in critic]
            if own:
                group["params"] = [p for p in group["params"] if id(p) not in critic]
                optimizer.add_param_group(
                    {**{k: v for k, v in group.items() if k != "params"}, "params": own, "lr": lr}
                )
        return optimizer

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        """The policy as a plain `from_pretrained` folder, the critic beside it in VALUE_WEIGHTS."""
        output_dir = output_dir or self.args.output_dir
        state_dict = self.model.state_dict() if state_dict is None else state_dict
        policy = {k: v for k, v in state_dict.items() if not _is_critic(k)}
        critic = {k[len(VALUE_MODEL) + 1 :]: v.contiguous() for k, v in state_dict.items() if _is_critic(k)}
        super()._save(output_dir, state_dict=policy)
        if self.args.should_save and critic:
            with atomic_file(os.path.join(output_dir, VALUE_WEIGHTS)) as tmp:
                save_file(critic, str(tmp), metadata={"format": "pt", "value_model": self.args.value_model})

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        super()._load_from_checkpoint(resume_from_checkpoint, model)
        path = os.path.join(resume_from_checkpoint, VALUE_WEIGHTS)
        if not os.path.isfile(path):
            raise AlphaRLError(
                f"resuming PPO from {resume_from_checkpoint}, but its critic {VALUE_WEIGHTS} is missing"
            )
        (model or self.model).value_model.load_state_dict(load_file(path))

    def _issue_warnings_after_load(self, load_result) -> None:
        """The policy file lacks the critic by design (it has its own file): don't warn about it."""
        load_result.missing_keys[:] = [k for k in load_result.missing_keys if not _is_critic(k)]
        super()._issue_warnings_after_load(load_result)


class AlphaRLPPOTrainer(AlphaRLMixin, PPOTrainer):
    """PPO with AlphaRL. With `AlphaRLPPOConfig` the critic is never extrapolated (see alpharl_critic)."""

    _name = "AlphaRL-PPO"
    _tag_names = ["trl", "ppo", "alpharl"]
