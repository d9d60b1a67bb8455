"""Checking a policy folder kept as data against its `SHA256SUMS` file, for the shipped policies and the
converted ones alike: a truncated clone, a Git LFS pointer or an edited file is an error, never a silent
change of the weights every number was measured on."""

from __future__ import annotations

import hashlib
from pathlib import Path

from alpharl_trainer.errors import AlphaRLError

CHECKSUMS = "SHA256SUMS"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verified_folder(folder: Path, label: str) -> Path:
    """`folder` after checking every file its SHA256SUMS lists (for any policy kept as data, e.g. the
    tests' own); `label` names it in errors."""
    sums = folder / CHECKSUMS
    if not sums.is_file():
        raise AlphaRLError(f"{label} is incomplete: {sums} is missing (re-clone the repository)")
    pairs = (line.strip().partition("  ") for line in sums.read_text().splitlines() if line.strip())
    for digest, _, file in pairs:
        path = folder / file
        if not path.is_file():
            raise AlphaRLError(f"{label} is incomplete: {path} is missing")
        if file_sha256(path) != digest:
            raise AlphaRLError(
                f"{label}: {path} does not match its checksum in {sums} "
                f"(corrupt or changed; `git checkout -- {folder}` restores it)"
            )
    return folder
