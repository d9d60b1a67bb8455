"""A user's own prompts, named as TRL names them (`dataset_name`, `dataset_config`, `dataset_train_split`,
`dataset_test_split`): a hub dataset id (from the local `datasets` cache with `HF_DATASETS_OFFLINE=1`), a
folder `datasets` saved (`save_to_disk`), a folder of data files, or one JSONL/JSON/parquet/CSV file.

Rows keep TRL's format: a `prompt` column, plain text or a list of chat messages (the trainer renders those
with the policy's chat template), plus any column the rewards read (`answer` or `solution`, as TRL's
`accuracy_reward` names the gold answer). A `problem` or `question` column stands in for a missing `prompt`;
`system_prompt` turns every prompt into a conversation that starts with it. Without a test split, the
gate's held-out prompts are `eval_size` rows split off the shuffled train split.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.tasks.splits import held_out_count

FILE_BUILDERS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}
PROMPT_COLUMNS = ("prompt", "problem", "question")


@dataclass
class DatasetArguments:
    dataset_name: str | None = field(
        default=None,
        metadata={
            "help": "The prompts: a hub dataset id, a folder saved by `datasets`, a folder of data files, or "
            "a JSONL/JSON/parquet/CSV file (columns: `prompt`, text or chat messages, and what the rewards "
            "read, e.g. `answer` or `solution`). Replaces `task` when set."
        },
    )
    dataset_config: str | None = field(default=None, metadata={"help": "The dataset's configuration name."})
    dataset_train_split: str = field(default="train", metadata={"help": "Split trained on."})
    dataset_test_split: str = field(
        default="test",
        metadata={"help": "Split the gate's held-out prompts come from (absent: eval_size train rows)."},
    )
    system_prompt: str | None = field(
        default=None, metadata={"help": "A system message put before every prompt (as a conversation)."}
    )


def _load(name: str, config: str | None):
    """The dataset (a DatasetDict, or one Dataset from `save_to_disk`) that `name` names."""
    import datasets

    path = Path(name).expanduser()
    if not path.exists() and (name.startswith(("/", ".", "~")) or path.suffix.lower() in FILE_BUILDERS):
        raise AlphaRLError(f"dataset {name}: no such file or folder")  # a local path: not a hub id to look up
    try:
        if path.is_file():
            builder = FILE_BUILDERS.get(path.suffix.lower())
            if builder is None:
                raise AlphaRLError(f"dataset file {path}: unknown format (one of {', '.join(FILE_BUILDERS)})")
            if path.stat().st_size == 0:
                raise AlphaRLError(f"dataset file {path}: empty")
            return datasets.load_dataset(builder, data_files=str(path))
        if path.is_dir() and any((path / f).is_file() for f in ("dataset_dict.json", "dataset_info.json")):
            return datasets.load_from_disk(str(path))
        return datasets.load_dataset(str(path) if path.is_dir() else name, config)  # data files, or a hub id
    except AlphaRLError:
        raise
    except Exception as err:  # datasets raises a different type per failure; each means "cannot read it"
        if "corresponds to no data" in str(err):  # datasets' words for a split without rows
            raise AlphaRLError(f"dataset {name}: a split without rows ({err})") from err
        raise AlphaRLError(f"dataset {name}: cannot be loaded ({type(err).__name__}: {err})") from err


def _prompt(row: dict, column: str, system: str | None) -> dict:
    prompt = row[column]
    if system is not None:
        messages = prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
        prompt = [{"role": "system", "content": system}, *messages]
    return {"prompt": prompt}


def _as_prompts(data, name: str, system: str | None):
    """`data` with TRL's `prompt` column (from `problem`/`question` without one), the system prompt in."""
    column = next((c for c in PROMPT_COLUMNS if c in data.column_names), None)
    if column is None:
        raise AlphaRLError(f"dataset {name}: no prompt column (one of {PROMPT_COLUMNS}): {data.column_names}")
    if column == "prompt" and system is None:
        return data
    return data.map(lambda row: _prompt(row, column, system))


def load_user_dataset(args, eval_size: int, seed: int):
    """(train, held-out) datasets of `args` (DatasetArguments fields) in TRL's prompt format."""
    name = args.dataset_name
    loaded = _load(name, args.dataset_config)
    splits = {"train": loaded} if not hasattr(loaded, "keys") else dict(loaded)
    if args.dataset_train_split not in splits:
        raise AlphaRLError(f"dataset {name}: no split {args.dataset_train_split!r} (has {sorted(splits)})")
    train = _as_prompts(splits[args.dataset_train_split], name, args.system_prompt)
    if len(train) == 0:
        raise AlphaRLError(f"dataset {name}: split {args.dataset_train_split!r} has no rows to train on")
    if args.dataset_test_split in splits:
        heldout = _as_prompts(splits[args.dataset_test_split], name, args.system_prompt)
        return train, heldout.select(range(min(eval_size, len(heldout))))
    train = train.shuffle(seed=seed)
    held = held_out_count(len(train), eval_size)
    if len(train) - held < 1:
        raise AlphaRLError(f"dataset {name}: {len(train)} rows leave nothing to train on")
    return train.select(range(held, len(train))), train.select(range(held))
