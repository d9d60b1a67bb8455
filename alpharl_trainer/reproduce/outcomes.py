"""The per-problem 0/1 outcomes behind every interval of the suite: moved out of the scored rows into the
run's result dict (`pair_with_truncated`, `take_outcomes`), and kept in the results folder as packed bits
(`write_outcomes`: outcomes.npz, np.savez_compressed of numpy.packbits per array, with the index
outcomes.json: runs, seeds, array names and problem counts, the bootstrap settings, and the ledger of every
interval results.md prints), read back by `read_outcomes`.

An array is named `<run>/<split>/<key>`: split `test`, `heldout` or `off_task`; key `method@window_step`,
or `base` / `full` (the base policy and the full run's last checkpoint, where the result holds them). The
test problems' categories are kept the same way, one 0/1 mask over the test split per category
(`<run>/category/<category>`), their names in the index (`categories`: run -> names).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from alpharl_trainer import stats
from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.reproduce.registry import PAIRED_RESAMPLES, reference_of

FORMAT = "alpharl reproduce outcomes v1"
SPLITS = {"test": "per_problem", "heldout": "heldout_per_problem", "off_task": "off_task_per_problem"}
"""Split name in outcomes.npz -> the result dict's `{method@window_step: outcomes}` holding it."""


def take_outcomes(rows: list[dict], field: str) -> dict[str, list[int]]:
    """`{method@window_step: outcomes}` of `field`, moved out of the rows that have it."""
    return {f"{r['method']}@{r['window_step']}": r.pop(field) for r in rows if field in r}


def pair_with_truncated(rows: list[dict]) -> dict[str, list[int]]:
    """Give every scored row its paired difference to the truncated run at the same cost (the window end's
    checkpoint, or the full run's checkpoint at the fine-tune's budget), with a 95% bootstrap interval over
    the test problems and McNemar's p; move the per-problem test outcomes out of the rows into
    `{method@window: outcomes}`."""
    outcomes = take_outcomes(rows, "per_problem")
    for row in rows:
        key = f"{row['method']}@{row['window_step']}"
        ref = outcomes.get(f"{reference_of(row['method'])}@{row['window_step']}")
        if key not in outcomes or ref is None:
            continue
        diff = stats.paired(ref, outcomes[key], resamples=PAIRED_RESAMPLES)
        row.update(
            diff_vs_truncated=diff.diff,
            diff_ci_low=diff.low,
            diff_ci_high=diff.high,
            p_mcnemar=diff.p_mcnemar,
        )
    return outcomes


def arrays_of(res: dict) -> dict[str, list[int]]:
    """Every per-problem outcome list a run's result holds, by array name."""
    out = {}
    for split, field in SPLITS.items():
        for key, bits in res.get(field, {}).items():
            out[f"{res['run']}/{split}/{key}"] = bits
    cats = res.get("test_categories") or []
    for category in sorted(set(cats)):
        out[f"{res['run']}/category/{category}"] = [int(c == category) for c in cats]
    for name in ("base", "full"):
        scores = res.get(name, {})
        for split, field in (("test", "per_problem"), ("off_task", "off_task_per_problem")):
            if field in scores:
                out[f"{res['run']}/{split}/{name}"] = scores[field]
    return out


def write_outcomes(folder: Path, results: list[dict], printed: list[dict]) -> None:
    """outcomes.npz and outcomes.json into `folder` (a folder being built atomically, or use `atomic_file`
    on each); `printed`: the ledger of intervals results.md prints (`comparisons.Evidence.printed`)."""
    packed, counts = {}, {}
    for res in results:
        for name, bits in arrays_of(res).items():
            values = np.asarray(bits)
            if values.ndim != 1 or not np.isin(values, (0, 1)).all():
                raise AlphaRLError(f"{name}: outcomes must be a list of 0/1, cannot pack them")
            packed[name] = np.packbits(values.astype(np.uint8))
            counts[name] = len(values)
    runs = {
        res["run"]: {k: res[k] for k in ("task", "loss", "regime", "seed", "headline") if k in res}
        for res in results
    }
    index = {
        "format": FORMAT,
        "resamples": PAIRED_RESAMPLES,
        "bootstrap_seed": 0,
        "runs": runs,
        "arrays": counts,
        "categories": {res["run"]: sorted(set(res.get("test_categories") or [])) for res in results},
        "printed": printed,
    }
    with open(folder / "outcomes.npz", "wb") as f:
        np.savez_compressed(f, **packed)
    (folder / "outcomes.json").write_text(json.dumps(index, indent=1) + "\n")


def read_outcomes(folder: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """The index and every array (unpacked to 0/1 int arrays of their problem counts) of `folder`."""
    index = json.loads((folder / "outcomes.json").read_text())
    if index.get("format") != FORMAT:
        raise AlphaRLError(f"{folder / 'outcomes.json'}: not an outcomes index ({index.get('format')!r})")
    with np.load(folder / "outcomes.npz") as npz:
        missing = sorted(set(index["arrays"]) - set(npz.files))
        if missing:
            raise AlphaRLError(f"{folder / 'outcomes.npz'} lacks {missing[:3]}")
        arrays = {
            name: np.unpackbits(npz[name], count=n).astype(np.int64) for name, n in index["arrays"].items()
        }
    return index, arrays
