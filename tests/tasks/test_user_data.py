"""A TRL user's own prompts (`dataset_name` and friends), built here as every source kind the recipe reads: a
`datasets` folder, a DatasetDict folder with train/test splits, a folder of data files, one JSONL, JSON,
parquet or CSV file. Each loads to the same rows in TRL's prompt format (chat messages stay messages, text
stays text), the gate's held-out prompts never overlap the train rows, the gold answer reaches the rewards
under `solution` or `answer`, TRL's own rewards resolve by dotted path, and bad input is one AlphaRLError."""

from __future__ import annotations

import json
from types import SimpleNamespace

import datasets
import huggingface_hub
import pytest

from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.tasks import user_data
from alpharl_trainer.tasks.reward_funcs import build_rewards, reward_function
from alpharl_trainer.tasks.splits import held_out_count
from alpharl_trainer.tasks.user_data import DatasetArguments, load_user_dataset

QUESTIONS = [f"What is {i} + {i + 3}?" for i in range(10)]
ANSWERS = [str(2 * i + 3) for i in range(10)]
KINDS = ("disk", "files_folder", "jsonl", "json", "parquet", "csv")


@pytest.fixture(autouse=True)
def local_datasets_cache(tmp_path, monkeypatch):
    """`datasets` prepares files in a cache of the test's own, and never goes online."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "datasets_cache"))
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def rows(conversational: bool, gold: str = "solution", questions=QUESTIONS, answers=ANSWERS) -> list[dict]:
    """TRL's rows: a `prompt` (a one-message conversation, or the text) and the gold answer column."""
    return [
        {"prompt": [{"role": "user", "content": q}] if conversational else q, gold: a}
        for q, a in zip(questions, answers, strict=True)
    ]


def write(kind: str, data: list[dict], where) -> str:
    """`data` written as a source of `kind` under the folder `where`; the `dataset_name` that names it."""
    if kind == "disk":
        datasets.Dataset.from_list(data).save_to_disk(str(where / "saved"))
        return str(where / "saved")
    if kind == "files_folder":
        (where / "files").mkdir()
        write("jsonl", data, where / "files")
        return str(where / "files")
    path = where / f"data.{kind}"
    if kind == "jsonl":
        path.write_text("".join(json.dumps(row) + "\n" for row in data))
    elif kind == "json":
        path.write_text(json.dumps(data))
    elif kind == "parquet":
        datasets.Dataset.from_list(data).to_parquet(str(path))
    else:  # csv: text prompts only (a cell holds no list of messages)
        datasets.Dataset.from_list(data).to_csv(str(path), index=False)
    return str(path)


def load(name: str, eval_size: int = 2, seed: int = 0, **fields):
    return load_user_dataset(DatasetArguments(dataset_name=name, **fields), eval_size, seed)


def pairs(data) -> list[tuple]:
    """(prompt text, gold answer) of each row, in order; CSV reads numeric answers back as numbers."""
    texts = [p if isinstance(p, str) else p[-1]["content"] for p in data["prompt"]]
    return list(zip(texts, [str(a) for a in data["solution"]], strict=True))


@pytest.mark.parametrize(
    ("kind", "conversational"),
    [(kind, True) for kind in KINDS if kind != "csv"]  # a CSV cell holds text, not a list of messages
    + [(kind, False) for kind in KINDS],
)
def test_each_source_kind_loads_to_the_same_rows(kind, conversational, tmp_path):
    train, heldout = load(write(kind, rows(conversational), tmp_path))
    # Without a test split: the held-out rule on the train data, shuffled by seed, the same in every kind.
    reference = datasets.Dataset.from_list(rows(conversational)).shuffle(seed=0)
    held = held_out_count(len(QUESTIONS), 2)
    assert pairs(heldout) == pairs(reference.select(range(held)))
    assert pairs(train) == pairs(reference.select(range(held, len(QUESTIONS))))
    assert train.column_names == ["prompt", "solution"]
    for prompt in list(train["prompt"]) + list(heldout["prompt"]):
        if conversational:  # kept as messages: TRL renders them with the policy's chat template
            assert prompt[0]["role"] == "user" and prompt[0]["content"] in QUESTIONS and len(prompt) == 1
        else:
            assert isinstance(prompt, str) and prompt in QUESTIONS


