"""`alpharl analyze`: rank-1 dominance and linearity report of a series of checkpoints."""

from __future__ import annotations

import argparse

from alpharl_trainer.offline import add_window_arguments, analyze, fmt, window_kwargs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_window_arguments(parser)


def run(args: argparse.Namespace) -> int:
    summary = analyze(args.base, args.checkpoints, args.out, **window_kwargs(args))["summary"]
    print(
        f"wrote {args.out}: {summary['tracked'] - summary['frozen']} tensors, "
        f"mean rank-1 share {fmt(summary['mean_rank1_share_last'])}, "
        f"mean s1/s2 {fmt(summary['mean_s1_over_s2_last'])}, "
        f"mean linear R^2 {fmt(summary['mean_r2_linear'])}, "
        f"mean cos(u_t, u_t-1) {fmt(summary['mean_u_cosine'])}"
    )
    return 0
