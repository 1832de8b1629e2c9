#!/usr/bin/env bash
# Create the isolated environment the llm-compressor backend runs in (one command, idempotent).
#
# llmcompressor 0.14.0.1 needs transformers <= 5.17 and compressed-tensors 0.19.0; this project
# pins transformers 5.23, so the library cannot share the project environment. The environment
# lives at $QUANT_GATE_LLMCOMPRESSOR_ENV (default
# ${XDG_CACHE_HOME:-~/.cache}/quant-gate/envs/llmcompressor-<version>) and is complete only when
# its `.complete` stamp exists (written last; an interrupted run is removed and redone).
# Measured resolution (pip --dry-run, 2026-12-04): torch 2.13.0+cpu, transformers 5.17.0,
# compressed-tensors 0.19.0, accelerate 1.16.0, 58 packages.
set -euo pipefail

VERSION="0.14.0.1"
TORCH="torch==2.13.0"
ENV_DIR="${QUANT_GATE_LLMCOMPRESSOR_ENV:-${XDG_CACHE_HOME:-$HOME/.cache}/quant-gate/envs/llmcompressor-$VERSION}"
PYTHON="${PYTHON:-python3}"

if [ -f "$ENV_DIR/.complete" ]; then echo "$ENV_DIR"; exit 0; fi
mkdir -p "$(dirname "$ENV_DIR")"
exec 9>"$ENV_DIR.lock"
flock 9
if [ -f "$ENV_DIR/.complete" ]; then echo "$ENV_DIR"; exit 0; fi

start=$(date +%s)
rm -rf "$ENV_DIR"
trap 'rm -rf "$ENV_DIR"' ERR INT TERM
"$PYTHON" -m venv "$ENV_DIR"
# torch first with an explicit pin (an unpinned torch pulls a multi-GB CUDA build)
"$ENV_DIR/bin/pip" install -q "$TORCH" >&2
"$ENV_DIR/bin/pip" install -q "llmcompressor==$VERSION" >&2
"$ENV_DIR/bin/python" - >&2 <<'PY'
import importlib.metadata as m
for name in ("llmcompressor", "compressed-tensors", "transformers", "torch"):
    print(f"{name}=={m.version(name)}")
PY
"$ENV_DIR/bin/pip" freeze > "$ENV_DIR/requirements.lock"
echo "seconds=$(( $(date +%s) - start ))" > "$ENV_DIR/.complete"
trap - ERR INT TERM
echo "$ENV_DIR"
