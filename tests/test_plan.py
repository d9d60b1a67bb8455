"""The dry-run planner: every recipe in the repo resolves and checks out; the checks catch what TRL or AlphaRL
would reject after loading weights; launches and model sizes are read without touching any weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from alpharl_trainer import cli
from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.plan import PlanOptions, format_plan, make_plan
from alpharl_trainer.plan.estimates import GIB
from alpharl_trainer.plan.launch import resolve_launch
from alpharl_trainer.plan.model_size import resolve_model

REPO = Path(__file__).resolve().parent.parent
TINY = sorted((REPO / "recipes" / "tiny").glob("*.yaml"))
PAPER = sorted((REPO / "recipes" / "paper").glob("*.yaml"))
PAPER_LAUNCH = PlanOptions(accelerate_config=str(REPO / "configs" / "zero3.yaml"), num_processes=8)


@pytest.fixture(autouse=True)
def _at_repo(monkeypatch):
    monkeypatch.chdir(REPO)  # recipes and accelerate configs name paths relative to the repo
    for name in ("WORLD_SIZE", "ACCELERATE_CONFIG_FILE", "RANK"):
        monkeypatch.delenv(name, raising=False)


def _plan(recipe, *overrides: str, options: PlanOptions | None = None, environ=None):
    return make_plan(["--config", str(recipe), *overrides], options or PlanOptions(), environ)


@pytest.mark.parametrize("recipe", TINY, ids=lambda p: f"tiny/{p.name}")
def test_every_tiny_recipe_plans(recipe):
    result = _plan(recipe)
    assert not result.errors, result.errors
    assert result.model is not None and result.memory["total"] > 0
    if result.values["alpharl"]:
        assert len(result.alpharl["snapshot_steps"]) >= 3


@pytest.mark.parametrize("recipe", PAPER, ids=lambda p: f"paper/{p.name}")
def test_every_paper_recipe_plans_on_8_gpus(recipe):
    """The paper recipes name model folders that do not exist here: sizes come from the known-config table."""
    result = _plan(recipe, options=PAPER_LAUNCH)
    assert not result.errors, result.errors
    assert "known architecture" in result.model.source
    if not recipe.name.startswith("ppo"):  # ppo*.yaml are another helper's; the planner warns about them
        assert result.memory["total"] < 80, result.memory  # fits an 80 GB GPU by the estimate


@pytest.mark.parametrize("name", ["dapo_8b", "grpo_8b", "rloo_8b"])
def test_paper_batches_match_verl(name):
    """512 prompts x 8 rollouts per rollout batch, 32 prompts x 8 per optimizer step, window on a boundary."""
    result = _plan(REPO / "recipes" / "paper" / f"{name}.yaml", options=PAPER_LAUNCH)
    batch = result.batch
    assert (batch["generation_prompts"], batch["num_generations"]) == (512, 8)
    assert batch["optimizer_step_prompts"] == 32 and batch["optimizer_steps_per_generation"] == 16
    assert result.alpharl["window_end"] == 0.4 * result.values["max_steps"]
    assert result.alpharl["window_end"] % 16 == 0 and not result.warnings[:-1]  # only the tensorboard note
    assert result.values["learning_rate"] == 1e-6 and result.values["max_completion_length"] == 20480
    assert result.values["max_grad_norm"] == 1.0


def test_fourteen_b_on_16_gpus_keeps_the_paper_batch():
    options = PlanOptions(accelerate_config=PAPER_LAUNCH.accelerate_config, num_processes=16, num_machines=2)
    result = _plan(REPO / "recipes" / "paper" / "dapo_14b.yaml", options=options)
    assert result.batch["optimizer_step_prompts"] == 32 and result.batch["generation_prompts"] == 512
    assert 14.5e9 < result.model.params < 15.0e9  # Qwen3-14B: 14.8 B parameters


@pytest.mark.parametrize("name", ["dapo_8b", "grpo_8b", "rloo_8b"])
def test_aggressive_windows_differ_only_in_the_window(name):
    base = yaml.safe_load((REPO / "recipes" / "paper" / f"{name}.yaml").read_text())
    early = yaml.safe_load((REPO / "recipes" / "paper" / f"{name}_w27.yaml").read_text())
    changed = {k for k in base.keys() | early.keys() if base.get(k) != early.get(k)}
    assert changed == {"output_dir", "alpharl_window_end", "alpharl_horizons"}
    result = _plan(REPO / "recipes" / "paper" / f"{name}_w27.yaml", options=PAPER_LAUNCH)
    assert result.alpharl["targets"][-1] == result.values["max_steps"]  # the last candidate is the full run


@pytest.mark.parametrize("recipe", PAPER, ids=lambda p: f"paper/{p.name}")
def test_every_paper_recipe_prices_its_gate_under_five_percent(recipe):
    """The gate samples through the recipe's own engine (vLLM); its tokens per swap against the rollouts of
    the run up to where AlphaRL stops it."""
    result = _plan(recipe, options=PAPER_LAUNCH)
    gate, values = result.alpharl["gate"], result.values
    assert gate["engine"] == "vllm" and values["use_vllm"]
    prompts, samples = values["alpharl_acceptance_prompts"], values["alpharl_acceptance_samples"]
    samples = 1 if values["alpharl_acceptance_scoring"] == "greedy" else samples
    assert gate["completions"] == prompts * samples * (1 + len(result.alpharl["candidates"]))
    steps = result.alpharl["stop_step"] or values["max_steps"]
    rollouts = -(-steps // result.batch["optimizer_steps_per_generation"])  # ceil
    run_tokens = rollouts * result.batch["generation_completions"] * values["max_completion_length"]
    assert gate["share"] == pytest.approx(gate["tokens"] / (gate["tokens"] + run_tokens))
    assert gate["share"] < 0.05 and not any("gate generates" in w for w in result.warnings)
    assert "through vllm" in format_plan(result) and "of the run's generated tokens" in format_plan(result)


def test_a_gate_too_big_for_the_run_warns_and_the_throughput_can_be_given():
    recipe = REPO / "recipes" / "paper" / "grpo_8b.yaml"
    big = _plan(recipe, "--alpharl_acceptance_prompts", "256", "--alpharl_acceptance_samples", "16",
                options=PAPER_LAUNCH)  # fmt: skip
    assert any("AlphaRL's gate generates" in w and "over 5%" in w for w in big.warnings)
    faster = PlanOptions(**{**PAPER_LAUNCH.__dict__, "gate_tokens_per_second": 8000.0})
    gate, quick = (
        _plan(recipe, options=PAPER_LAUNCH).alpharl["gate"],
        _plan(recipe, options=faster).alpharl["gate"],
    )
    assert quick["hours"] == pytest.approx(gate["hours"] / 4) and quick["share"] == gate["share"]
    no_vllm = _plan(recipe, "--use_vllm", "false", options=PAPER_LAUNCH).alpharl["gate"]
    assert no_vllm["engine"] == "transformers" and no_vllm["hours"] == pytest.approx(gate["hours"] * 10)


def test_an_exact_gate_is_priced_as_gold_completions_read_not_generated():
    recipe = REPO / "recipes" / "tiny" / "grpo.yaml"  # alpharl_acceptance_scoring: exact
    exact = _plan(recipe)
    gate = exact.alpharl["gate"]
    assert gate["engine"] == "teacher_forced" and gate["hours"] is None and gate["share"] is None
    assert gate["completions"] == 128 * (1 + len(exact.alpharl["candidates"]))  # one gold one per prompt
    assert not any("gate generates" in w for w in exact.warnings)
    sampled = _plan(recipe, "--alpharl_acceptance_scoring", "sampled").alpharl["gate"]
    assert sampled["engine"] == "transformers" and sampled["completions"] == 4 * gate["completions"]


def test_indivisible_generation_batch_is_an_error():
    result = _plan(REPO / "recipes" / "tiny" / "grpo.yaml", "--num_generations", "7")
    assert any("not divisible by num_generations 7" in e for e in result.errors)


def test_process_count_enters_the_batch_arithmetic():
    """3 processes x 256 = 768 completions per generation is divisible by 8; 1 x 3 x 100 = 300 is not."""
    recipe = REPO / "recipes" / "tiny" / "grpo.yaml"
    assert not _plan(recipe, options=PlanOptions(num_processes=3)).errors
    result = _plan(recipe, "--per_device_train_batch_size", "100", options=PlanOptions(num_processes=3))
    assert any("300" in e and "num_generations 8" in e for e in result.errors)


def test_short_window_is_an_error():
    result = _plan(REPO / "recipes" / "tiny" / "grpo.yaml", "--alpharl_window_end", "15")
    assert any("holds 2 snapshot(s)" in e and "a line fit needs 3" in e for e in result.errors)


def test_window_inside_a_rollout_batch_warns():
    result = _plan(
        REPO / "recipes" / "paper" / "dapo_8b.yaml",
        "--alpharl_window_end",
        "120",
        "--alpharl_interval",
        "8",
        options=PAPER_LAUNCH,
    )
    assert not result.errors
    assert any("inside a rollout batch" in w for w in result.warnings)


@pytest.mark.parametrize("logger", ["tensorboard", "wandb", "trackio"])
def test_a_logger_not_installed_is_named_before_launch(monkeypatch, logger):
    """TrainingArguments refuses a report_to whose package is missing only at launch: the plan warns first."""
    import importlib.util

    recipe = REPO / "recipes" / "tiny" / "grpo.yaml"
    installed = importlib.util.find_spec(logger) is not None
    warned = [w for w in _plan(recipe, "--report_to", logger).warnings if w.startswith("report_to")]
    assert bool(warned) != installed
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == logger else find_spec(name, *a)
    )
    (warning,) = [w for w in _plan(recipe, "--report_to", logger).warnings if w.startswith("report_to")]
    assert f"report_to {logger}: {logger} is not installed" in warning and "loggers extra" in warning


def test_yaml_number_without_a_dot_still_parses(tmp_path):
    """YAML 1.1 reads 3e-6 as text; argparse converts string defaults with the field's type, so it works."""
    recipe = tmp_path / "r.yaml"
    text = (REPO / "recipes" / "tiny" / "grpo.yaml").read_text()
    recipe.write_text(text.replace("learning_rate: 3.0e-6", "learning_rate: 3e-6"))
    assert _plan(recipe).values["learning_rate"] == 3e-6


