"""The reproduction suite's recipe: which RL runs to make, and how every prediction is built and scored.

One YAML file holds it (`recipes/reproduce/default.yaml`); this module turns it into dataclasses and
rejects anything the harness could not honour (unknown keys, windows outside (0, 1), too few
checkpoints in a window for a line fit) before a single training step is spent.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.extrapolation.forecast import MIN_STEPS
from alpharl_trainer.tasks import TASKS, get_task
from alpharl_trainer.trainer.candidates import FAMILIES

LOSSES = ("grpo", "dapo", "rloo", "ppo")


@dataclass(frozen=True)
class Regime:
    """An RL regime of the testbed: how hard each step pushes and how noisy its gradient is."""

    learning_rate: float
    prompts: int
    """Prompts per step (each gets `generations` completions)."""
    generations: int = 8
    mix: str = "rl"
    """The task's difficulty mix (a preset of `alpharl_trainer/tasks/`): what RL trains on and what the
    held-out and test splits are drawn from."""


@dataclass(frozen=True)
class RunSpec:
    """One full RL run of the suite (a row group of the results)."""

    task: str
    loss: str
    regime: str
    seed: int = 0
    headline: bool = False
    """Headline cells are repeated over several seeds in the report (mean and spread)."""

    @property
    def name(self) -> str:
        return f"{self.task}-{self.loss}-{self.regime}-s{self.seed}"


@dataclass(frozen=True)
class EvalSpec:
    test_problems: int = 5000
    """Test-split problems scored greedily (teacher-forced exact match, equal to greedy decoding)."""
    test_seed: int = 0
    """Seed of the test draw. Another seed than 0, with `unseen_after`, gives a confirmation split."""
    unseen_after: int = 0
    """Leave out of the test draw every prompt among the first `unseen_after` test problems of seed 0 (what
    the development runs scored): a confirmation split of problems no development run ever scored."""
    heldout_problems: int = 1000
    """Held-out problems: every choice (the gate's, ExPO's a, first-update's c, ...) and the scans. The
    product run's gate scores the same problems (the recipe's `eval_size`)."""
    sampled_problems: int = 100
    """Test problems also decoded by sampling, `samples` each (avg@n), the same subset for every model."""
    samples: int = 4
    temperature: float = 0.6
    off_task_problems: int = 300
    """Problems of the other task (test split): does a prediction damage what RL never trained?"""
    curve_every: int = 10
    """Full-run checkpoints scored on the test split for the accuracy-vs-step curve."""


@dataclass(frozen=True)
class MethodSpec:
    horizons: tuple[float, ...] = (1.25, 1.5, 2.0, 2.5, 4.0, 10.0)
    """The default's candidate targets, as multiples of the window-end step (chosen on held-out)."""
    expo_factors: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0, 2.0)
    """ExPO's `a` grid; `a = 0` (keep W_K, the option every method has) and `T / window - 1` (a straight line
    to step T) are always added."""
    first_update_factors: tuple[float, ...] = (1.0, 3.0, 10.0, 30.0, 100.0)
    lawa_k: int = 4
    paper_target: float = 1.0
    """The paper's target reward level y* (its text: 1.0; its scripts used 1.7, 0.78, 0.8, 1.0)."""
    paper_mode: str = "reference"
    """How the paper's forecast is written: `reference` = W_K + x_hat v^T, as its current scripts do."""
    paper_targets: tuple[float, ...] = (0.5, 0.78, 0.8, 1.0, 1.7)
    """The y* grid of the paper's method done fairly (`alpharl_paper_tuned`): the values its text and scripts
    used, chosen on held-out with the option to keep W_K, and written `rank1_replace`."""
    paper_target_fractions: tuple[float, ...] = (0.05, 0.1, 0.2, 0.35, 0.5)
    """More of that grid inside the run's own reward range (the paper's values sit above a tiny run's):
    `r_K + f (1 - r_K)`, `r_K` the window end's mean training reward, 1 the tasks' best reward."""
    fixed_basis_ranks: tuple[int, ...] = (1, 4)
    """`fixed_basis_*`: the subspace ranks k its candidates try (with the product's candidate steps).
    `portfolio` chooses among the rank-1 line, ExPO, RELEX and the saturating fixed-basis candidates."""
    candidates: tuple[str, ...] = ("rank1", "fixed_basis", "expo", "average")
    """The product's gate's candidate families (`alpharl_candidates`), with `horizons`, `fixed_basis_ranks`,
    `expo_factors` and `lawa_k` as their knobs: the `default` cell runs them."""
    jumps: int = 0
    """`default+jumps`: the product with `alpharl_jumps` = this many jumps, one per window of the window
    end's length, at the windows `jumps_windows`; paired with the truncated run at the last jump
    (`truncated@jumps`). 0 or 1: off."""
    jumps_windows: tuple[float, ...] = ()
    """Windows (among the suite's) where `default+jumps` runs; `jumps` of them must fit in T."""
    recent_k: int = 4
    """`best_recent`: the best of the window's last `recent_k` checkpoints on held-out."""
    scan_scales: tuple[float, ...] = (0.0, 0.5, 1.0, 1.5, 2.0)
    margin_se: float = 2.0
    """Fixed in advance: a candidate replaces W_K only if it beats it on held-out by more than this many
    paired standard errors. The product's gate (`alpharl_acceptance_margin_se`) and every baseline's choice
    use it."""


