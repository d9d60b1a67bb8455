import pytest

from alpharl_trainer.tasks import SPLITS, TASKS, get_task, to_dataset


@pytest.fixture
def task():
    return get_task("sort")


def test_registered():
    assert TASKS == ("arithmetic", "sort")


def test_problem_format(task):
    p = task.make("qbkeb")
    assert (p.prompt, p.answer, p.solution, p.category) == ("sort qbkeb:", "bbekq", "bbekq", "len5")


def test_deterministic_and_disjoint(task):
    assert task.problems("heldout", 40, seed=2) == task.problems("heldout", 40, seed=2)
    prompts = {s: {p.prompt for p in task.problems(s, 500, seed=0)} for s in SPLITS}
    assert not prompts["train"] & prompts["heldout"]
    assert not prompts["train"] & prompts["test"]
    assert not prompts["heldout"] & prompts["test"]


def test_answers_sorted(task):
    for p in task.problems("train", 100):
        letters = p.prompt.removeprefix("sort ").removesuffix(":")
        assert p.answer == "".join(sorted(letters)) and p.category == f"len{len(letters)}"


@pytest.mark.parametrize(
    "completion, expected",
    [
        ("bbekq", 1.0),
        ("bbekq\n", 1.0),
        ("bekq", 0.0),
        ("bbekqq", 0.0),
        ("bbeqk", 0.0),
        ("bbekq.", 0.0),
        ("BBEKQ", 0.0),
        ("b b e k q", 0.0),
        ("", 0.0),
    ],
)
def test_verifier_rejects_near_misses(task, completion, expected):
    assert task.score(completion, "bbekq") == expected


def test_to_dataset_grpo_columns():
    ds = to_dataset(get_task("sort", mix="rl"), "heldout", 12, seed=1)
    assert ds.column_names == ["prompt", "answer", "category"]
    assert len(ds) == 12 and all(isinstance(p, str) and p.startswith("sort ") for p in ds["prompt"])
    assert set(ds["category"]) <= {"len6", "len7"}