def test_launch_from_the_environment_of_accelerate_launch():
    environ = {
        "WORLD_SIZE": "16",
        "LOCAL_WORLD_SIZE": "8",
        "ACCELERATE_USE_DEEPSPEED": "true",
        "ACCELERATE_DEEPSPEED_CONFIG_FILE": "configs/deepspeed/zero3.json",
        "ACCELERATE_MIXED_PRECISION": "bf16",
    }
    launch = resolve_launch(PlanOptions(), environ)
    assert (launch.processes, launch.machines, launch.distributed, launch.zero_stage) == (
        16,
        2,
        "DEEPSPEED",
        3,
    )


def test_launch_from_accelerate_config_file_env():
    launch = resolve_launch(PlanOptions(), {"ACCELERATE_CONFIG_FILE": "configs/zero2.yaml"})
    assert (launch.processes, launch.distributed, launch.zero_stage) == (2, "DEEPSPEED", 2)
    assert resolve_launch(PlanOptions(), {}).processes == 1


def test_multinode_template_needs_the_numbers():
    options = PlanOptions(accelerate_config="configs/multinode.yaml")
    with pytest.raises(AlphaRLError, match="placeholders"):
        resolve_launch(options, {})
    options.num_processes, options.num_machines = 32, 4
    launch = resolve_launch(options, {})
    assert (launch.processes, launch.machines, launch.zero_stage) == (32, 4, 3)