@dataclass(frozen=True)
class Suite:
    name: str
    steps: int
    """T: steps of every full run."""
    checkpoint_every: int
    windows: tuple[float, ...]
    finetune_steps: int
    regimes: dict[str, Regime]
    runs: tuple[RunSpec, ...]
    eval: EvalSpec = field(default_factory=EvalSpec)
    methods: MethodSpec = field(default_factory=MethodSpec)
    out: Path = Path("results/reproduce")
    work_dir: Path = Path(".cache/reproduce")
    threads: int = 2
    finetune_windows: tuple[float, ...] | None = None
    """Windows (a subset of `windows`) whose default prediction is also fine-tuned; None: all of them."""
    budget_minutes: float = 45.0
    """The time the suite is meant to fit in; the report states it next to the measured time."""

    def window_steps(self) -> list[int]:
        return [round(f * self.steps) for f in self.windows]

    def finetune_window_steps(self) -> list[int]:
        chosen = self.windows if self.finetune_windows is None else self.finetune_windows
        return [round(f * self.steps) for f in chosen] if self.finetune_steps else []

    def trajectory_steps(self, end: int) -> list[int]:
        """Checkpoint steps of the fitting window ending at `end`: every `checkpoint_every`, plus `end`."""
        return sorted({s for s in range(self.checkpoint_every, end + 1, self.checkpoint_every)} | {end})

    def snapshot_steps(self) -> list[int]:
        """Steps of the run's rank-1 trajectory: the regular checkpoints and every window end. A window's
        trajectory is its prefix (alignment runs forward in time, so a prefix is what the window saw)."""
        return sorted(set(self.trajectory_steps(self.steps)) | set(self.window_steps()))

    def admission_steps(self) -> dict[str, list[int]]:
        """The checkpoints the admission rule reads (`reproduce.admission`): the run at 40% and at 80% of T,
        and its last three checkpoints (the full run's accuracy is their mean)."""
        last = sorted({max(1, self.steps - k * self.checkpoint_every) for k in range(3)})
        return {"at_40": [round(0.4 * self.steps)], "at_80": [round(0.8 * self.steps)], "last_three": last}

    def jumps_window_steps(self) -> list[int]:
        """Window ends at which `default+jumps` runs."""
        if self.methods.jumps < 2:
            return []
        return [round(f * self.steps) for f in self.methods.jumps_windows]

    def save_steps(self) -> list[int]:
        """Every checkpoint a full run keeps: the regular ones, step 1 (first-update baseline), each
        window end, each window end + fine-tune steps (truncated run at the fine-tune's budget), the
        admission rule's checkpoints, and T."""
        steps = set(self.snapshot_steps()) | {1, self.steps}
        steps |= {s for group in self.admission_steps().values() for s in group}
        steps |= {e + self.finetune_steps for e in self.finetune_window_steps()}
        steps |= {self.methods.jumps * e for e in self.jumps_window_steps()}
        return sorted(steps)


def _build(cls, raw: dict | None, where: str, **converters):
    raw = dict(raw or {})
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise AlphaRLError(f"{where}: unknown keys {unknown} (known: {sorted(known)})")
    for key, convert in converters.items():
        if key in raw:
            raw[key] = convert(raw[key])
    try:
        return cls(**raw)
    except TypeError as err:
        raise AlphaRLError(f"{where}: {err}") from err


