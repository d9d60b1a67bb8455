"""Base policies shipped in the repository, so that every machine starts RL from the same weights.

The tiny SFT policy is cheap to build from code, but its build is chaotic across machines (the carry jump
of a small model learning addition comes at a step that float rounding decides; see `build_tiny.py`): a policy
built on another machine scored 0.108 instead of 0.455 on the RL mix, and every recipe, test and result
is written for one policy. So the policy is data: a folder here with its tokenizer, its build recipe and a
`SHA256SUMS` file, verified before use. `model_name_or_path: tiny` in a recipe names it.
"""

from __future__ import annotations

from pathlib import Path

from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.policies.integrity import CHECKSUMS, verified_folder

ROOT = Path(__file__).resolve().parent
SHIPPED = ("tiny",)
"""Names usable as `model_name_or_path`; each is a folder beside this file."""


def checksums(name: str) -> dict[str, str]:
    """File name -> expected sha256 of shipped policy `name`, from its SHA256SUMS (`sha256sum` format:
    regenerate with `sha256sum config.json generation_config.json model.safetensors tiny_recipe.json
    tokenizer*.json > SHA256SUMS` in the folder after a rebuild)."""
    if name not in SHIPPED:
        raise AlphaRLError(f"no shipped policy {name!r}; shipped: {', '.join(SHIPPED)}")
    sums = ROOT / name / CHECKSUMS
    if not sums.is_file():
        raise AlphaRLError(
            f"shipped policy {name!r} is incomplete: {sums} is missing (re-clone the repository)"
        )
    pairs = (line.strip().partition("  ") for line in sums.read_text().splitlines() if line.strip())
    return {file: expected for expected, _, file in pairs}


def shipped_policy(name: str) -> Path:
    """The folder of shipped policy `name`, after checking every file against its SHA256SUMS.

    A mismatch (a truncated clone, a Git LFS pointer, an edited file) is an error, not a silent change of
    the base policy every number was measured on.
    """
    checksums(name)  # a known name with its checksum file
    return verified_folder(ROOT / name, f"shipped policy {name!r}")


def named_policies() -> tuple[str, ...]:
    """Every name `model_name_or_path` accepts besides a folder: the shipped and the converted policies."""
    from alpharl_trainer.policies.converted import CONVERTED

    return (*SHIPPED, *CONVERTED)


def resolve_policy(name_or_path: str) -> Path:
    """A shipped policy's verified folder, a converted one's (`policies/converted.py`: made once in the user's
    cache), `name_or_path` itself as a local folder, or a Hugging Face hub id (`Qwen/Qwen2.5-1.5B-Instruct`)
    resolved to its folder in the local hub cache (`hub_policy`)."""
    from alpharl_trainer.policies.converted import CONVERTED, converted_policy

    if name_or_path in SHIPPED:
        return shipped_policy(name_or_path)
    if name_or_path in CONVERTED:
        return converted_policy(name_or_path)
    path = Path(name_or_path)
    if path.is_dir():
        return path
    if looks_like_hub_id(name_or_path):
        return hub_policy(name_or_path)
    raise AlphaRLError(
        f"model folder {path} does not exist (give a local folder, a hub id such as Qwen/Qwen2.5-0.5B, or a "
        f"named policy: {', '.join(named_policies())})"
    )


def looks_like_hub_id(name: str) -> bool:
    """`owner/name` (one slash, no path syntax): what the hub accepts as a model repository id."""
    parts = name.split("/")
    return len(parts) == 2 and all(parts) and not name.startswith((".", "~")) and "\\" not in name


def hub_policy(repo_id: str) -> Path:
    """The folder of hub model `repo_id` in the local Hugging Face cache (`HF_HUB_CACHE`), downloaded first
    when the hub is reachable and allowed (`HF_HUB_OFFLINE` unset or 0): weights, config and tokenizer
    files only. Offline, a model that is not in the cache is an error that says how to get it."""
    from huggingface_hub import constants, snapshot_download

    patterns = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken"]
    offline = constants.HF_HUB_OFFLINE
    try:
        folder = Path(snapshot_download(repo_id, allow_patterns=patterns, local_files_only=offline))
    except Exception as err:  # huggingface_hub raises a different type per failure; all mean "not here"
        how = (
            "it is not in the local Hugging Face cache and the hub is offline (HF_HUB_OFFLINE=1): run "
            f"`huggingface-cli download {repo_id}` where the hub is reachable, or set HF_HUB_OFFLINE=0"
            if offline
            else "it could not be downloaded"
        )
        raise AlphaRLError(f"hub model {repo_id}: {how} ({type(err).__name__}: {err})") from err
    if not (folder / "config.json").is_file():
        raise AlphaRLError(f"hub model {repo_id}: its cached folder {folder} has no config.json")
    return folder