def test_memory_follows_zero_arithmetic():
    """bf16 ZeRO-3 on 8 GPUs: weights 2P/8, grads 2P/8, fp32 master + Adam 12P/8; ZeRO-2: weights 2P whole."""
    recipe = REPO / "recipes" / "paper" / "grpo_8b.yaml"
    zero3 = _plan(recipe, options=PAPER_LAUNCH)
    p = zero3.model.params
    assert zero3.memory["weights"] == pytest.approx(2 * p / 8 / GIB)
    assert zero3.memory["optimizer states"] == pytest.approx(12 * p / 8 / GIB)
    assert zero3.memory["reference model"] == pytest.approx(2 * p / 8 / GIB)  # beta 0.001 keeps one
    zero2 = _plan(recipe, options=PlanOptions(accelerate_config="configs/zero2.yaml", num_processes=8))
    assert zero2.memory["weights"] == pytest.approx(2 * p / GIB)
    assert zero2.memory["gradients"] == pytest.approx(2 * p / 8 / GIB)
    dapo = _plan(REPO / "recipes" / "paper" / "dapo_8b.yaml", options=PAPER_LAUNCH)
    assert "reference model" not in dapo.memory  # beta 0: TRL builds no reference model


def test_model_size_from_config_json_matches_a_real_model(tmp_path):
    from transformers import Qwen3Config, Qwen3ForCausalLM

    config = Qwen3Config(vocab_size=100, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=8)  # fmt: skip
    model = Qwen3ForCausalLM(config)
    model.config.save_pretrained(tmp_path)
    size = resolve_model(str(tmp_path), None)
    assert size.params == sum(p.numel() for p in model.parameters())
    assert "config.json" in size.source
    assert resolve_model("/nowhere/DAPO-step-27", 8.2e9).params == 8_200_000_000
    assert resolve_model("/nowhere/DAPO-step-27", None) is None


