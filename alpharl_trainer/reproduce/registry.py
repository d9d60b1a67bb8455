"""The suite's method registry: every row it reports, in report order, and the truncated run each row is
paired with. The runner fills these rows, and the report and the plots read them; keeping the registry in
its own module lets all three import it without the runner depending on its reporter."""

from __future__ import annotations

METHODS = (
    "truncated",
    "alpharl_paper",
    "alpharl_paper_tuned",
    "step_linear",
    "expo",
    "expo_matrices",
    "relex",
    "fixed_basis_linear",
    "fixed_basis_saturating",
    "portfolio",
    "best_recent",
    "first_update",
    "lawa",
    "default",
    "default+ft",
    "truncated@ft",
    "default+jumps",
    "truncated@jumps",
    "oracle_rank1",
)
PAIRED_AT = {
    "default+ft": "truncated@ft",
    "truncated@ft": "truncated@ft",
    "default+jumps": "truncated@jumps",
    "truncated@jumps": "truncated@jumps",
}
"""Rows that spend more than the window's steps, and the truncated run they are paired with (at that
budget); every other row is paired with `truncated` at the window end."""
OURS = ("default", "default+ft", "default+jumps")
BASELINES = tuple(
    m for m in METHODS if m not in ("truncated", "first_update", "oracle_rank1", *PAIRED_AT, *OURS)
)
"""Baselines that spend exactly the window's steps (first_update spends 1; it is reported, not compared)."""
PAIRED_RESAMPLES = 2000
"""Bootstrap resamples of a paired difference in results.csv and results.md."""


def reference_of(method: str) -> str:
    """The row `method` is paired with at the same window end: the truncated run at the same cost."""
    return PAIRED_AT.get(method, "truncated")
