"""The acceptance gate through the trainer's own vLLM engine, on CPU.

TRL 1.16's `VLLMGeneration` runs for real, built by TRL's own GRPOTrainer with `use_vllm=True`; only what
needs a GPU stands in: the `trl vllm-serve` client (server mode) or the in-process `vllm.LLM` (colocate mode).
Both stand-ins hold the weights TRL pushes to them and sample from those weights with transformers, so every
completion the gate scores really comes from the weights vLLM was given. The runs check the sequence the gate
must follow: push W_K, sample, push each candidate, sample (same seed, the trainer's sampling settings), then
push the decided weights once, and let training continue without another sync.
"""

from __future__ import annotations

import inspect
from types import SimpleNamespace

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl.generation import vllm_generation
from trl.generation.vllm_generation import VLLMGeneration

from alpharl_trainer.trainer import AlphaRLGRPOTrainer
from tests.trainer.harness import Recorder, grpo_args, test_model_dir, tiny_trainer
from tests.trainer.test_callback import expected_weights

SAMPLES = 2  # per acceptance prompt; training samples 4 per prompt, so gate calls are told apart by n
SEED = 4321

pytestmark = pytest.mark.usefixtures("single_thread")


class Sampler:
    """What vLLM would do with the weights it was sent: sample `n` completions per prompt (transformers)."""

    def __init__(self):
        self.model = AutoModelForCausalLM.from_pretrained(test_model_dir()).eval()
        self.tok = AutoTokenizer.from_pretrained(test_model_dir())
        self.calls: list[tuple] = []

    def load(self, weights: dict[str, torch.Tensor]) -> None:
        """A whole weight push, recorded as one call."""
        self.model.load_state_dict(weights, strict=False)
        self.calls.append(("update", {n: w.detach().clone() for n, w in weights.items()}))

    @torch.no_grad()
    def sample(
        self, prompt: list[int], n: int, temperature: float, max_tokens: int
    ) -> list[tuple[list, list]]:
        out = self.model.generate(
            torch.tensor([prompt]),
            do_sample=temperature > 0,  # vLLM's temperature 0 is greedy decoding
            temperature=temperature or None,
            top_k=None,
            max_new_tokens=max_tokens,
            num_return_sequences=n,
            output_scores=True,
            return_dict_in_generate=True,
            pad_token_id=self.tok.pad_token_id,
            eos_token_id=self.tok.eos_token_id,
        )
        logps = torch.stack(out.scores, dim=1).log_softmax(-1)  # (n, steps, vocab), after temperature
        samples = []
        for seq, lp in zip(out.sequences[:, len(prompt) :].tolist(), logps, strict=True):
            end = seq.index(self.tok.eos_token_id) + 1 if self.tok.eos_token_id in seq else len(seq)
            samples.append((seq[:end], [float(lp[i, t]) for i, t in enumerate(seq[:end])]))
        return samples


class Server(Sampler):
    """Stands in for TRL's `VLLMClient` of a `trl vllm-serve` process (the methods VLLMGeneration calls)."""

    def get_server_info(self):
        return {"model_config": {"logprobs_mode": "processed_logprobs"}}

    def update_named_params(self, metadata, params):
        self.load(dict(params))

    def reset_prefix_cache(self):
        pass

    def generate(
        self, prompts, features=None, n=1, temperature=1.0, max_tokens=16, generation_kwargs=None, **_
    ):
        seed = (generation_kwargs or {}).get("seed")
        self.calls.append(("generate", n, temperature, max_tokens, seed))
        if seed is not None:
            torch.manual_seed(seed)  # vLLM seeds the request's own generator; here the server's stream
        samples = [s for p in prompts for s in self.sample(p, n, temperature, max_tokens)]
        return {
            "prompt_ids": prompts,
            "completion_ids": [ids for ids, _ in samples],
            "logprobs": [[[lp] for lp in lps] for _, lps in samples],
        }


