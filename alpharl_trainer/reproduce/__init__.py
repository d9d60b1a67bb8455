"""`alpharl reproduce`: the paper's Table 1 at CPU scale, against baselines, with diagnostics.

config.py (the YAML suite) -> runs.py (full RL runs with checkpoints, fine-tunes by resuming) ->
methods.py (each prediction from a window's checkpoints) -> evaluation.py (held-out choices, test
scores) -> suite.py (the loop) -> report.py / plots.py (results.md, results.csv, PNGs).
"""

from alpharl_trainer.reproduce.config import Suite, load_suite

__all__ = ["Suite", "load_suite"]
