"""results.csv, results_by_category.csv, results.md, the plots and the outcomes behind every interval
(outcomes.npz + outcomes.json) of a finished suite, written into one folder atomically."""

from __future__ import annotations

from pathlib import Path

from alpharl_trainer.checkpoints import atomic_output_dir
from alpharl_trainer.reproduce import plots
from alpharl_trainer.reproduce.categories import render_category_csv
from alpharl_trainer.reproduce.comparisons import Evidence
from alpharl_trainer.reproduce.compute import with_equal_compute
from alpharl_trainer.reproduce.config import Suite
from alpharl_trainer.reproduce.markdown import render_markdown
from alpharl_trainer.reproduce.outcomes import write_outcomes
from alpharl_trainer.reproduce.table import render_csv


def write_report(suite: Suite, results: list[dict], seconds: float, out: Path) -> Path:
    """results.md, results.csv, results_by_category.csv, the PNGs and the outcomes into `out` (replaced as a
    whole, never half-written)."""
    results = [with_equal_compute(res) for res in results]
    ev = Evidence()  # each comparison computed once, and every interval results.md prints recorded
    markdown = render_markdown(suite, results, seconds, ev)
    table = render_csv(results, ev)
    with atomic_output_dir(out, overwrite=True) as tmp:
        (tmp / "results.md").write_text(markdown)
        (tmp / "results.csv").write_text(table)
        (tmp / "results_by_category.csv").write_text(render_category_csv(results))
        write_outcomes(tmp, results, ev.printed)
        plots.write_all(results, tmp)
    return out
