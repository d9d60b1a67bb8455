"""The shipped base policy: verified before use, and pinned to the accuracy every recipe is written for."""

from __future__ import annotations

import collections
import json
import shutil

import pytest

from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.policies import ROOT, resolve_policy, shipped_policy, verified_folder

# Teacher-forced exact match of the shipped policy on the first 1,000 test-split problems of the arithmetic RL
# mix (seed 0), per category: (right, problems). The recipes' comments and the README's numbers rest on these.
PINNED = {"2+3": (195, 320), "3+2": (205, 344), "3+3": (159, 336)}


def test_shipped_policy_scores_what_the_recipes_are_written_for(tiny_model_dir):
    from alpharl_trainer.evaluate import load_folder, teacher_forced
    from alpharl_trainer.tasks import get_task

    model, tokenizer = load_folder(tiny_model_dir)
    problems = get_task("arithmetic", mix="rl").problems("test", 1000, 0)
    exact = teacher_forced(model, tokenizer, problems)["exact_per_problem"]
    right, total = collections.Counter(), collections.Counter()
    for problem, hit in zip(problems, exact, strict=True):
        right[problem.category] += hit
        total[problem.category] += 1
    measured = {c: (right[c], total[c]) for c in total}
    # The same weights everywhere; a few problems of slack for argmax near-ties on other CPU kernels.
    assert measured.keys() == PINNED.keys()
    for category, (hits, n) in PINNED.items():
        assert measured[category][1] == n
        assert abs(measured[category][0] - hits) <= 3, (category, measured[category], (hits, n))


def _copy(tmp_path, monkeypatch):
    root = tmp_path / "policies"
    shutil.copytree(ROOT / "tiny", root / "tiny")
    monkeypatch.setattr("alpharl_trainer.policies.ROOT", root)
    return root / "tiny"


def test_a_changed_or_missing_file_is_refused(tmp_path, monkeypatch):
    folder = _copy(tmp_path, monkeypatch)
    assert shipped_policy("tiny") == folder
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    with pytest.raises(AlphaRLError, match="model.safetensors does not match its checksum"):
        shipped_policy("tiny")
    weights.unlink()
    with pytest.raises(AlphaRLError, match="incomplete: .*model.safetensors is missing"):
        resolve_policy("tiny")
    (folder / "SHA256SUMS").unlink()
    with pytest.raises(AlphaRLError, match="SHA256SUMS is missing"):
        resolve_policy("tiny")


def test_names_and_folders(tmp_path):
    with pytest.raises(AlphaRLError, match="no shipped policy 'huge'"):
        shipped_policy("huge")
    with pytest.raises(AlphaRLError, match="not in the local Hugging Face cache and the hub is offline"):
        resolve_policy("Qwen/Qwen3-8B")  # the suite runs offline (conftest): a hub id comes from the cache
    with pytest.raises(AlphaRLError, match="model folder no/such/folder does not exist"):
        resolve_policy("no/such/folder")
    assert resolve_policy(str(tmp_path)) == tmp_path


def test_the_tests_policy_is_the_harness_recipe_and_is_verified(tmp_path):
    """The trainer tests load `tests/data/tiny-test`, not a per-machine build: its recorded recipe must be
    the harness's `TEST_MODEL`, and a changed file must be refused like a shipped policy's."""
    from tests.trainer.harness import TEST_MODEL, test_model_dir

    folder = test_model_dir()
    assert json.loads((folder / "tiny_recipe.json").read_text())["hash"] == TEST_MODEL.recipe_hash()
    copy = shutil.copytree(folder, tmp_path / "copy")
    (copy / "tokenizer.json").write_text("{}")
    with pytest.raises(AlphaRLError, match="tokenizer.json does not match its checksum"):
        verified_folder(copy, "copy")
