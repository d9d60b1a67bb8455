"""The launch a recipe will run under: processes, machines, DeepSpeed stage, precision, offload.

From `--accelerate-config FILE`, else the environment of a running `accelerate launch` (WORLD_SIZE,
ACCELERATE_USE_DEEPSPEED, ...), else `$ACCELERATE_CONFIG_FILE`, else one process; `--num-processes` and
`--num-machines` override, as `accelerate launch` flags do.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from alpharl_trainer.errors import AlphaRLError

if TYPE_CHECKING:
    from alpharl_trainer.plan.options import PlanOptions


@dataclass
class Launch:
    processes: int
    machines: int
    distributed: str
    """accelerate's distributed_type: NO, MULTI_GPU, DEEPSPEED, FSDP, ..."""
    zero_stage: int | None = None
    mixed_precision: str = "no"
    offload_optimizer: bool = False
    offload_params: bool = False
    source: str = "default: one process"


def resolve_launch(options: PlanOptions, environ: dict[str, str] | None = None) -> Launch:
    environ = dict(os.environ if environ is None else environ)
    if options.accelerate_config:
        launch = _launch_from_file(Path(options.accelerate_config), "--accelerate-config")
    elif "WORLD_SIZE" in environ:
        launch = _launch_from_env(environ)
    elif environ.get("ACCELERATE_CONFIG_FILE"):
        launch = _launch_from_file(Path(environ["ACCELERATE_CONFIG_FILE"]), "$ACCELERATE_CONFIG_FILE")
    else:
        launch = Launch(processes=1, machines=1, distributed="NO")
    if options.num_processes:
        launch.processes, launch.source = options.num_processes, launch.source + " + --num-processes"
    if options.num_machines:
        launch.machines, launch.source = options.num_machines, launch.source + " + --num-machines"
    for name in ("processes", "machines"):
        value = getattr(launch, name)
        if not isinstance(value, int) or value < 1:
            raise AlphaRLError(
                f"{launch.source}: num_{name} is {value!r}: fill in the template's placeholders or pass "
                f"--num-{name}"
            )
    if launch.processes % launch.machines:
        raise AlphaRLError(
            f"{launch.processes} processes do not split evenly over {launch.machines} machines"
        )
    return launch


def _launch_from_env(environ: dict[str, str]) -> Launch:
    """Inside `accelerate launch` (torchrun): the world is known, DeepSpeed settings are in ACCELERATE_*."""
    world = int(environ["WORLD_SIZE"])
    local = int(environ.get("LOCAL_WORLD_SIZE", world))
    deepspeed = environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true"
    launch = Launch(
        processes=world,
        machines=max(world // max(local, 1), 1),
        distributed="DEEPSPEED" if deepspeed else ("MULTI_GPU" if world > 1 else "NO"),
        mixed_precision=environ.get("ACCELERATE_MIXED_PRECISION", "no"),
        source="the environment of this launch (WORLD_SIZE, ACCELERATE_*)",
    )
    if deepspeed:
        ds_file = environ.get("ACCELERATE_DEEPSPEED_CONFIG_FILE")
        if ds_file and ds_file != "None":
            _read_deepspeed_json(launch, _find(Path(ds_file), Path.cwd()))
        if environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE"):
            launch.zero_stage = int(environ["ACCELERATE_DEEPSPEED_ZERO_STAGE"])
        launch.offload_optimizer |= environ.get("ACCELERATE_DEEPSPEED_OFFLOAD_OPTIMIZER_DEVICE") == "cpu"
        launch.offload_params |= environ.get("ACCELERATE_DEEPSPEED_OFFLOAD_PARAM_DEVICE") == "cpu"
    return launch


def _launch_from_file(path: Path, source: str) -> Launch:
    if not path.is_file():
        raise AlphaRLError(f"accelerate config {path} ({source}) does not exist")
    config = yaml.safe_load(path.read_text()) or {}
    launch = Launch(
        processes=config.get("num_processes", 1),
        machines=config.get("num_machines", 1),
        distributed=str(config.get("distributed_type", "NO")),
        mixed_precision=str(config.get("mixed_precision", "no")),
        source=f"{path} ({source})",
    )
    if launch.distributed == "DEEPSPEED":
        ds = config.get("deepspeed_config") or {}
        if ds.get("deepspeed_config_file"):
            _read_deepspeed_json(launch, _find(Path(ds["deepspeed_config_file"]), path.parent))
        else:
            launch.zero_stage = int(ds.get("zero_stage", 2))
            launch.offload_optimizer = ds.get("offload_optimizer_device") == "cpu"
            launch.offload_params = ds.get("offload_param_device") == "cpu"
    return launch


def _find(path: Path, near: Path) -> Path:
    """A DeepSpeed JSON named relative to the launch directory; also tried from the config's ancestors."""
    if path.is_absolute() or path.is_file():
        return path
    for folder in [near.resolve(), *near.resolve().parents]:
        if (folder / path).is_file():
            return folder / path
    raise AlphaRLError(f"DeepSpeed config {path} not found (relative to {Path.cwd()} or {near})")


def _read_deepspeed_json(launch: Launch, path: Path) -> None:
    if not path.is_file():
        raise AlphaRLError(f"DeepSpeed config {path} does not exist")
    zero = json.loads(path.read_text()).get("zero_optimization", {})
    launch.zero_stage = int(zero.get("stage", 0))
    launch.offload_optimizer = (zero.get("offload_optimizer") or {}).get("device") == "cpu"
    launch.offload_params = (zero.get("offload_param") or {}).get("device") == "cpu"
