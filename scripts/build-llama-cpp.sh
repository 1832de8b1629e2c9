#!/usr/bin/env bash
# Build the llama.cpp tools the gate uses (GGUF quantization, importance matrix,
# perplexity, serving) from the llama.cpp tree vendored in a pinned PyPI
# `llama-cpp-python` sdist, into a versioned cache directory. One command,
# idempotent: a second call finds the finished build and exits at once.
#
#   scripts/build-llama-cpp.sh          # build (or find) and print the directory
#
# Result: $QUANT_GATE_LLAMA_CPP_DIR (default
# ${XDG_CACHE_HOME:-~/.cache}/quant-gate/llama.cpp/<version>) holding
#   bin/llama-quantize bin/llama-imatrix bin/llama-perplexity bin/llama-server bin/llama-bench
#   convert/convert_hf_to_gguf.py convert/gguf-py/   (same tree as the binaries)
#   manifest.json                                     (version, sha256, timings)
# The gate reads the same variable (gate/quantize/llamacpp.py).
# An interrupted build resumes from $DEST.build on the next call. The build never touches $DEST
# itself: the finished tree is swapped in with one atomic rename (renameat2 RENAME_EXCHANGE), so
# other users keep running the current cache while it builds. A cache that lacks a target (e.g. one
# built before llama-bench was added) counts as incomplete and is rebuilt the same way.
# Measured, clean run end to end (2026-12-04, 2-core x86-64, 24 GB, five targets, nice -n 15 then 10,
# six other engineers' jobs on the same cores, load average 13-22): 77.6 min wall (4,653 s: fetch 6 s,
# build 4,647 s) for 644 CPU-seconds (user 601 + sys 43), 0.68 GB peak RSS; result 58 MB. On idle
# cores the wall time approaches the CPU time / 2 cores, plus linking (~21 min measured earlier with
# four targets). A second call: 0.02 s.
# Needs cmake, ninja and a C++ compiler:
#   apt-get install -y cmake build-essential ninja-build
set -euo pipefail

VERSION="0.3.36"
SHA256="832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
TARGETS=(llama-quantize llama-imatrix llama-perplexity llama-server llama-bench)

CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/quant-gate/llama.cpp"
DEST="${QUANT_GATE_LLAMA_CPP_DIR:-$CACHE_ROOT/$VERSION}"
JOBS="${QUANT_GATE_BUILD_JOBS:-$(nproc)}"
PIP="${PIP:-}"
if [ -z "$PIP" ]; then
  if [ -x "$(dirname "$0")/../.venv/bin/pip" ]; then PIP="$(dirname "$0")/../.venv/bin/pip"; else PIP="python3 -m pip"; fi
fi

cpu_flags() { grep -m1 '^flags' /proc/cpuinfo | sha256sum | cut -c1-16; }

# Finished, and for this CPU: the binaries are -march=native, so a cache built on another CPU (or
# before AMX was compiled out, below) is rebuilt rather than crash on an instruction this one lacks.
complete() {
  [ -f "$DEST/manifest.json" ] || return 1
  grep -q "\"cpu_flags_sha256_16\": \"$(cpu_flags)\"" "$DEST/manifest.json" || return 1
  grep -q '"amx": ' "$DEST/manifest.json" || return 1
  for t in "${TARGETS[@]}"; do [ -x "$DEST/bin/$t" ] || return 1; done
  [ -f "$DEST/convert/convert_hf_to_gguf.py" ] && [ -d "$DEST/convert/gguf-py/gguf" ] && [ -d "$DEST/convert/conversion" ]
}

# Put the finished tree $1 at $2 in one step. With an existing $2 the two are exchanged
# atomically (renameat2 RENAME_EXCHANGE: a reader sees the old tree or the new one, never none);
# where the filesystem refuses that, the old tree is renamed aside first (a microsecond gap).
swap_in() {
  local new="$1" dest="$2"
  if [ ! -e "$dest" ]; then mv -T "$new" "$dest"; return; fi
  if python3 - "$new" "$dest" <<'PY'
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.renameat2(-100, os.fsencode(sys.argv[1]), -100, os.fsencode(sys.argv[2]), 2) != 0:
    sys.exit(1)
PY
  then
    rm -rf "$new"      # now the old tree
  else
    mv -T "$dest" "$dest.old.$$" && mv -T "$new" "$dest" && rm -rf "$dest.old.$$"
  fi
}

if complete; then echo "$DEST"; exit 0; fi
if [ -d "$DEST" ]; then
  echo "build-llama-cpp: $DEST is incomplete or built for another CPU; rebuilding beside it" >&2
fi

for tool in cmake ninja c++; do
  command -v "$tool" >/dev/null || {
    echo "build-llama-cpp: '$tool' not found. Hint: apt-get install -y cmake build-essential ninja-build" >&2
    exit 2
  }
done

