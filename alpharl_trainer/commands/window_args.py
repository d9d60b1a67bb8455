"""Arguments `predict` and `analyze` share (the folders, which tensors to track) and their console numbers.
Parsing imports nothing heavy, so `--help` answers at once."""

from __future__ import annotations

import argparse
import re

from alpharl_trainer.errors import AlphaRLError


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
        help="read pickled weights: .bin/.pt files, DeepSpeed ZeRO shards, verl FSDP shards "
        "(model_world_size_W_rank_R.pt); only from a trusted source",
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
    from alpharl_trainer.extrapolation.select import ParamSelector

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
