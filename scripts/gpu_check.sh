#!/usr/bin/env bash
# One-GPU check of the vLLM path of AlphaRL's gate and swap (what the CPU tests cannot run): a short GRPO run
# of the shipped tiny policy with vLLM colocated, five checks printed one per line, exit 1 if any fails.
# Needs one CUDA GPU, CUDA torch 2.13.0 and a vLLM release built for it (README, "On a GPU machine").
# Without them it refuses (exit 2) and names what is missing. About 5 minutes; the limit is 10.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec timeout 600 python3 scripts/gpu_check.py "$@"