mkdir -p "$(dirname "$DEST")"
exec 9>"$DEST.lock"
flock 9            # one build at a time; a waiter finds the finished one below
if complete; then echo "$DEST"; exit 0; fi

# The work directory is fixed, so an interrupted build resumes where it stopped (ninja rebuilds
# only what is missing); it is removed once the result is in place.
WORK="$DEST.build"
mkdir -p "$WORK"
start=$(date +%s)

SDIST="$WORK/dl/llama_cpp_python-$VERSION.tar.gz"
if [ ! -f "$SDIST" ] || [ "$(sha256sum "$SDIST" | cut -d' ' -f1)" != "$SHA256" ]; then
  rm -rf "$WORK/dl"
  echo "build-llama-cpp: fetching llama-cpp-python==$VERSION (sdist)" >&2
  $PIP download -q --no-binary :all: --no-deps "llama-cpp-python==$VERSION" -d "$WORK/dl" >&2
fi
got="$(sha256sum "$SDIST" | cut -d' ' -f1)"
if [ "$got" != "$SHA256" ]; then
  echo "build-llama-cpp: $SDIST: sha256 $got, expected $SHA256. Hint: the pinned sdist changed upstream; do not build it" >&2
  rm -rf "$WORK/dl"
  exit 3
fi
SRC="$WORK/llama_cpp_python-$VERSION/vendor/llama.cpp"
[ -f "$SRC/CMakeLists.txt" ] || tar -xzf "$SDIST" -C "$WORK" "llama_cpp_python-$VERSION/vendor/llama.cpp"
fetched=$(date +%s)

# AMX off: -march=native enables ggml's AMX backend on CPUs that report amx_int8, and in this pinned
# tree that backend crashes. Measured 2026-12-06 on a 2-core Sapphire Rapids KVM guest: llama-bench,
# llama-perplexity and llama-server all die with SIGSEGV at the ldtilecfg of
# ggml_backend_amx_mul_mat on their first token, although the CPU runs AMX (a tile config,
# tilezero and tilerelease from a probe succeed, in the main thread and in a worker). Upstream:
# ggml-org/llama.cpp#20824 (open, machine-dependent), and the fix proposed in #26954 (the tile config
# on the stack is optimized away; permission per worker thread). The AVX-512/VNNI kernels serve.
NOAMX=""
amx="not x86-64"
if [ "$(uname -m)" = x86_64 ]; then
  NOAMX="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
  amx="off (ggml's AMX backend crashes in this tree: ggml-org/llama.cpp#20824)"
fi

echo "build-llama-cpp: configuring (jobs=$JOBS)" >&2
# An explicit -mno-* wins over -march=native whatever their order (checked with GCC 12:
# `gcc -mno-amx-int8 ... -march=native -dM -E` defines no __AMX_*__).
cmake -S "$SRC" -B "$WORK/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DBUILD_SHARED_LIBS=OFF \
  -DCMAKE_C_FLAGS="$NOAMX" -DCMAKE_CXX_FLAGS="$NOAMX" \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON >&2
echo "build-llama-cpp: building ${TARGETS[*]}" >&2
cmake --build "$WORK/build" --parallel "$JOBS" --target "${TARGETS[@]}" >&2
built=$(date +%s)

OUT="$WORK/out"
rm -rf "$OUT"
mkdir -p "$OUT/bin" "$OUT/convert"
for t in "${TARGETS[@]}"; do install -m 0755 "$WORK/build/bin/$t" "$OUT/bin/$t"; done
cp "$SRC/convert_hf_to_gguf.py" "$OUT/convert/"
cp -r "$SRC/gguf-py" "$OUT/convert/gguf-py"
cp -r "$SRC/conversion" "$OUT/convert/conversion"   # convert_hf_to_gguf.py's model classes
cp "$SRC/LICENSE" "$OUT/LICENSE"
commit="$(cat "$WORK/llama_cpp_python-$VERSION/.git/modules/vendor/llama.cpp/HEAD" 2>/dev/null || echo unknown)"
cpu="$(cpu_flags)"
cat > "$OUT/manifest.json" <<JSON
{
  "llama_cpp_python": "$VERSION",
  "sdist_sha256": "$SHA256",
  "llama_cpp_commit": "$commit",
  "targets": [$(printf '"%s", ' "${TARGETS[@]}" | sed 's/, $//')],
  "cmake": "-G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DBUILD_SHARED_LIBS=OFF${NOAMX:+ CFLAGS=$NOAMX}",
  "cpu_flags_sha256_16": "$cpu",
  "amx": "$amx",
  "jobs": $JOBS,
  "fetch_seconds": $((fetched - start)),
  "build_seconds": $((built - fetched)),
  "total_seconds": $(($(date +%s) - start)),
  "built_at": "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
}
JSON
swap_in "$OUT" "$DEST"     # appears whole or not at all; the old tree ends up at $OUT
rm -rf "$WORK"
echo "build-llama-cpp: done in $((built - start)) s" >&2
echo "$DEST"
