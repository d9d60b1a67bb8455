"""Score the live policy on held-out prompts with the trainer's own rewards: the acceptance gate's judge.

A forecast is not always right: where the window's updates are mostly noise, a forecast can score below
the weights it started from. So before a swap is kept, the current weights and each candidate are
scored the same way: completions sampled exactly as in training (the trainer's generation settings), graded
by the trainer's reward functions and weights, averaged over prompts, samples and ranks. Every candidate is
sampled with the same seed (common random numbers), so differences between candidates are not sampling
noise; the training run's own random stream is left untouched.

Generation goes through the trainer's own engine. With `use_vllm` (colocate or server) the weights in the
policy are pushed to vLLM by TRL's own `sync_weights()` and sampled there by TRL's `generate()` with the
trainer's sampling settings: an order of magnitude faster than transformers `generate` at paper scale, where
the gate samples thousands of long completions. Without vLLM, transformers `generate` is used. The seed:
server mode passes it in the request (`SamplingParams.seed`, which vLLM advances over a prompt's `n`
samples); colocate mode seeds torch's generators before each call (the in-process engine samples from
them), since one request seed for every duplicated prompt would make their samples identical.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist
from transformers import GenerationConfig
from trl.data_utils import is_conversational, maybe_apply_chat_template
from trl.models import unwrap_model_for_generation

from alpharl_trainer.errors import AlphaRLError


def generation_config(trainer) -> GenerationConfig:
    """The trainer's sampling settings for transformers `generate` (built from args when it uses vLLM)."""
    existing = getattr(trainer, "generation_config", None)
    if isinstance(existing, GenerationConfig):
        return existing
    args, tok = trainer.args, trainer.processing_class
    return GenerationConfig(
        max_new_tokens=args.max_completion_length,
        do_sample=True,
        temperature=args.temperature,
        top_p=args.top_p,
        top_k=args.top_k,
        min_p=args.min_p,
        repetition_penalty=args.repetition_penalty,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        disable_compile=True,
    )


@dataclass(frozen=True)
class GateScore:
    mean: float
    """Mean reward over every scored completion (a completion no reward function scored is left out)."""
    per_prompt: list[float]
    """Each prompt's mean reward over its samples, in the order of the scorer's rows (NaN: none scored):
    the decision pairs candidates prompt by prompt."""
    completions: int = 0
    """Completions generated, over every rank."""
    tokens: int = 0
    """Tokens processed for them (each completion's prompt and its generated tokens, as TRL counts a
    training step's `num_input_tokens_seen`), over every rank."""
    probability: list[float] | None = None
    """With reference scoring: each prompt's probability that sampling writes its gold completion (at the
    sampler's temperature for 'exact', at 1 for 'exact_greedy'), from the same forward pass: a smoother
    measure of the same skill than a greedy outcome (0 or 1), which a race ranks its shortlist by."""