class ColocatedLLM(Sampler):
    """Stands in for the in-process `vllm.LLM` (the attributes VLLMGeneration reaches into). TRL pushes one
    tensor per `load_weights` call and then resets the prefix cache: that reset closes one whole push."""

    def __init__(self):
        super().__init__()
        self.pending: dict[str, torch.Tensor] = {}
        model = SimpleNamespace(load_weights=lambda pairs: self.pending.update(dict(pairs)))
        worker = SimpleNamespace(model_runner=SimpleNamespace(model=model))
        self.llm_engine = SimpleNamespace(model_executor=SimpleNamespace(driver_worker=worker))

    def reset_prefix_cache(self):
        self.load(self.pending)
        self.pending = {}

    def generate(self, prompts, sampling_params, use_tqdm=False):
        p = sampling_params
        self.calls.append(("generate", len(prompts), p.temperature, p.max_tokens, getattr(p, "seed", None)))
        outputs = []
        for row in prompts:
            ((ids, lps),) = self.sample(row["prompt_token_ids"], p.n, p.temperature, p.max_tokens)
            ranked = [{t: SimpleNamespace(logprob=lp, rank=1)} for t, lp in zip(ids, lps, strict=True)]
            completion = SimpleNamespace(token_ids=ids, logprobs=ranked)
            outputs.append(SimpleNamespace(prompt_token_ids=row["prompt_token_ids"], outputs=[completion]))
        return outputs


@pytest.fixture
def vllm_stand_in(monkeypatch):
    """Install the stand-in TRL's `_init_vllm` would have connected to, for the mode of the run."""
    stand_ins = {}

    def init_vllm(self):
        if self.mode == "server":
            self.vllm_client = stand_ins.setdefault("server", Server())
        else:
            self.llm = stand_ins.setdefault("colocate", ColocatedLLM())

    monkeypatch.setattr(VLLMGeneration, "_init_vllm", init_vllm)
    monkeypatch.setattr(vllm_generation, "SamplingParams", lambda **kw: SimpleNamespace(**kw), raising=False)
    return stand_ins


def run(tmp_path, mode: str, margin: float = 0.0, **overrides):
    args = grpo_args(
        tmp_path / "run",
        use_vllm=True,
        vllm_mode=mode,
        alpharl_acceptance_prompts=4,
        alpharl_acceptance_samples=SAMPLES,
        alpharl_acceptance_seed=SEED,
        alpharl_acceptance_margin=margin,
        **overrides,
    )
    trainer = tiny_trainer(AlphaRLGRPOTrainer, args, heldout=8)
    recorder = Recorder(trainer, trainer.alpharl.window_end)
    trainer.add_callback(recorder)
    trainer.train()
    return trainer, recorder


def gate_calls(calls: list[tuple]) -> list[tuple]:
    """The calls of the window end: from the update before the first gate sample to the first training
    sample after the last one."""
    # a gate call samples SAMPLES per prompt: n = SAMPLES (server), or 4 prompts x SAMPLES rows (colocate)
    gate = [i for i, c in enumerate(calls) if c[0] == "generate" and c[1] in (SAMPLES, 4 * SAMPLES)]
    start = max(i for i in range(gate[0]) if calls[i][0] == "update")
    end = next(i for i in range(gate[-1] + 1, len(calls)) if calls[i][0] == "generate")
    return calls[start : end + 1]


