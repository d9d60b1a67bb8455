"""`alpharl predict`: forecast a checkpoint from a base and a window of checkpoint folders (offline).

Reads the base weights and a window of checkpoints written by any framework (Hugging Face folders: TRL's
checkpoint-N, a merged verl global_step_N, ...), extracts the rank-1 factor of every tracked update
W_t - W_0, fits how it moves with the step (or the reward), and writes the weights it forecasts at
--target-step as a checkpoint that loads with `from_pretrained`, beside `alpharl_report.json` (per
tensor R^2 and rank-1 share) and the trajectory. Run `alpharl analyze` first to see whether the
updates are rank-1 and linear enough for the forecast to be trusted.
"""

from __future__ import annotations

import argparse
import sys

from alpharl_trainer.commands.arg_types import positive_float, positive_int
from alpharl_trainer.commands.window_args import add_window_arguments, fmt, window_kwargs

# Parsing imports nothing heavy (torch, the library are imported in `run`), so `--help` answers at once;
# hence copies of library constants whose modules import torch. tests/test_cli.py checks they agree.
FITS = ("linear", "pls")  # alpharl_trainer.extrapolation.forecast.FITS
MODES = ("rank1_replace", "rank1_only", "reference")  # alpharl_trainer.extrapolation.apply.MODES
DEFAULT_MAX_SHARD_GB = 2.0  # alpharl_trainer.checkpoints.DEFAULT_MAX_SHARD_BYTES, in GiB


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
        "--forecast",
        choices=("rank1", "fixed-basis"),
        default="rank1",
        help="rank1: the line of a_t = s_t u_t (AlphaRL); fixed-basis: the window's updates projected on the "
        "last update's top right singular vectors, one shared time profile extrapolated",
    )
    parser.add_argument(
        "--basis-rank", type=positive_int, default=1, metavar="K", help="fixed-basis: subspace rank k"
    )
    parser.add_argument(
        "--profile",
        choices=("linear", "saturating"),
        default="linear",
        help="fixed-basis: the time profile's extrapolation (a line through the origin or a saturating fit)",
    )
    parser.add_argument(
        "--rewards", nargs="+", type=float, metavar="R", help="measured reward of each checkpoint"
    )
    parser.add_argument(
        "--target-reward", type=float, metavar="Y", help="reward level to forecast (with --covariate reward)"
    )
    parser.add_argument(
        "--dtype",
        choices=("keep", "float32", "bfloat16", "float16"),
        default="keep",
        help="dtype of the written weights: 'keep' the last checkpoint's (default), or e.g. float32 to keep "
        "the forecast exact on bf16 checkpoints (rounding a small update into bf16 loses ~1%% of it); "
        "config.json says the dtype written",
    )
    parser.add_argument(
        "--max-shard-gb",
        type=positive_float,
        default=DEFAULT_MAX_SHARD_GB,
        metavar="GB",
        help=f"largest safetensors shard written, in GiB (one shard is held in memory; default: "
        f"{DEFAULT_MAX_SHARD_GB:g})",
    )


def run(args: argparse.Namespace) -> int:
    from alpharl_trainer.offline.predict import predict

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
        dtype=None if args.dtype == "keep" else args.dtype,
        method=args.forecast,
        basis_rank=args.basis_rank,
        profile=args.profile,
        max_shard_bytes=int(args.max_shard_gb * 1024**3),
        **window_kwargs(args),
    )
    summary = report["summary"]
    print(
        f"wrote {args.out}: {summary['forecast']} tensors forecast to {report['target']['covariate']} "
        f"{report['target']['value']:g} ({summary['frozen']} frozen), "
        f"line-fit R^2 of a_t {fmt(summary['mean_fit_r2'])}, "
        f"mean rank-1 share {fmt(summary['mean_rank1_share'])}"
        + (
            f", paper's R^2 (reward on the PLS score) {fmt(summary['mean_reward_r2'])}"
            if summary["mean_reward_r2"] is not None
            else ""
        )
    )
    if summary["large_jumps"]:
        print(
            f"warning: the forecast moves {len(summary['large_jumps'])} tensor(s) more than 10 times their "
            f"whole window update (largest {summary['max_jump']:.3g}x, e.g. {summary['large_jumps'][0]}): "
            "far outside the window, evaluate before use",
            file=sys.stderr,
        )
    return 0