def _runs(raw: list, regimes: dict[str, Regime], where: str) -> tuple[RunSpec, ...]:
    """`{task, loss, regime, seeds: [..], headline}` entries, one RunSpec per seed."""
    out = []
    for i, entry in enumerate(raw or []):
        entry = dict(entry)
        seeds = entry.pop("seeds", [entry.pop("seed", 0)])
        for seed in seeds:
            spec = _build(RunSpec, {**entry, "seed": int(seed)}, f"{where}: runs[{i}]")
            if spec.task not in TASKS:
                raise AlphaRLError(f"{where}: runs[{i}]: unknown task {spec.task!r} (known: {TASKS})")
            if spec.loss not in LOSSES:
                raise AlphaRLError(f"{where}: runs[{i}]: unknown loss {spec.loss!r} (known: {LOSSES})")
            if spec.regime not in regimes:
                raise AlphaRLError(f"{where}: runs[{i}]: unknown regime {spec.regime!r} ({sorted(regimes)})")
            try:
                get_task(spec.task, mix=regimes[spec.regime].mix)
            except AlphaRLError as err:
                raise AlphaRLError(f"{where}: runs[{i}]: regime {spec.regime!r}: {err}") from err
            out.append(spec)
    if not out:
        raise AlphaRLError(f"{where}: no runs")
    names = [r.name for r in out]
    if len(set(names)) != len(names):
        raise AlphaRLError(f"{where}: duplicate runs {sorted({n for n in names if names.count(n) > 1})}")
    return tuple(out)


def load_suite(path: str | Path) -> Suite:
    """The suite of recipe `path`; AlphaRLError naming the file for anything it cannot run."""
    path = Path(path)
    if not path.is_file():
        raise AlphaRLError(f"recipe {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise AlphaRLError(f"{path}: not valid YAML: {err}") from err
    where = str(path)
    regimes = {
        k: _build(Regime, v, f"{where}: regimes.{k}") for k, v in (raw.pop("regimes", {}) or {}).items()
    }
    suite = _build(
        Suite,
        {
            **raw,
            "regimes": regimes,
            "runs": _runs(raw.get("runs"), regimes, where),
            "eval": _build(EvalSpec, raw.get("eval"), f"{where}: eval"),
            "methods": _build(
                MethodSpec,
                raw.get("methods"),
                f"{where}: methods",
                **{
                    k: tuple
                    for k in (
                        "horizons",
                        "expo_factors",
                        "first_update_factors",
                        "scan_scales",
                        "paper_targets",
                        "paper_target_fractions",
                        "fixed_basis_ranks",
                        "candidates",
                        "jumps_windows",
                    )
                },
            ),
        },
        where,
        windows=tuple,
        finetune_windows=tuple,
        out=Path,
        work_dir=Path,
    )
    _validate(suite, where)
    return suite


def _validate(suite: Suite, where: str) -> None:
    if not all(0 < f < 1 for f in suite.windows) or list(suite.windows) != sorted(set(suite.windows)):
        raise AlphaRLError(f"{where}: windows must be increasing fractions in (0, 1), got {suite.windows}")
    for end in suite.window_steps():
        if len(suite.trajectory_steps(end)) < MIN_STEPS:
            raise AlphaRLError(
                f"{where}: the window ending at step {end} holds fewer than {MIN_STEPS} checkpoints at "
                f"checkpoint_every={suite.checkpoint_every}: lower it or raise steps"
            )
    if not set(suite.finetune_windows or ()) <= set(suite.windows):
        raise AlphaRLError(f"{where}: finetune_windows {suite.finetune_windows} must be among windows")
    if any(end + suite.finetune_steps > suite.steps for end in suite.finetune_window_steps()):
        raise AlphaRLError(f"{where}: a fine-tuned window's end + finetune_steps must be <= steps")
    if suite.eval.curve_every % suite.checkpoint_every:
        raise AlphaRLError(f"{where}: eval.curve_every must be a multiple of checkpoint_every")
    if suite.finetune_steps < 0 or suite.checkpoint_every < 1:
        raise AlphaRLError(f"{where}: finetune_steps must be >= 0 and checkpoint_every >= 1")
    if min(suite.methods.horizons) <= 1:
        raise AlphaRLError(f"{where}: horizons are multiples of the window end and must be > 1")
    if suite.methods.lawa_k < 1:
        raise AlphaRLError(f"{where}: lawa_k must be >= 1")
    if not set(suite.methods.jumps_windows) <= set(suite.windows):
        raise AlphaRLError(
            f"{where}: methods.jumps_windows {suite.methods.jumps_windows} must be among windows"
        )
    if any(suite.methods.jumps * end > suite.steps for end in suite.jumps_window_steps()):
        raise AlphaRLError(f"{where}: methods.jumps windows of a jumps_windows length must fit in steps")
    if not suite.methods.candidates or not set(suite.methods.candidates) <= set(FAMILIES):
        raise AlphaRLError(f"{where}: methods.candidates must be families among {FAMILIES}")