def assert_same(weights: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    for name, w in expected.items():
        torch.testing.assert_close(weights[name].float(), w.float(), rtol=0, atol=1e-6, msg=name)


@pytest.mark.parametrize("mode", ["server", "colocate"])
def test_the_gate_scores_each_candidate_on_the_weights_vllm_holds_and_leaves_the_decision_there(
    tmp_path, vllm_stand_in, mode
):
    trainer, rec = run(tmp_path, mode)
    swap = trainer.alpharl.swap
    assert swap.gate_engine == "vllm" and swap.step == 6
    engine = vllm_stand_in[mode]
    calls = gate_calls(engine.calls)
    kinds = [c[0] for c in calls]
    targets = swap.targets  # current, then each candidate: push, then sample every acceptance prompt
    assert kinds == ["update", "generate"] * (1 + len(targets)) + ["update", "generate"]
    updates = [c[1] for c in calls if c[0] == "update"]
    assert_same(updates[0], rec.w_k)  # the current weights first
    for weights, target in zip(updates[1:-1], targets, strict=True):
        assert_same(weights, expected_weights(trainer, rec.w_k, target))
    assert_same(updates[-1], rec.after_swap)  # then the decided weights, once
    gate_samples = [c for c in calls if c[0] == "generate"][:-1]
    cfg = trainer.args
    for call in gate_samples:  # the trainer's sampling settings, and one seed for every candidate
        assert call[2:4] == (cfg.temperature, cfg.max_completion_length)
        assert call[4] == (SEED if mode == "server" else None)
    assert calls[-1][4] is None  # training samples next, with its own settings and no second push
    assert trainer.state.global_step == 8  # and training went on after the swap


def test_a_rollback_puts_the_current_weights_back_into_vllm(tmp_path, vllm_stand_in):
    trainer, rec = run(tmp_path, "server", margin=1e9)
    assert trainer.alpharl.swap.chosen is None
    updates = [c[1] for c in gate_calls(vllm_stand_in["server"].calls) if c[0] == "update"]
    assert_same(updates[-1], rec.w_k)  # vLLM held the last candidate until this push


def test_the_same_weights_score_the_same_through_vllm(tmp_path, vllm_stand_in):
    """Common random numbers through the engine: scoring W_K twice gives one value (server: request seed;
    colocate: torch's stream, seeded before each call)."""
    from alpharl_trainer.trainer.acceptance import AcceptanceScorer

    for mode in ("server", "colocate"):
        trainer, _ = run(tmp_path / mode, mode)
        rows = [trainer.eval_dataset[i] for i in range(4)]
        scorer = AcceptanceScorer(trainer, rows, SAMPLES, SEED)
        first = scorer.score()
        torch.rand(1000)  # training moved the global random stream on in between
        assert scorer.engine == "vllm" and scorer.score() == first, mode


def test_trl_s_vllm_interface_is_the_one_the_gate_was_written_against():
    """The gate calls these members of TRL 1.16's VLLMGeneration and trainers; an upgrade that moves them must
    fail here, not at the window end of a paper-scale run."""
    from trl import GRPOTrainer, RLOOTrainer

    assert list(inspect.signature(VLLMGeneration.generate).parameters)[:4] == [
        "self", "prompts", "images", "num_generations"
    ]  # fmt: skip
    assert list(inspect.signature(VLLMGeneration.sync_weights).parameters) == ["self"]
    source = inspect.getsource(VLLMGeneration.generate)
    assert '"generation_kwargs": self.generation_kwargs' in source  # server: the request seed travels here
    assert "generation_kwargs.update(self.generation_kwargs)" in source
    for trainer_cls in (GRPOTrainer, RLOOTrainer):
        assert list(inspect.signature(trainer_cls._tokenize_prompts).parameters) == ["self", "prompts"]
        assert "self._last_loaded_step" in inspect.getsource(trainer_cls._generate_single_turn)


def test_greedy_scoring_goes_through_vllm_at_temperature_zero(tmp_path, vllm_stand_in):
    """The verifier-task gate through the same engine: one completion per prompt, temperature 0; training
    samples at its own temperature afterwards."""
    trainer, _ = run(
        tmp_path, "server", alpharl_acceptance_scoring="greedy", alpharl_acceptance_margin_se=2.0
    )
    swap = trainer.alpharl.swap
    assert swap.scoring == "greedy" and set(swap.paired_se) == {f"{t:g}" for t in swap.targets}
    samples = [c for c in vllm_stand_in["server"].calls if c[0] == "generate"]
    gate = [c for c in samples if c[1] == 1]
    assert len(gate) == 1 + len(swap.targets) and all(c[2] == 0.0 for c in gate)
    assert all(c[2] == trainer.args.temperature for c in samples if c[1] != 1)
