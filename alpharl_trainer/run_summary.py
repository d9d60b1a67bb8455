"""What a run did, measured: test accuracy at each stage of AlphaRL, paired against the truncated run; the
run's summary (`alpharl/summary.json`) and its closing lines.

A stage's accuracy alone says little at this scale (a few points on 1,000 problems). What matters is the
difference to what you would have had without the forecast: the truncated run, the same training stopped
at the same step. Every model is scored on the same test problems (teacher-forced exact match, equal to
greedy decoding for the synthetic tasks), so differences are paired, with a 95% normal interval of the
per-problem difference (`stats.paired_normal`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from alpharl_trainer.atomic import atomic_file
from alpharl_trainer.stats import Paired, paired_normal


def _plus_minus(d: Paired) -> str:
    """`+0.030 +- 0.012 (better)`: the difference, its interval's half-width, and what the interval says."""
    verdict = "no significant difference" if d.verdict == "tie" else d.verdict
    return f"{d.diff:+.3f} +- {(d.high - d.low) / 2:.3f} ({verdict})"


@dataclass
class Stage:
    """One evaluated model of the run: a name, the step it stands at, its per-problem outcomes."""

    name: str
    step: int
    exact: list[bool]
    reference: str | None = None
    """Name of the stage it is compared with (the truncated run at the same step), if any."""

    @property
    def accuracy(self) -> float:
        return sum(self.exact) / len(self.exact)


def stage_table(stages: list[Stage]) -> list[dict]:
    """One row per stage: accuracy and, where it has a reference, the paired difference to it."""
    by_name = {s.name: s for s in stages}
    rows = []
    for s in stages:
        row = {"stage": s.name, "step": s.step, "accuracy": s.accuracy, "problems": len(s.exact)}
        row["outcomes"] = [int(x) for x in s.exact]  # kept: any two stages can be paired after the fact
        if s.reference is not None:
            ref = by_name[s.reference]
            row["vs"] = s.reference
            d = paired_normal(ref.exact, s.exact)
            row["paired"] = {"diff": d.diff, "ci95_low": d.low, "ci95_high": d.high, "n": d.n}
        rows.append(row)
    return rows


def format_stages(rows: list[dict]) -> list[str]:
    """Plain lines, one per stage: name, step, accuracy, and the paired difference to its reference."""
    lines = []
    for row in rows:
        text = f"  {row['stage']:<31} step {row['step']:>4}   accuracy {row['accuracy']:.3f}"
        if "paired" in row:
            p = row["paired"]
            diff = Paired(p["diff"], p["ci95_low"], p["ci95_high"], p["n"])
            text += f"   vs {row['vs']}: {_plus_minus(diff)}"
        lines.append(text)
    return lines


def write_summary(script, config, trainer, stages: list[Stage]) -> dict:
    """`output_dir/alpharl/summary.json` (atomically) and the model card's AlphaRL section."""
    out = Path(config.output_dir)
    summary: dict = {"output_dir": str(out), "steps": trainer.state.global_step, "finished": True}
    if trainer.alpharl is not None:
        swap = trainer.alpharl.swap
        summary.update(swap=swap and swap.to_dict(), snapshots=trainer.alpharl.trajectory.steps)
        if trainer.alpharl.config.alpharl_jumps > 1:  # every jump's decision; `swap` is the last one
            summary["swaps"] = [s.to_dict() for s in trainer.alpharl.swaps]
    if stages:
        summary["test"] = {
            "problems": script.report_test_size,
            "scoring": "teacher-forced exact match on the test split, which equals greedy decoding",
            "interval": "paired 95% normal interval of the per-problem difference",
            "stages": stage_table(stages),
        }
    with atomic_file(out / "alpharl" / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=1) + "\n")
    if trainer.alpharl is not None:
        from alpharl_trainer.trainer.model_card import write_alpharl_card

        write_alpharl_card(config.output_dir, trainer.alpharl, script.model_name_or_path, summary.get("test"))
    return summary


def print_summary(summary: dict) -> None:
    """A few plain lines: what happened at the window end, accuracy per stage, where the outputs are."""
    from alpharl_trainer.trainer.decision import SwapRecord, describe_decision

    lines = ["", f"== run finished at step {summary['steps']} =="]
    swap = summary.get("swap")
    if "swap" in summary:
        decisions = summary.get("swaps") or ([swap] if swap else [])
        lines += [describe_decision(SwapRecord.from_dict(s)) for s in decisions] or [
            "AlphaRL: the run stopped before the window closed"
        ]
    test = summary.get("test")
    if test:
        lines.append(f"test accuracy on {test['problems']} problems: {test['scoring']};")
        lines.append(f"+- is the half-width of a {test['interval']}:")
        lines += format_stages(test["stages"])
    out = summary["output_dir"]
    lines.append(
        f"outputs: final model in {out}/, summary in {out}/alpharl/summary.json, checkpoints in {out}/"
    )
    print("\n".join(lines), flush=True)
