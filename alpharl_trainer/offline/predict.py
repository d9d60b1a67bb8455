"""`predict`: a checkpoint at a target step (or reward) that loads with `from_pretrained`, forecast from a
window of anyone's checkpoints, with a report of how far each tensor moved."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from tqdm import tqdm

from alpharl_trainer import __version__
from alpharl_trainer.atomic import check_output
from alpharl_trainer.checkpoints import (
    DEFAULT_MAX_SHARD_BYTES,
    atomic_output_dir,
    check_model_config,
    check_new_output,
    copy_model_files,
    write_shards,
)
from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.extrapolation.apply import ABSURD_JUMP, LARGE_JUMP, MODES, predict_weight
from alpharl_trainer.extrapolation.fixed_basis import PROFILES, fixed_basis_weight
from alpharl_trainer.extrapolation.forecast import FITS, Forecast, forecast
from alpharl_trainer.extrapolation.select import ParamSelector
from alpharl_trainer.offline.checkpoint_window import Window, build_trajectory, finite_mean, open_window

METHODS = ("rank1", "fixed-basis")
REPORT_FILE = "alpharl_report.json"
TRAJECTORY_DIR = "alpharl_trajectory"


def predicted_tensors(
    window: Window,
    forecasts: dict[str, Forecast],
    mode: str,
    scale: float,
    progress: bool = True,
    jumps: dict[str, float] | None = None,
    dtype: torch.dtype | None = None,
    fixed_basis: tuple[float, int, str] | None = None,
) -> Iterator[tuple[str, torch.Tensor]]:
    """Every tensor of the last checkpoint, in its order: forecast ones predicted, the rest untouched.

    `jumps` receives, per forecast tensor, `||W_pred - W_K|| / ||W_K - W_0||`: how far the forecast moves
    it, in units of the whole window's update. With `dtype`, every floating tensor is written in it. With
    `fixed_basis` = (target step, k, profile), forecast tensors are the fixed-basis forecast instead."""
    for name in tqdm(window.last.names(), desc="writing", unit="tensor", disable=None if progress else True):
        w_last = window.last.get(name)
        if dtype is not None and w_last.is_floating_point():  # the forecast is computed and written in it
            w_last = w_last.to(dtype)
        if name not in forecasts:
            if w_last.is_floating_point() and not torch.isfinite(w_last).all():
                raise AlphaRLError(
                    f"tensor {name} of {window.last.folder} has NaN or inf values (it is copied, not "
                    "forecast): the last checkpoint is broken"
                )
            yield name, w_last
            continue
        w_base = window.base.get(name)
        if fixed_basis is None:
            w_pred = predict_weight(w_last, w_base, forecasts[name], mode=mode, scale=scale)
        else:
            steps, readers = [float(s) for s in window.steps], window.checkpoints
            weights = (c.get(name) for c in readers)  # one checkpoint's tensor in memory at a time
            w_pred = fixed_basis_weight(steps, w_base, weights, *fixed_basis).to(w_last.dtype)
        if not torch.isfinite(w_pred).all():
            raise AlphaRLError(f"the forecast of tensor {name} has NaN or inf values")
        window_update = float((w_last.float() - w_base.float()).norm())
        jump = float((w_pred.float() - w_last.float()).norm()) / window_update if window_update > 0 else 0.0
        if jump > ABSURD_JUMP:
            raise AlphaRLError(
                f"the forecast moves {name} {jump:.3g} times its whole window update: the target is far "
                "outside what the window can predict; choose a nearer target or a smaller --scale"
            )
        if jumps is not None:
            jumps[name] = jump
        yield name, w_pred


def _set_config_dtype(path: Path, dtype: str) -> None:
    """Record the written dtype in config.json (`dtype`, and `torch_dtype` where the file uses that name),
    so `from_pretrained(dtype="auto")` loads the weights as written."""
    config = json.loads(path.read_text())
    config["dtype"] = dtype
    if "torch_dtype" in config:
        config["torch_dtype"] = dtype
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def predict(
    base: str | os.PathLike,
    checkpoints: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    target_step: int | None = None,
    target_reward: float | None = None,
    covariate: str = "step",
    rewards: Sequence[float] | None = None,
    fit: str = "linear",
    mode: str = "rank1_replace",
    scale: float = 1.0,
    steps: Sequence[int] | None = None,
    selector: ParamSelector | None = None,
    allow_pickle: bool = False,
    overwrite: bool = False,
    max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
    progress: bool = True,
    dtype: str | None = None,
    method: str = "rank1",
    basis_rank: int = 1,
    profile: str = "linear",
) -> dict:
    """Write the forecast checkpoint to `out` (with its report and trajectory); return the report.

    `dtype` ('float32', 'bfloat16', 'float16'): write every floating tensor in it, and say so in the copied
    config.json; None keeps the last checkpoint's. `method` 'fixed-basis' writes the denoised fixed-basis
    forecast (rank `basis_rank` subspace, `profile` 'linear' or 'saturating') of every tracked matrix instead
    of the rank-1 line (step covariate only; the report's rank-1 statistics still describe the window)."""
    started = time.perf_counter()
    out = Path(out)
    check_output(out, [base, *checkpoints])
    check_new_output(out, overwrite=overwrite)
    if fit not in FITS:
        raise AlphaRLError(f"unknown fit {fit!r}; choose one of {', '.join(FITS)}")
    if mode not in MODES:
        raise AlphaRLError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    if method not in METHODS:
        raise AlphaRLError(f"unknown forecast {method!r}; choose one of {', '.join(METHODS)}")
    if method == "fixed-basis" and (covariate != "step" or scale != 1.0 or mode != "rank1_replace"):
        raise AlphaRLError(
            "--forecast fixed-basis forecasts in the step (--covariate step) and writes W_K plus the moved "
            "subspace: --mode and --scale are for the rank-1 forecast"
        )
    if method == "fixed-basis" and (basis_rank < 1 or profile not in PROFILES):
        raise AlphaRLError(f"--basis-rank must be >= 1 and --profile one of {', '.join(PROFILES)}")
    if rewards is not None and len(rewards) != len(checkpoints):
        raise AlphaRLError(f"--rewards has {len(rewards)} values for {len(checkpoints)} checkpoints")
    if covariate == "reward":
        if rewards is None or target_reward is None:
            raise AlphaRLError("--covariate reward needs --rewards (one per checkpoint) and --target-reward")
        target = float(target_reward)
    elif covariate == "step":
        if target_step is None:
            raise AlphaRLError("--target-step is required with --covariate step")
        target = float(target_step)
    else:
        raise AlphaRLError(f"unknown covariate {covariate!r}; choose step or reward")

    window = open_window(base, checkpoints, steps=steps, selector=selector, allow_pickle=allow_pickle)
    check_model_config(window.last.model_folder)
    if target_step is not None and target_step <= window.steps[-1]:
        raise AlphaRLError(
            f"--target-step {target_step} is not after the last checkpoint's step {window.steps[-1]}"
        )
    timings = {}
    with atomic_output_dir(out, overwrite=overwrite) as tmp:
        t0 = time.perf_counter()
        traj, frozen = build_trajectory(
            window, {"reward": rewards} if rewards is not None else None, progress=progress
        )
        timings["trajectory"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        forecasts = forecast(traj, target, fit=fit, covariate=covariate)
        timings["forecast"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        jumps: dict[str, float] = {}
        torch_dtype = getattr(torch, dtype) if dtype is not None else None
        fixed = (target, basis_rank, profile) if method == "fixed-basis" else None
        tensors = predicted_tensors(window, forecasts, mode, scale, progress, jumps, torch_dtype, fixed)
        write_shards(tmp, tensors, max_shard_bytes)
        copy_model_files(window.last.model_folder, tmp)
        if dtype is not None:
            _set_config_dtype(tmp / "config.json", dtype)
        traj.save(tmp / TRAJECTORY_DIR)
        timings["write"] = time.perf_counter() - t0
        timings["total"] = time.perf_counter() - started

        matrices = {}
        for name, fc in forecasts.items():
            s, fro = traj.singular_values(name)[-1].item(), traj.fro(name)[-1].item()
            matrices[name] = {
                "shape": list(window.base.shape(name)),
                "fit_r2": fc.fit_r2,
                "reward_r2": fc.reward_r2,
                "rank1_share": s / fro if fro > 0 else None,
                "fro_last": fro,
                "fro_forecast": fc.fro_hat,
                "residual": traj.residuals(name)[-1].item(),
                "jump": jumps.get(name),
            }
        report = {
            "version": __version__,
            "base": str(base),
            "checkpoints": [str(c) for c in checkpoints],
            "steps": window.steps,
            "covariates": traj.covariates,
            "target": {"covariate": covariate, "value": target, "step": target_step},
            "forecast": {
                "method": method,
                **({"basis_rank": basis_rank, "profile": profile} if fixed else {}),
            },
            "fit": fit,
            "mode": mode,
            "scale": scale,
            "dtype": dtype or "as the last checkpoint",
            "frozen": frozen,
            "summary": {
                "tracked": len(window.tracked),
                "forecast": len(forecasts),
                "frozen": len(frozen),
                "mean_fit_r2": finite_mean([m["fit_r2"] for m in matrices.values()]),
                "mean_reward_r2": finite_mean([m["reward_r2"] for m in matrices.values()]),
                "mean_rank1_share": finite_mean([m["rank1_share"] for m in matrices.values()]),
                "max_jump": max(jumps.values(), default=0.0),
                "large_jumps": sorted(n for n, j in jumps.items() if j > LARGE_JUMP),
            },
            "timings_s": timings,
            "matrices": matrices,
        }
        (tmp / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n")
        (tmp / "README.md").write_text(forecast_card(report))
    return report


def forecast_card(report: dict) -> str:
    """The forecast's model card (huggingface_hub's format): where the weights came from and how they were
    predicted, so a predicted model never passes for a trained one."""
    from huggingface_hub import ModelCard, ModelCardData

    from alpharl_trainer.policies import looks_like_hub_id

    base, target = report["base"], report["target"]
    data = ModelCardData(
        library_name="transformers",
        base_model=base if looks_like_hub_id(base) else None,
        tags=["alpharl", "weight-extrapolation"],
    )
    folders = zip(report["checkpoints"], report["steps"], strict=True)
    window = ", ".join(f"`{c}` (step {s})" for c, s in folders)
    method = report["forecast"]["method"]
    lines = [
        "# A forecast, not a trained model",
        "",
        f"These weights were predicted by `alpharl predict` (alpharl-trainer {report['version']}, "
        "[AlphaRL](https://arxiv.org/abs/2510.00553)): the rank-1 trajectory of every tracked weight update "
        f"from the base `{base}` through the checkpoints {window} was fitted ({report['fit']} against the "
        f"{target['covariate']}) and extrapolated to {target['covariate']} {target['value']:g} with the "
        f"{method} forecast (mode {report['mode']}, scale {report['scale']:g}).",
        "",
        f"Mean R² of the line fits: {report['summary']['mean_fit_r2']:.3f}; the largest jump moved a matrix "
        f"{report['summary']['max_jump']:.3g} times its whole window update. Untracked tensors are the last "
        "checkpoint's. Evaluate before use: a forecast can be worse than the checkpoint it started from. "
        "`alpharl_report.json` has every number.",
    ]
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines) + "\n"))
