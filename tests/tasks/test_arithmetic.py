import pytest

from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.tasks import SPLITS, get_task
from alpharl_trainer.tasks.arithmetic import CATEGORIES, MIXES
from alpharl_trainer.tasks.splits import split_of


@pytest.fixture
def task():
    return get_task("arithmetic")


def test_problem_format_and_gold(task):
    p = task.make(347, 58)
    assert (p.prompt, p.answer, p.solution, p.category) == ("347+058=", "405", "504", "3+2")
    assert task.score(p.solution, p.answer) == 1.0


def test_generator_deterministic_by_seed(task):
    assert task.problems("train", 50, seed=3) == task.problems("train", 50, seed=3)
    assert task.problems("train", 50, seed=3) != task.problems("train", 50, seed=4)


@pytest.mark.parametrize("mix", ["sft", "rl", "all"])
def test_splits_disjoint_and_owned(mix):
    task = get_task("arithmetic", mix=mix)
    prompts = {s: {p.prompt for p in task.problems(s, 600, seed=0)} for s in SPLITS}
    for s in SPLITS:
        assert all(split_of(q) == s for q in prompts[s])
    assert not prompts["train"] & prompts["heldout"]
    assert not prompts["train"] & prompts["test"]
    assert not prompts["heldout"] & prompts["test"]


def test_splits_disjoint_across_mixes_and_seeds():
    sft_train = {p.prompt for p in get_task("arithmetic", mix="sft").problems("train", 3000, seed=0)}
    rl_heldout = {p.prompt for p in get_task("arithmetic", mix="rl").problems("heldout", 1000, seed=7)}
    assert not sft_train & rl_heldout


def test_answers_are_correct_sums(task):
    for p in task.problems("test", 200, seed=1):
        left, right = p.prompt.rstrip("=").split("+")
        assert len(left) == len(right)  # zero-padded to a common width
        assert p.answer == str(int(left) + int(right)) and p.solution == p.answer[::-1]
        assert p.category in CATEGORIES


def test_mixes_follow_weights():
    rl = get_task("arithmetic", mix="rl").problems("train", 400)
    assert {p.category for p in rl} == {"2+3", "3+2", "3+3"}
    assert all("4" in p.category for p in get_task("arithmetic", mix="hard").problems("train", 100))
    sft = get_task("arithmetic", mix="sft").problems("train", 4000)
    hard = sum("4" in p.category for p in sft) / len(sft)
    assert 0.02 < hard < 0.07  # "a few percent" of hard categories
    assert sum(MIXES["sft"].values()) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "completion, expected",
    [
        ("504", 1.0),
        (" 504\n", 1.0),  # surrounding whitespace is not an answer change
        ("405", 0.0),  # not reversed
        ("5040", 0.0),  # extra digit (a leading zero of the sum)
        ("5041", 0.0),  # extra digit
        ("50", 0.0),  # missing digit
        ("-504", 0.0),  # sign
        ("504-", 0.0),
        ("504 ", 1.0),
        ("504x", 0.0),  # trailing junk
        ("504 504", 0.0),
        ("5 04", 0.0),
        ("", 0.0),  # answer missing
        ("answer", 0.0),
    ],
)
def test_verifier_rejects_near_misses(task, completion, expected):
    assert task.score(completion, "405") == expected


def test_extract_answer(task):
    assert task.extract_answer("0964") == "4690"
    assert task.extract_answer("") is None
    assert task.extract_answer("12+3") is None


def test_bad_options():
    with pytest.raises(AlphaRLError, match="unknown mix"):
        get_task("arithmetic", mix="impossible")
    with pytest.raises(AlphaRLError, match="bad mix"):
        get_task("arithmetic", mix={"5+5": 1.0})
    with pytest.raises(AlphaRLError, match="unknown split"):
        get_task("arithmetic").problems("validation", 3)
    with pytest.raises(AlphaRLError, match="bad options"):
        get_task("arithmetic", digits=5)
    with pytest.raises(AlphaRLError, match="unknown task"):
        get_task("chess")
