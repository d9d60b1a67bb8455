"""The options of a dry run that no recipe holds: the launch, the model size and the GPU to plan for.

In a module of their own so that the planner's parts (the launch, the estimates) read them without
importing the planner, which imports those parts.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_GPU_MEMORY_GB = 80.0  # H100/H800/A100-80GB: the class of GPU the paper's runs used


@dataclass
class PlanOptions:
    accelerate_config: str | None = None
    num_processes: int | None = None
    num_machines: int | None = None
    model_params: float | None = None
    gpu_memory_gb: float = DEFAULT_GPU_MEMORY_GB
    gate_tokens_per_second: float | None = None
