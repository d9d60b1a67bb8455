"""`alpharl analyze`: rank-1 dominance and linearity report of a series of checkpoints.

Says whether `alpharl predict` is worth trusting on a run. For every tracked tensor and checkpoint it
measures how much of the update W_t - W_0 its top singular direction holds (s1/||dW||_F and s1/s2),
how straight a line the rank-1 factor follows over the steps (R^2, from 3 checkpoints) and how stable
its direction is (cosine of consecutive u). Writes `analysis.json` and PNG plots (distributions.png,
singular_values.png) to --out and prints the means.
"""

from __future__ import annotations

import argparse

from alpharl_trainer.commands.window_args import add_window_arguments, fmt, window_kwargs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_window_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from alpharl_trainer.offline.analyze import analyze

    summary = analyze(args.base, args.checkpoints, args.out, **window_kwargs(args))["summary"]
    print(
        f"wrote {args.out}: {summary['tracked'] - summary['frozen']} tensors, "
        f"mean rank-1 share {fmt(summary['mean_rank1_share_last'])}, "
        f"mean s1/s2 {fmt(summary['mean_s1_over_s2_last'])}, "
        f"mean linear R^2 {fmt(summary['mean_r2_linear'])}, "
        f"mean cos(u_t, u_t-1) {fmt(summary['mean_u_cosine'])}"
    )
    return 0
