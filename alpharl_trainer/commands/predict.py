"""`alpharl predict`: forecast a checkpoint from a base and a window of checkpoint folders (offline)."""

from __future__ import annotations

import argparse

from alpharl_trainer.checkpoints import DEFAULT_MAX_SHARD_BYTES
from alpharl_trainer.extrapolation.apply import MODES
from alpharl_trainer.offline import FITS, add_window_arguments, fmt, predict, window_kwargs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_window_arguments(parser)
    parser.add_argument(
        "--target-step", type=int, metavar="T", help="step to forecast (needed with --covariate step)"
    )
    parser.add_argument(
        "--fit", choices=FITS, default="linear", help="straight-line fit per coordinate, or PLS"
    )
    parser.add_argument(
        "--mode",
        choices=MODES,
        default="rank1_replace",
        help="rank1_replace: W_tK + (a_hat - a_tK) v^T; rank1_only: W_0 + rescaled a_hat v^T; "
        "reference: W_tK + a_hat v^T (the paper's scripts)",
    )
    parser.add_argument(
        "--scale", type=float, default=1.0, metavar="S", help="shrink (<1) or stretch the extrapolated step"
    )
    parser.add_argument(
        "--covariate", choices=("step", "reward"), default="step", help="what a_t is regressed on"
    )
    parser.add_argument(
        "--rewards", nargs="+", type=float, metavar="R", help="measured reward of each checkpoint"
    )
    parser.add_argument(
        "--target-reward", type=float, metavar="Y", help="reward level to forecast (with --covariate reward)"
    )
    parser.add_argument(
        "--max-shard-gb",
        type=float,
        default=DEFAULT_MAX_SHARD_BYTES / 1024**3,
        metavar="GB",
        help="largest safetensors shard written, in GiB (one shard is held in memory)",
    )


def run(args: argparse.Namespace) -> int:
    report = predict(
        args.base,
        args.checkpoints,
        args.out,
        target_step=args.target_step,
        target_reward=args.target_reward,
        covariate=args.covariate,
        rewards=args.rewards,
        fit=args.fit,
        mode=args.mode,
        scale=args.scale,
        max_shard_bytes=int(args.max_shard_gb * 1024**3),
        **window_kwargs(args),
    )
    summary = report["summary"]
    print(
        f"wrote {args.out}: {summary['forecast']} tensors forecast to {report['target']['covariate']} "
        f"{report['target']['value']:g} ({summary['frozen']} frozen), mean R^2 {fmt(summary['mean_r2'])}, "
        f"mean rank-1 share {fmt(summary['mean_rank1_share'])}"
    )
    return 0
