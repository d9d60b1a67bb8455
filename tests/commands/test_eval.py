import json
from pathlib import Path

import pytest
import torch

from alpharl_trainer.cli import main


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A random tiny Qwen2 with the character tokenizer, saved as a Hugging Face folder."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from alpharl_trainer.policies.build_tiny import build_tokenizer

    tokenizer = build_tokenizer()
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(
        Qwen2Config(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=2,
            max_position_embeddings=256,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
    )
    path = tmp_path_factory.mktemp("ckpt")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(autouse=True)
def restore_threads():
    """`--threads` sets torch's global thread count; keep it from leaking into other tests."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def read_outputs(out: Path) -> tuple[list[dict], dict]:
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    return records, json.loads((out / "summary.json").read_text())


def test_eval_on_a_task_writes_results_and_summary(checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["eval", str(checkpoint), "--task", "arithmetic", "--split", "heldout", "--n-problems", "12"]
    argv += ["--samples", "3", "--pass-k", "1,3", "--max-new-tokens", "4", "--teacher-forced"]
    argv += ["--out", str(out), "--no-progress", "--threads", "1"]
    assert main(argv) == 0
    records, summary = read_outputs(out)
    assert len(records) == 12 and all(len(r["samples"]) == 3 and "greedy" in r for r in records)
    assert all(len(s["completion"]) <= 4 for r in records for s in r["samples"])  # one character per token
    # the summary is what the per-problem records say (avg@3 = pass@1 with 3 samples; pass@3 = any of 3)
    greedy = [r["greedy"]["score"] for r in records]
    sampled = [[s["score"] for s in r["samples"]] for r in records]
    assert summary["greedy_accuracy"] == pytest.approx(sum(greedy) / 12)
    assert summary["avg@3"] == pytest.approx(sum(map(sum, sampled)) / 36) == pytest.approx(summary["pass@1"])
    assert summary["pass@3"] == pytest.approx(sum(max(s) for s in sampled) / 12)
    assert sum(c["problems"] for c in summary["per_category"].values()) == 12
    assert summary["target"] == "arithmetic" and summary["checkpoint"] == str(checkpoint)
    assert summary["problems"] == 12 and summary["samples"] == 3 and summary["pass_k"] == [1, 3]
    assert summary["teacher_forced"]["logprob"] < 0
    assert json.loads(capsys.readouterr().out.split("\nwrote ")[0]) == summary


def test_eval_on_a_benchmark_file_defaults_out_into_the_checkpoint(checkpoint, tmp_path):
    bench = tmp_path / "tiny_bench.jsonl"
    bench.write_text(
        "".join(json.dumps({"question": f"{i}+1?", "answer": float(i + 1)}) + "\n" for i in range(5))
    )
    argv = ["eval", str(checkpoint), "--benchmark", str(bench), "--limit", "3", "--max-new-tokens", "3"]
    assert main([*argv, "--no-progress", "--threads", "1"]) == 0
    records, summary = read_outputs(checkpoint / "eval" / "tiny_bench")
    assert [r["answer"] for r in records] == ["1", "2", "3"]
    assert records[0]["prompt"].startswith("0+1?\nPlease reason step by step")
    assert records[0]["meta"]["line"] == 1
    assert summary["problems"] == 3 and "avg@0" not in summary


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--benchmark", "x.jsonl", "--teacher-forced"], "--teacher-forced needs a synthetic task"),
        (["--task", "nope"], "unknown task 'nope'"),
        (["--task", "arithmetic", "--samples", "2", "--pass-k", "4"], "pass@k needs"),
        (["--task", "arithmetic", "--task-option", "mix"], "KEY=VALUE"),
        (["--task", "arithmetic", "--no-greedy"], "nothing to evaluate"),
    ],
)
def test_bad_requests_exit_2_with_a_message(checkpoint, tmp_path, capsys, extra, message):
    assert main(["eval", str(checkpoint), *extra, "--out", str(tmp_path / "o")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--benchmark", "x.jsonl", "--limit", "-1"], "--limit: must be a positive integer, got -1"),  # [:-1]
        (["--task", "arithmetic", "--n-problems", "0"], "--n-problems: must be a positive integer"),
        (["--task", "arithmetic", "--samples", "-2"], "--samples: must be 0 or more"),
        (["--task", "arithmetic", "--batch-size", "0"], "--batch-size: must be a positive integer"),
        (["--task", "arithmetic", "--max-new-tokens", "x"], "--max-new-tokens: not an integer: 'x'"),
    ],
)
def test_counts_out_of_range_are_argument_errors(checkpoint, tmp_path, capsys, extra, message):
    """`--limit -1` used to be accepted and evaluate `records[:-1]`: every row but the last."""
    with pytest.raises(SystemExit) as exit_:
        main(["eval", str(checkpoint), *extra, "--out", str(tmp_path / "o")])
    assert exit_.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_missing_checkpoint_exits_2(tmp_path, capsys):
    assert main(["eval", str(tmp_path / "none"), "--task", "arithmetic", "--out", str(tmp_path / "o")]) == 2
    assert "no config.json" in capsys.readouterr().err


@pytest.mark.vllm
def test_vllm_engine_matches_transformers_greedy(tiny_model_dir, tmp_path):
    """Same greedy completions and results format from vLLM as from transformers on the tiny policy."""
    base = ["eval", str(tiny_model_dir), "--task", "arithmetic", "--n-problems", "50", "--no-progress"]
    assert main([*base, "--out", str(tmp_path / "hf")]) == 0
    assert main([*base, "--engine", "vllm", "--out", str(tmp_path / "vllm")]) == 0
    hf, hf_summary = read_outputs(tmp_path / "hf")
    vl, vl_summary = read_outputs(tmp_path / "vllm")
    assert [r["greedy"]["completion"] for r in vl] == [r["greedy"]["completion"] for r in hf]
    assert vl_summary["greedy_accuracy"] == hf_summary["greedy_accuracy"] and vl_summary["engine"] == "vllm"


def test_checkpoint_without_tokenizer_exits_2(checkpoint, tmp_path, capsys):
    """transformers builds an empty tokenizer for such a folder; eval used to fail with an IndexError."""
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.json", "model.safetensors"):
        (bare / name).write_bytes((checkpoint / name).read_bytes())
    assert main(["eval", str(bare), "--task", "arithmetic", "--out", str(tmp_path / "o")]) == 2
    assert "no tokenizer files" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("where", ["checkpoint", "holding the checkpoint", "benchmark"])
def test_out_that_is_or_holds_an_input_is_refused_before_evaluating(checkpoint, tmp_path, capsys, where):
    """`--out CHECKPOINT` used to write the results into the model folder (and `--out` the benchmark file
    ended with a traceback after the whole evaluation)."""
    import shutil

    ckpt = tmp_path / "inputs" / "ckpt"
    shutil.copytree(checkpoint, ckpt)
    bench = tmp_path / "inputs" / "b.jsonl"
    bench.write_text('{"question": "1+1?", "answer": 2}\n')
    out = {"checkpoint": ckpt, "holding the checkpoint": tmp_path / "inputs", "benchmark": bench}[where]
    before = sorted(p.name for p in (tmp_path / "inputs").rglob("*"))
    argv = ["eval", str(ckpt), "--benchmark", str(bench), "--max-new-tokens", "2", "--no-progress"]
    assert main([*argv, "--out", str(out)]) == 2
    assert "--out" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "inputs").rglob("*")) == before


@pytest.mark.parametrize("value", ["nan", "inf", "-0.5", "x"])
def test_temperature_must_be_a_finite_non_negative_number(checkpoint, tmp_path, capsys, value):
    """`--temperature nan` used to reach generation and end in a traceback."""
    with pytest.raises(SystemExit) as exit_:
        main(
            [
                "eval",
                str(checkpoint),
                "--task",
                "arithmetic",
                "--temperature",
                value,
                "--out",
                str(tmp_path / "o"),
            ]
        )
    assert exit_.value.code == 2 and "--temperature" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("where", ["a file", "inside a file"])
def test_out_that_cannot_be_written_is_refused_before_evaluating(
    checkpoint, tmp_path, capsys, monkeypatch, where
):
    """An --out that cannot be a folder used to fail (FileExistsError, NotADirectoryError) after the whole
    evaluation had run."""

    def never(*_args, **_kwargs):
        raise AssertionError("the evaluation ran")

    monkeypatch.setattr("alpharl_trainer.evaluate.evaluate", never)
    blocker = tmp_path / "results"
    blocker.write_text("the user's file")
    out = blocker if where == "a file" else blocker / "eval"
    argv = ["eval", str(checkpoint), "--task", "arithmetic", "--n-problems", "2", "--no-progress"]
    assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    expected = "is a file, not a folder" if where == "a file" else f"lies inside {blocker}, which is a file"
    assert f"--out {out}" in err and expected in err and err.count("\n") == 1, err
    assert blocker.read_text() == "the user's file"


def test_a_failed_write_keeps_the_summary_on_screen_and_leaves_no_partial_file(
    checkpoint, tmp_path, capsys, monkeypatch
):
    """Disk full while writing: the evaluation's summary is printed before the write, the error is one line,
    and no half-written results.jsonl is left."""
    import errno

    real_write = Path.write_text

    def disk_full(self, *args, **kwargs):
        if ".tmp-" in self.name:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", disk_full)
    out = tmp_path / "out"
    argv = ["eval", str(checkpoint), "--task", "arithmetic", "--n-problems", "3", "--max-new-tokens", "2"]
    assert main([*argv, "--no-progress", "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert json.loads(captured.out)["problems"] == 3
    last = captured.err.splitlines()[-1]  # after the weights' loading bar
    assert last.startswith(f"alpharl eval: error: cannot write the output {out}/results.jsonl: No space left")
    assert "Traceback" not in captured.err and list(out.iterdir()) == []