@pytest.mark.parametrize("kind", ["dataset_dict", "files_folder"])
def test_a_named_test_split_gives_the_held_out_prompts(kind, tmp_path):
    train_rows, test_rows = rows(True)[:7], rows(True)[7:]
    if kind == "dataset_dict":
        splits = {"train": train_rows, "test": test_rows, "dev": test_rows[:1]}
        datasets.DatasetDict({k: datasets.Dataset.from_list(v) for k, v in splits.items()}).save_to_disk(
            str(tmp_path / "dd")
        )
        name = str(tmp_path / "dd")
    else:  # data files named after their splits
        (tmp_path / "files").mkdir()
        for split, data in (("train", train_rows), ("test", test_rows)):
            (tmp_path / "files" / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in data))
        name = str(tmp_path / "files")
    train, heldout = load(name, eval_size=2)
    assert pairs(train) == pairs(datasets.Dataset.from_list(train_rows))  # every train row, in order
    assert pairs(heldout) == pairs(datasets.Dataset.from_list(test_rows[:2]))  # eval_size test rows
    train, heldout = load(name, eval_size=8)
    assert len(heldout) == len(test_rows)  # the whole test split when it is smaller than eval_size
    if kind == "dataset_dict":  # other split names, as TRL's dataset_train_split / dataset_test_split
        train, heldout = load(name, dataset_train_split="test", dataset_test_split="dev")
        assert pairs(train) == pairs(datasets.Dataset.from_list(test_rows))
        assert pairs(heldout) == pairs(datasets.Dataset.from_list(test_rows[:1]))


def test_without_the_named_test_split_the_held_out_rows_come_off_the_train_split(tmp_path):
    data = rows(False, questions=[f"q{i}" for i in range(40)], answers=[str(i) for i in range(40)])
    datasets.DatasetDict({"train": datasets.Dataset.from_list(data)}).save_to_disk(str(tmp_path / "dd"))
    for eval_size, seed in [(4, 0), (4, 1), (30, 0), (0, 0)]:
        train, heldout = load(str(tmp_path / "dd"), eval_size, seed, dataset_test_split="validation")
        assert len(heldout) == held_out_count(40, eval_size) == min(eval_size, 8)  # at most a fifth
        assert not set(train["prompt"]) & set(heldout["prompt"])
        assert sorted(list(train["prompt"]) + list(heldout["prompt"])) == sorted(
            row["prompt"] for row in data
        )
    held = [list(load(str(tmp_path / "dd"), 4, seed)[1]["prompt"]) for seed in (0, 0, 1)]
    assert held[0] == held[1] != held[2]  # drawn by the seed


def test_a_system_prompt_starts_every_prompt_as_a_conversation(tmp_path):
    system = {"role": "system", "content": "Think, then answer in a box."}
    train, heldout = load(write("jsonl", rows(True), tmp_path), system_prompt=system["content"])
    for prompt in list(train["prompt"]) + list(heldout["prompt"]):
        assert prompt[0] == system and prompt[1]["role"] == "user" and len(prompt) == 2
    # A text prompt becomes the user message of a conversation after the system one (documented).
    train, _ = load(write("csv", rows(False), tmp_path), system_prompt=system["content"])
    assert all(
        p[0] == system and p[1:] == [{"role": "user", "content": p[1]["content"]}] for p in train["prompt"]
    )
    assert {p[1]["content"] for p in train["prompt"]} <= set(QUESTIONS)
    # A `problem` column stands in for a missing `prompt` (and is kept for the rewards that read it).
    problems = [{"problem": row["prompt"], "solution": row["solution"]} for row in rows(False)]
    (tmp_path / "problems").mkdir()
    train, _ = load(write("jsonl", problems, tmp_path / "problems"))
    assert set(train.column_names) == {"prompt", "problem", "solution"}
    assert list(train["prompt"]) == list(train["problem"])


def test_a_path_as_a_user_writes_it(tmp_path, monkeypatch):
    """An upper-case extension, and `~` (a YAML recipe's value is not expanded by a shell)."""
    (tmp_path / "DATA.JSONL").write_text("".join(json.dumps(row) + "\n" for row in rows(True)))
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in (str(tmp_path / "DATA.JSONL"), "~/DATA.JSONL"):
        train, heldout = load(name)
        assert sorted(pairs(train) + pairs(heldout)) == sorted(pairs(datasets.Dataset.from_list(rows(True))))


def trl_call(reward, data, completions: list[str]):
    """`reward` called as TRL 1.16's GRPOTrainer calls a reward function: prompts, completions (messages
    for a conversational dataset), completion_ids, every other column as a keyword list, and its extras."""
    columns = {k: list(data[k]) for k in data.column_names if k != "prompt"}
    extras = {"trainer_state": None, "log_extra": lambda *a: None, "log_metric": lambda *a: None}
    return reward(
        prompts=list(data["prompt"]),
        completions=[[{"role": "assistant", "content": c}] for c in completions],
        completion_ids=[[1, 2, 3] for _ in completions],
        **columns,
        **extras,
    )


@pytest.mark.parametrize("gold", ["solution", "answer"])
def test_a_solution_or_answer_column_reaches_math_accuracy(gold, tmp_path):
    data = rows(True, gold=gold, questions=QUESTIONS[:4], answers=["3", "\\frac{1}{2}", "7", "12"])
    train, _ = load(write("jsonl", data, tmp_path), eval_size=0)
    script = SimpleNamespace(reward_funcs=["math_accuracy"], rewards=[])
    (math_accuracy,) = build_rewards(script, None, None, None)
    said = dict(
        zip(QUESTIONS, ["So \\boxed{3}.", "Half.\nAnswer: $0.5$", "\\boxed{8}", "Answer: 12"], strict=False)
    )
    right = {QUESTIONS[0]: 1.0, QUESTIONS[1]: 1.0, QUESTIONS[2]: 0.0, QUESTIONS[3]: 1.0}
    questions = [p[-1]["content"] for p in train["prompt"]]  # the train rows come shuffled
    assert trl_call(math_accuracy, train, [said[q] for q in questions]) == [right[q] for q in questions]


