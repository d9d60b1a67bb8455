"""results.csv, results.md and the plots of a finished suite, written into one folder atomically."""

from __future__ import annotations

from pathlib import Path

from alpharl_trainer.checkpoints import atomic_output_dir
from alpharl_trainer.reproduce import plots
from alpharl_trainer.reproduce.config import Suite
from alpharl_trainer.reproduce.markdown import render_markdown
from alpharl_trainer.reproduce.table import render_csv


def write_report(suite: Suite, results: list[dict], seconds: float, out: Path) -> Path:
    """results.md, results.csv and the PNGs into `out` (replaced as a whole, never half-written)."""
    with atomic_output_dir(out, overwrite=True) as tmp:
        (tmp / "results.md").write_text(render_markdown(suite, results, seconds))
        (tmp / "results.csv").write_text(render_csv(results))
        plots.write_all(results, tmp)
    return out
