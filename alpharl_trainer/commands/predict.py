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
import re
import sys

from alpharl_trainer.commands.numbers import positive_float
from alpharl_trainer.errors import AlphaRLError

# Parsing imports nothing heavy (torch, the library are imported in `run`), so `--help` answers at once;
# hence copies of library constants whose modules import torch. tests/test_cli.py checks they agree.
FITS = ("linear", "pls")  # alpharl_trainer.offline.FITS
MODES = ("rank1_replace", "rank1_only", "reference")  # alpharl_trainer.extrapolation.apply.MODES
DEFAULT_MAX_SHARD_GB = 2.0  # alpharl_trainer.checkpoints.DEFAULT_MAX_SHARD_BYTES, in GiB


def add_window_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments `predict` and `analyze` share: the folders and which tensors to track."""
    parser.add_argument(
        "--base", required=True, metavar="DIR", help="checkpoint folder of the weights RL started from"
    )
    parser.add_argument(
        "--checkpoints",
        nargs="+",
        required=True,
        metavar="DIR",
        help="checkpoint folders of the window, in step order",
    )
    parser.add_argument(
        "--steps",
        nargs="+",
        type=int,
        metavar="N",
        help="step of each checkpoint (default: from folder names)",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (created atomically)")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    parser.add_argument(
        "--allow-pickle",
        action="store_true",
        help="read pickled .bin/.pt weights (only from a trusted source)",
    )
    track = parser.add_argument_group("tracked tensors (default: attention and MLP projections)")
    track.add_argument("--track-embeddings", action="store_true", help="also track token embeddings")
    track.add_argument("--track-lm-head", action="store_true", help="also track an untied lm_head")
    track.add_argument("--track-vectors", action="store_true", help="also track 1-D tensors (norms, biases)")
    track.add_argument("--include", metavar="REGEX", help="also track tensors whose name matches")
    track.add_argument("--exclude", metavar="REGEX", help="never track tensors whose name matches")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def window_kwargs(args: argparse.Namespace) -> dict:
    """The keyword arguments of `offline.predict`/`offline.analyze` that `add_window_arguments` parsed."""
    from alpharl_trainer.extrapolation.apply import ParamSelector

    for flag, pattern in (("--include", args.include), ("--exclude", args.exclude)):
        try:
            re.compile(pattern or "")
        except re.error as err:
            raise AlphaRLError(f"{flag} {pattern!r} is not a valid regular expression: {err}") from err
    selector = ParamSelector(
        embeddings=args.track_embeddings,
        lm_head=args.track_lm_head,
        vectors=args.track_vectors,
        include=args.include,
        exclude=args.exclude,
    )
    return {
        "steps": args.steps,
        "selector": selector,
        "allow_pickle": args.allow_pickle,
        "overwrite": args.overwrite,
        "progress": not args.quiet,
    }


def fmt(value: float | None) -> str:
    """A summary number for the console; means over no tensors are None."""
    return "n/a" if value is None else f"{value:.3f}"


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
    from alpharl_trainer.offline import predict

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
