import pytest

from alpharl_trainer.tasks import SPLITS, TASKS, get_task, to_dataset


@pytest.fixture
def task():
    return get_task("sort")


def test_registered():
    assert TASKS == ("arithmetic", "sort", "chat-arithmetic")


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
    assert ds.column_names == ["prompt", "answer", "category", "reference"]
    assert ds["reference"] == ds["answer"]  # the gold completion is the sorted list itself
    assert len(ds) == 12 and all(isinstance(p, str) and p.startswith("sort ") for p in ds["prompt"])
    assert set(ds["category"]) <= {"len6", "len7"}


def test_climb_mix_is_five_and_nine_letters_one_to_three_and_sft_is_unchanged():
    """The suite's climbing regime draws 5- and 9-letter lists (1:3); adding lists of 8 and 9 letters left the
    SFT mix of the shipped policy as it was (3-5 letters, 4% of 6-7)."""
    from alpharl_trainer.reproduce.evaluation import completion_length
    from alpharl_trainer.tasks.sorting import MIXES

    problems = get_task("sort", mix="climb").problems("test", 2000, seed=0)
    share = sum(p.category == "len9" for p in problems) / len(problems)
    assert {p.category for p in problems} == {"len5", "len9"} and 0.71 < share < 0.79
    assert max(len(p.solution) for p in problems) + 1 <= completion_length("sort")  # answer + EOS fits
    assert MIXES["sft"] == {"len3": 0.32, "len4": 0.32, "len5": 0.32, "len6": 0.02, "len7": 0.02}
