import copy
import itertools
import json
import math
from dataclasses import dataclass, field

import pytest
import torch

from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.evaluate import (
    EvalResult,
    EvalSettings,
    Sampling,
    TransformersEngine,
    evaluate,
    load_folder,
    pass_at_k,
    render_prompts,
    teacher_forced,
    write_results,
)
from alpharl_trainer.tasks.base import Problem

pytestmark = pytest.mark.usefixtures("single_thread")

PROMPTS = ["1+2=", "34+5=", "678+90=", "12+345=", "5+5=", "77+8=", "1234+5678=", "9+99=", "3+4=", "56+78="]
MAX_NEW = 10


@dataclass
class ExactTask:
    """A minimal grader: the completion, stripped, must equal the answer."""

    name: str = field(default="exact", init=False)

    def extract_answer(self, completion: str) -> str | None:
        return completion.strip() or None

    def score(self, completion: str, answer: str) -> float:
        return float(completion.strip() == answer)


@pytest.fixture(scope="module")
def policy():
    """A random tiny Qwen2 over the character tokenizer whose LM head has a bias on EOS, so greedy decoding
    stops after a few tokens on some prompts and runs to the length limit on others."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from alpharl_trainer.policies.build_tiny import build_tokenizer

    tokenizer = build_tokenizer()
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=128,
        tie_word_embeddings=False,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model = Qwen2ForCausalLM(config).eval()
    head = torch.nn.Linear(config.hidden_size, config.vocab_size, bias=True)
    with torch.no_grad():
        head.weight.copy_(model.lm_head.weight)
        head.bias.zero_()
        head.bias[tokenizer.eos_token_id] = 0.3
    model.lm_head = head
    return model, tokenizer


@torch.inference_mode()
def reference_greedy(model, tokenizer, prompt: str) -> tuple[list[int], str]:
    """Greedy continuation of one prompt, unbatched (no padding at all)."""
    ids = torch.tensor([tokenizer(prompt)["input_ids"]])
    out = model.generate(
        input_ids=ids, max_new_tokens=MAX_NEW, do_sample=False, pad_token_id=tokenizer.pad_token_id
    )
    new = out[0, ids.shape[1] :].tolist()
    return new, tokenizer.decode(new, skip_special_tokens=True)


def test_pass_at_k_matches_brute_force_enumeration():
    for n in range(1, 7):
        for c in range(n + 1):
            outcomes = [True] * c + [False] * (n - c)
            for k in range(1, n + 1):
                subsets = list(itertools.combinations(outcomes, k))
                expected = sum(any(s) for s in subsets) / len(subsets)
                assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)
    assert pass_at_k(200, 3, 1) == pytest.approx(3 / 200)
    with pytest.raises(AlphaRLError):
        pass_at_k(4, 1, 5)


class ScriptedEngine:
    """Returns completions from a table: prompt -> (greedy completion, sampled completions)."""

    name = "scripted"

    def __init__(self, table: dict[str, tuple[str, list[str]]]):
        self.table, self.calls = table, []

    def generate(self, prompts, sampling):
        self.calls.append(sampling)
        if sampling.greedy:
            return [[self.table[p][0]] for p in prompts]
        return [self.table[p][1][: sampling.n] for p in prompts]


def test_evaluate_reports_greedy_avg_and_pass_at_k_per_category():
    problems = [
        Problem("a", "1", "1", category="easy"),
        Problem("b", "2", "2", category="easy"),
        Problem("c", "3", "3", category="hard"),
    ]
    engine = ScriptedEngine(
        {"a": ("1", ["1", "1", "1", "1"]), "b": ("x", ["2", "x", "x", "x"]), "c": ("x", ["x", "x", "x", "x"])}
    )
    settings = EvalSettings(samples=4, temperature=0.7, top_p=0.9, max_new_tokens=5, pass_k=(1, 2), seed=3)
    result = evaluate(engine, ExactTask(), problems, settings)
    s = result.summary
    assert (s["target"], s["engine"], s["problems"]) == ("exact", "scripted", 3)
    assert s["greedy_accuracy"] == pytest.approx(1 / 3)
    assert s["avg@4"] == pytest.approx((1 + 0.25 + 0) / 3)
    assert s["pass@1"] == pytest.approx(s["avg@4"])
    assert s["pass@2"] == pytest.approx((1 + 0.5 + 0) / 3)  # one correct of 4: 1 - C(3,2)/C(4,2)
    assert s["per_category"]["hard"] == {
        "problems": 1,
        "greedy_accuracy": 0.0,
        "avg@4": 0.0,
        "pass@1": 0.0,
        "pass@2": 0.0,
    }
    assert engine.calls == [Sampling(max_new_tokens=5), Sampling(4, 0.7, 0.9, 5, 3)]
    record = result.records[1]
    assert record["greedy"] == {"completion": "x", "extracted": "x", "score": 0.0}
    assert [x["score"] for x in record["samples"]] == [1.0, 0.0, 0.0, 0.0]
    assert record["pass_at_k"] == {"1": 0.25, "2": 0.5}


def test_settings_and_sampling_reject_impossible_requests():
    with pytest.raises(AlphaRLError, match="nothing to evaluate"):
        EvalSettings(greedy=False, samples=0)
    with pytest.raises(AlphaRLError, match="pass@k"):
        EvalSettings(samples=4, pass_k=(8,))
    with pytest.raises(AlphaRLError, match="one completion"):
        Sampling(n=2, temperature=0.0)
    with pytest.raises(AlphaRLError, match="top_p"):
        Sampling(temperature=1.0, top_p=0.0)
    with pytest.raises(AlphaRLError, match="no problems"):
        evaluate(ScriptedEngine({}), ExactTask(), [], EvalSettings())


def test_batched_left_padded_greedy_equals_unbatched(policy):
    model, tokenizer = policy
    engine = TransformersEngine(model, tokenizer, batch_size=4, progress=False)
    batched = engine.generate(PROMPTS, Sampling(max_new_tokens=MAX_NEW))
    assert batched == [[reference_greedy(model, tokenizer, p)[1]] for p in PROMPTS]
    lengths = [len(c[0]) for c in batched]
    assert min(lengths) < MAX_NEW and max(lengths) == MAX_NEW  # some stop at EOS, some hit the limit


def test_sampling_is_seeded_and_returns_n_per_prompt(policy):
    model, tokenizer = policy
    engine = TransformersEngine(model, tokenizer, batch_size=6, progress=False)
    sampling = Sampling(n=3, temperature=1.0, top_p=0.95, max_new_tokens=6, seed=1)
    first = engine.generate(PROMPTS, sampling)
    assert [len(c) for c in first] == [3] * len(PROMPTS)
    assert all(len(text) <= 6 for c in first for text in c)
    assert engine.generate(PROMPTS, sampling) == first
    other = engine.generate(PROMPTS, Sampling(n=3, temperature=1.0, top_p=0.95, max_new_tokens=6, seed=2))
    assert other != first


def test_chat_prompts_and_a_missing_pad_token(policy):
    model, tokenizer = policy
    tokenizer = copy.deepcopy(tokenizer)
    assert render_prompts(tokenizer, ["q"], chat=False) == ["q"]
    with pytest.raises(AlphaRLError, match="no chat template"):
        render_prompts(tokenizer, ["q"], chat=True)
    tokenizer.chat_template = (
        "{% for m in messages %}Q:{{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}A:{% endif %}"
    )
    assert render_prompts(tokenizer, ["1+2="], chat=True) == ["Q:1+2=\nA:"]
    tokenizer.pad_token = None
    engine = TransformersEngine(model, tokenizer, chat=True, progress=False)
    assert tokenizer.pad_token == tokenizer.eos_token  # batches need padding; EOS serves, as in TRL
    chat_out = engine.generate(["1+2=", "34+5="], Sampling(max_new_tokens=MAX_NEW))
    assert chat_out == [[reference_greedy(model, tokenizer, p)[1]] for p in ["Q:1+2=\nA:", "Q:34+5=\nA:"]]


def test_teacher_forced_exact_is_greedy_reproduction(policy):
    """exact <=> greedy decoding produces the gold completion and then EOS."""
    model, tokenizer = policy
    problems, stops = [], []
    for prompt in PROMPTS:
        ids, text = reference_greedy(model, tokenizer, prompt)
        specials = set(tokenizer.all_special_ids)
        if text and not specials & set(ids[:-1]):
            problems.append(Problem(prompt, text, text))
            stops.append(ids[-1] == tokenizer.eos_token_id)
    assert any(stops) and not all(stops)  # both kinds present, so the assertion below can fail
    scores = teacher_forced(model, tokenizer, problems, batch_size=3)
    assert scores["exact_per_problem"] == stops
    assert scores["exact"] == pytest.approx(sum(stops) / len(stops))
    wrong = [
        Problem(p.prompt, p.answer, p.solution[:-1] + ("a" if p.solution[-1] != "a" else "b"))
        for p in problems
    ]
    assert not any(teacher_forced(model, tokenizer, wrong)["exact_per_problem"])


@torch.inference_mode()
def test_teacher_forced_logprob_equals_unpadded_sum(policy):
    model, tokenizer = policy
    problems = [
        Problem(p, "", s)
        for p, s in zip(PROMPTS, ["3", "93", "7", "753", "01", "58", "2196", "801", "7", "431"], strict=True)
    ]
    scores = teacher_forced(model, tokenizer, problems, batch_size=4)
    for problem, got in zip(problems, scores["logprob_per_problem"], strict=True):
        prompt = tokenizer(problem.prompt)["input_ids"]
        gold = tokenizer(problem.solution, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        logits = model(input_ids=torch.tensor([prompt + gold])).logits[0].float()
        logprobs = torch.log_softmax(logits, -1)
        expected = sum(logprobs[len(prompt) - 1 + j, tok].item() for j, tok in enumerate(gold))
        assert got == pytest.approx(expected, abs=1e-4)
    assert scores["logprob"] == pytest.approx(sum(scores["logprob_per_problem"]) / len(problems))


def test_teacher_forced_needs_gold_completions(policy):
    with pytest.raises(AlphaRLError, match="non-empty prompt and solution"):
        teacher_forced(*policy, [Problem("1+1=", "2", "")])


def test_write_results_writes_jsonl_and_summary_atomically(tmp_path):
    result = EvalResult({"greedy_accuracy": 0.5}, [{"index": 0, "prompt": "é"}, {"index": 1}])
    results_path, summary_path = write_results(result, tmp_path / "out")
    assert [json.loads(line) for line in results_path.read_text().splitlines()] == result.records
    assert json.loads(summary_path.read_text()) == result.summary
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["results.jsonl", "summary.json"]


def test_load_policy_rejects_a_folder_without_a_model(tmp_path):
    with pytest.raises(AlphaRLError, match="no config.json"):
        load_folder(tmp_path)


@pytest.mark.slow
def test_tiny_model_teacher_forced_equals_greedy_and_is_fast(tiny_model_dir):
    """On the real tiny policy: teacher-forced exactness equals greedy task accuracy problem by problem.
    (How long evaluation takes is a measurement, not a test: a wall-clock limit passes or fails with the
    machine's load.)"""
    from alpharl_trainer.tasks import get_task

    model, tokenizer = load_folder(tiny_model_dir)
    for name in ("arithmetic", "sort"):
        task = get_task(name)
        problems = task.problems("heldout", 200)
        result = evaluate(
            TransformersEngine(model, tokenizer, progress=False), task, problems, EvalSettings()
        )
        greedy = [r["greedy"]["score"] == 1.0 for r in result.records]
        scores = teacher_forced(model, tokenizer, problems)
        assert scores["exact_per_problem"] == greedy, name
        assert 0.0 < sum(greedy) < len(greedy) and math.isfinite(scores["logprob"])
