"""alpharl-trainer: RL for language models on TRL, with rank-1 weight extrapolation (AlphaRL)."""

__version__ = "0.1.0"