def test_trl_rewards_named_by_dotted_path_run_with_trls_signature(tmp_path):
    data = rows(True, questions=QUESTIONS[:2], answers=["\\frac{1}{3}", "4"])
    train, _ = load(write("parquet", data, tmp_path), eval_size=0)
    script = SimpleNamespace(reward_funcs=["trl.rewards.think_format_reward", "trl.rewards:accuracy_reward"])
    think_format, accuracy = build_rewards(script, None, None, None)
    import trl.rewards

    assert think_format is trl.rewards.think_format_reward and accuracy is trl.rewards.accuracy_reward
    said = {QUESTIONS[0]: "<think>\nA third.\n</think>\n\\boxed{\\frac{1}{3}}", QUESTIONS[1]: "\\boxed{5}"}
    questions = [p[-1]["content"] for p in train["prompt"]]  # the train rows come shuffled
    expected = [float(q == QUESTIONS[0]) for q in questions]  # the first: thought, and right
    assert trl_call(think_format, train, [said[q] for q in questions]) == expected
    assert trl_call(accuracy, train, [said[q] for q in questions]) == expected  # reads `solution`
    for name, message in [
        ("trl.rewards.no_such_reward", "neither a built-in .* nor an importable function"),
        ("trl.no_such_module.reward", "No module named 'trl.no_such_module'"),
    ]:
        with pytest.raises(AlphaRLError, match=message) as raised:
            reward_function(name)
        assert str(raised.value).count(name) == 1


def bad_sources(tmp_path) -> dict[str, tuple[str, str]]:
    """A bad `dataset_name` -> (the name, what its error says)."""
    (tmp_path / "notes.txt").write_text("What is 1 + 1?\n")
    (tmp_path / "no_prompt.jsonl").write_text(json.dumps({"text": "hi", "solution": "1"}) + "\n")
    (tmp_path / "zero_bytes.jsonl").write_text("")
    (tmp_path / "header_only.csv").write_text("prompt,solution\n")
    (tmp_path / "no_records.json").write_text("[]")
    (tmp_path / "no_files").mkdir()
    return {
        "missing file": (str(tmp_path / "absent.jsonl"), "no such file or folder"),
        "missing relative file": ("data/absent.jsonl", "no such file or folder"),  # not a hub id
        "missing folder": (str(tmp_path / "absent"), "no such file or folder"),
        "unknown extension": (str(tmp_path / "notes.txt"), r"unknown format \(one of .jsonl, .json, .parq"),
        "no prompt column": (str(tmp_path / "no_prompt.jsonl"), r"no prompt column .*\['text', 'solution'\]"),
        "empty file": (str(tmp_path / "zero_bytes.jsonl"), ": empty"),
        "header-only CSV": (str(tmp_path / "header_only.csv"), "a split without rows"),
        "JSON without records": (str(tmp_path / "no_records.json"), "a split without rows"),
        "folder without data files": (str(tmp_path / "no_files"), "cannot be loaded .*any data files"),
        "hub id not cached, offline": ("acme/not-cached", "cannot be loaded .*Couldn't reach 'acme/not-cach"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "missing file",
        "missing relative file",
        "missing folder",
        "unknown extension",
        "no prompt column",
        "empty file",
        "header-only CSV",
        "JSON without records",
        "folder without data files",
        "hub id not cached, offline",
    ],
)
def test_bad_input_is_one_clear_error_naming_it(case, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    name, message = bad_sources(tmp_path)[case]
    with pytest.raises(AlphaRLError, match=message) as raised:
        load(name)
    assert name in str(raised.value)


def test_an_unknown_or_empty_train_split_is_refused(tmp_path, monkeypatch):
    splits = {"train": datasets.Dataset.from_list(rows(True)), "test": datasets.Dataset.from_list(rows(True))}
    datasets.DatasetDict(splits).save_to_disk(str(tmp_path / "dd"))
    with pytest.raises(AlphaRLError, match=r"dd: no split 'training' \(has \['test', 'train'\]\)"):
        load(str(tmp_path / "dd"), dataset_train_split="training")
    # A hub dataset (from the local cache) whose train split is empty next to its test split.
    empty = datasets.Dataset.from_list(rows(True)).select([])
    monkeypatch.setattr(user_data, "_load", lambda name, config: {**splits, "train": empty})
    with pytest.raises(AlphaRLError, match="acme/math: split 'train' has no rows to train on"):
        load("acme/math")
