#!/usr/bin/env bash
# Create the isolated environment the llm-compressor backend runs in (one command, idempotent).
#
# llmcompressor 0.14.0.1 needs transformers <= 5.17 and compressed-tensors 0.19.0; this project
# pins transformers 5.23, so the library cannot share the project environment. gate/envs.py builds
# it (the same mechanism as every isolated tool: `gate runtime install llmcompressor`) at
# $QUANT_GATE_LLMCOMPRESSOR_ENV (default ${XDG_CACHE_HOME:-~/.cache}/quant-gate/envs/llmcompressor-0.14.0.1),
# under a lock, complete only when its `.complete` stamp exists (written last; an interrupted
# run is removed and redone). Runs on the system python (CI calls it before the project venv exists).
# Measured: ~7.5 min and 1.5 GB the first time on a fresh 2-core machine.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec "${PYTHON:-python3}" -m gate.envs llmcompressor