class AcceptanceScorer:
    """Mean reward of the current policy on a fixed set of held-out rows (a `datasets.Dataset` slice).

    Rows are split across ranks; each rank generates for its share and the sums are all-reduced, so every
    rank returns the same score. Reward functions must be callables (TRL's signature); reward *models*
    (nn.Module) are not supported by the gate yet: use `alpharl_acceptance_prompts: 0` with them.
    """

    def __init__(
        self, trainer, rows: list[dict], samples: int, seed: int, batch_size: int = 64, greedy: bool = False
    ):
        if any(isinstance(f, torch.nn.Module) for f in trainer.reward_funcs):
            raise AlphaRLError(
                "the acceptance gate supports reward functions, not reward models: set "
                "alpharl_acceptance_prompts: 0 to apply the forecast unscored"
            )
        if not rows or samples < 1:
            raise AlphaRLError("the acceptance gate needs at least one held-out prompt and one sample each")
        self.trainer, self.seed, self.batch_size, self.greedy = trainer, seed, batch_size, greedy
        self.samples = 1 if greedy else samples  # one greedy completion per prompt is all there is
        world = dist.get_world_size() if dist.is_initialized() else 1
        rank = dist.get_rank() if dist.is_initialized() else 0
        self.rows = rows[rank::world]
        # Under ZeRO-3 without a full gather, every forward pass is a collective: all ranks must run the
        # same number of generate calls with the same number of decoding steps.
        self.synced = bool(getattr(trainer, "is_deepspeed_enabled", False)) and world > 1
        self.batches = math.ceil(math.ceil(len(rows) / world) / batch_size)
        self._tokens = 0
        self._probability: torch.Tensor | None = None
        """(this rank's rows, 1) probabilities of the gold completion, where the scorer computes them."""
        self.generates = True
        """Whether scoring generates completions (what `GateScore.completions` counts)."""

    @property
    def engine(self) -> str:
        """'vllm' when the trainer generates with vLLM (its rollouts and this gate), else 'transformers'."""
        uses_vllm = bool(getattr(self.trainer, "use_vllm", False))
        has_engine = getattr(self.trainer, "vllm_generation", None) is not None
        return "vllm" if uses_vllm and has_engine else "transformers"

    def score(self) -> float:
        """Mean reward of the weights now in the policy (all ranks call it; all get the same value)."""
        return self.evaluate().mean

    @torch.no_grad()
    def evaluate(self) -> GateScore:
        """The mean reward and each prompt's, in the order of `rows`, on every rank."""
        self._tokens, self._probability = 0, None
        local = self._score_local()
        tokens, probability = self._tokens, self._probability
        if dist.is_initialized():  # every rank's rows, back in order
            local, tokens = _gathered(local, tokens)
            if probability is not None:  # set by the scorer's class: on every rank or on none
                probability = _gathered(probability, 0)[0]
        finite = torch.isfinite(local)
        total, count = float(local[finite].sum()), int(finite.sum())
        per_prompt = (local.nan_to_num(0.0).sum(1) / finite.sum(1)).tolist()  # NaN where nothing scored
        completions = local.numel() if self.generates else 0
        probability = None if probability is None else probability.reshape(-1).tolist()
        return GateScore(total / count if count else math.nan, per_prompt, completions, tokens, probability)

    def _score_local(self) -> torch.Tensor:
        """(this rank's rows, samples) rewards."""
        return self._score_vllm() if self.engine == "vllm" else self._score_transformers()

    def _score_vllm(self) -> torch.Tensor:
        trainer = self.trainer
        generation = trainer.vllm_generation
        generation.sync_weights()  # the weights being judged, into vLLM (collective, like every step's sync)
        saved, temperature = generation.generation_kwargs, generation.temperature
        if generation.mode == "server":
            generation.generation_kwargs = {**(saved or {}), "seed": self.seed}
        if self.greedy:
            generation.temperature = 0.0  # vLLM's greedy decoding
        rewards = []
        devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
        try:
            with torch.random.fork_rng(devices=devices):
                for b in range(self.batches):  # the same number of calls on every rank: they gather prompts
                    torch.manual_seed(self.seed + b)
                    batch = self.rows[b * self.batch_size : (b + 1) * self.batch_size]
                    rewards.append(self._score_batch_vllm(batch))
        finally:
            generation.generation_kwargs, generation.temperature = saved, temperature
        return self._per_row(rewards)

    def _score_batch_vllm(self, batch: list[dict]) -> torch.Tensor:
        trainer, tok = self.trainer, self.trainer.processing_class
        prompts = [row["prompt"] for row in batch for _ in range(self.samples)]
        prompt_ids, images = ([], None) if not prompts else trainer._tokenize_prompts(prompts)[:2]
        _, completion_ids, _, _ = trainer.vllm_generation.generate(
            prompts=prompt_ids, images=images, num_generations=self.samples
        )
        self._tokens += sum(len(ids) for ids in prompt_ids)
        return self._grade(batch, [list(ids) for ids in completion_ids], tok.eos_token_id)

    def _score_transformers(self) -> torch.Tensor:
        trainer = self.trainer
        tok = trainer.processing_class
        config = copy.deepcopy(generation_config(trainer))
        config.num_return_sequences = self.samples
        if self.greedy:
            config.do_sample = False
            config.temperature = config.top_p = config.top_k = config.min_p = None
        rewards = []
        with (
            self._policy() as policy,
            torch.random.fork_rng(devices=[torch.cuda.current_device()] if torch.cuda.is_available() else []),
        ):
            torch.manual_seed(self.seed)
            side, tok.padding_side = tok.padding_side, "left"
            try:
                for b in range(self.batches):
                    batch = self.rows[b * self.batch_size : (b + 1) * self.batch_size]
                    rewards.append(self._score_batch(policy, tok, config, batch))
            finally:
                tok.padding_side = side
        return self._per_row(rewards)

    @contextmanager
    def _policy(self) -> Iterator:
        """The policy to score with, in eval mode and unwrapped for generation (ZeRO-3 weights gathered when
        the trainer gathers them to generate); its training mode is restored after."""
        trainer = self.trainer
        was_training = trainer.model.training
        trainer.model.eval()
        try:
            with unwrap_model_for_generation(
                trainer.model_wrapped,
                trainer.accelerator,
                gather_deepspeed3_params=trainer.args.ds3_gather_for_generation,
            ) as policy:
                yield policy
        finally:
            if was_training:
                trainer.model.train()

    def _score_batch(self, policy, tok, config: GenerationConfig, batch: list[dict]) -> torch.Tensor:
        device = self.trainer.accelerator.device
        texts = [maybe_apply_chat_template(row, tok)["prompt"] for row in batch] or [tok.eos_token]
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        out = policy.generate(**enc, generation_config=config, synced_gpus=self.synced)
        ids = out[:, enc["input_ids"].shape[1] :].tolist()
        if batch:  # each completion's prompt, without its padding
            self._tokens += int(enc["attention_mask"].sum()) * self.samples
        return self._grade(batch, ids, config.eos_token_id)  # a rank with no rows joined the forward passes

    def _grade(self, batch: list[dict], completion_ids: list[list[int]], eos) -> torch.Tensor:
        """The rewards of the `samples` completions of each row (token ids cut at EOS), in row order."""
        if not batch:
            return torch.zeros(0, dtype=torch.float64)
        completion_ids = [_until_eos(ids, eos) for ids in completion_ids]
        self._tokens += sum(len(ids) for ids in completion_ids)
        completions = self.trainer.processing_class.batch_decode(completion_ids, skip_special_tokens=True)
        if is_conversational(batch[0]):
            completions = [[{"role": "assistant", "content": c}] for c in completions]
        rows = [row for row in batch for _ in range(self.samples)]
        return self._rewards(rows, completions, completion_ids)

    def _per_row(self, rewards: list[torch.Tensor]) -> torch.Tensor:
        """(this rank's rows, samples) rewards; NaN where no reward function scored a completion."""
        flat = torch.cat(rewards) if rewards else torch.zeros(0, dtype=torch.float64)
        return flat.reshape(-1, self.samples)

    def _rewards(self, rows: list[dict], completions: list, completion_ids: list[list[int]]) -> torch.Tensor:
        """Weighted sum over reward functions per completion, as TRL combines them (None counts as NaN)."""
        trainer = self.trainer
        columns = {k: [row[k] for row in rows] for k in rows[0] if k not in ("prompt", "completion")}
        per_func = []
        for func in trainer.reward_funcs:
            values = func(
                prompts=[row["prompt"] for row in rows],
                completions=completions,
                completion_ids=completion_ids,
                trainer_state=trainer.state,
                **columns,
            )
            per_func.append([math.nan if v is None else float(v) for v in values])
        weights = trainer.reward_weights.to(torch.float64)
        values = torch.tensor(per_func, dtype=torch.float64).T  # (completions, funcs)
        return (values * weights).nansum(dim=1).where(~values.isnan().all(dim=1), torch.nan)


def _gathered(local: torch.Tensor, tokens: int) -> tuple[torch.Tensor, int]:
    """Rank r holds rows r, r + world, ...: every rank's (rows, columns) gathered back in row order, and the
    tokens summed over ranks."""
    shares: list = [None] * dist.get_world_size()
    dist.all_gather_object(shares, (local.tolist(), tokens))
    world, n = len(shares), sum(len(share[0]) for share in shares)
    rows = [shares[i % world][0][i // world] for i in range(n)]
    return torch.tensor(rows, dtype=torch.float64).reshape(n, local.shape[1]), sum(s[1] for s in shares)


def _until_eos(ids: list[int], eos: int | list[int] | None) -> list[int]:
    stops = set(eos if isinstance(eos, list) else [eos]) if eos is not None else set()
    for i, t in enumerate(ids):
        if t in stops:
            return ids[:i]
    return ids