def test_cli_dry_run_prints_the_plan_and_loads_nothing(capsys):
    assert cli.main(["train", "--dry-run", "recipes/tiny/rloo.yaml", "--max_steps", "200"]) == 0
    out = capsys.readouterr().out
    assert "plan OK" in out and "max_steps 200" in out and "window ends at step 80" in out


def test_dry_run_flag_after_the_recipe_and_exit_code_2(capsys):
    from alpharl_trainer.train import main

    assert main(["--config", "recipes/tiny/grpo.yaml", "--dry-run", "--num-processes", "2"]) == 0
    assert "2 process(es)" in capsys.readouterr().out
    assert cli.main(["train", "recipes/tiny/grpo.yaml", "--num_generations", "7", "--dry-run"]) == 2
    assert "not divisible by num_generations 7" in capsys.readouterr().err


def test_an_unscored_jump_far_outside_the_window_is_reported():
    """With the gate off, `--alpharl_horizons 5000` used to plan (and run) silently."""
    recipe, off = REPO / "recipes" / "tiny" / "grpo.yaml", ["--alpharl_acceptance_prompts", "0"]
    large = _plan(recipe, *off, "--alpharl_horizons", "5000")
    assert not large.errors
    assert any("about 5e+03 times their whole window update" in w for w in large.warnings), large.warnings
    absurd = _plan(recipe, *off, "--alpharl_horizons", "20000")
    assert any("about 2e+04 times" in e and "acceptance gate off" in e for e in absurd.errors), absurd.errors
    assert not any("times their whole window update" in w for w in _plan(recipe, *off).warnings)


def test_a_config_without_hidden_size_is_read_by_its_architectures_names(tmp_path):
    """GPT-2 names its sizes n_embd, n_layer, n_positions: the dry run died on KeyError 'hidden_size'."""
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(vocab_size=100, n_embd=32, n_layer=2, n_head=2, n_positions=64)
    config.save_pretrained(tmp_path)
    assert "hidden_size" not in (tmp_path / "config.json").read_text()
    size = resolve_model(str(tmp_path), None)
    assert size.params == sum(p.numel() for p in GPT2LMHeadModel(config).parameters())
    assert (size.config["hidden_size"], size.config["num_hidden_layers"]) == (32, 2)
    assert (size.config["vocab_size"], size.config["max_position_embeddings"]) == (100, 64)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"hidden_size": 8}', "config.json has no model_type: not a Hugging Face model config"),
        ("{not json", "config.json is not JSON"),
        (
            '{"model_type": "no-such-architecture"}',
            "transformers cannot build model_type 'no-such-architecture'",
        ),
    ],
    ids=["no-model-type", "not-json", "unknown-type"],
)
def test_an_unusable_model_config_is_one_line(tmp_path, capsys, text, expected):
    (tmp_path / "config.json").write_text(text)
    args = ["train", "--dry-run", "recipes/tiny/grpo.yaml", "--model_name_or_path", str(tmp_path)]
    assert cli.main([*args, "--output_dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert expected in err and str(tmp_path) in err and err.count("\n") == 1, err


def test_an_fsdp_launch_is_refused_by_the_plan_and_at_attach(tmp_path):
    """FSDP is neither DDP nor ZeRO: the plan says what is supported, and so does a trainer it reaches."""
    from trl import GRPOTrainer

    from alpharl_trainer.errors import FSDP_REFUSED
    from alpharl_trainer.trainer import AlphaRLCallback, AlphaRLConfig
    from tests.trainer.harness import datasets, grpo_args, load, sevens_reward, test_model_dir

    config = tmp_path / "fsdp.yaml"
    config.write_text("distributed_type: FSDP\nnum_processes: 2\nnum_machines: 1\n")
    result = _plan(
        REPO / "recipes" / "tiny" / "grpo.yaml", options=PlanOptions(accelerate_config=str(config))
    )
    assert FSDP_REFUSED in result.errors and "configs/zero3.yaml" in FSDP_REFUSED
    model, tok = load(test_model_dir())
    train, heldout = datasets()
    trainer = GRPOTrainer(
        model=model, reward_funcs=[sevens_reward], args=grpo_args(tmp_path, alpharl=False),
        train_dataset=train, eval_dataset=heldout, processing_class=tok,
    )  # fmt: skip
    trainer.is_fsdp_enabled = True  # what accelerate sets under an FSDP launch
    with pytest.raises(AlphaRLError, match="under FSDP"):
        AlphaRLCallback(AlphaRLConfig(alpharl_interval=2, alpharl_window_end=6)).attach(trainer)
    assert not any(isinstance(c, AlphaRLCallback) for c in trainer.callback_handler.callbacks)
