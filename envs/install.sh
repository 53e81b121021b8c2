#!/usr/bin/env bash
# Create a published model's own environment, .envs/<model>/, from the pinned lock file envs/<model>.txt.
# Used by `make env-cpa`, `make env-cellflow`, `make env-scpram` (= `make env-model MODEL=<model>`); the wrapper
# vcclib/models/external/<model>.py runs that environment's python on vcclib/models/external/runners/run_<model>.py
# as a subprocess, exchanging h5ad / npz / JSON files (vcclib/models/external/ownenv.py).
#
#   envs/install.sh cpa        # creates .envs/cpa when missing; idempotent (a stamp records a finished install)
#
# envs/<model>.in   the top-level requirements, commented (what the lock is compiled from: envs/lock.sh <model>);
# envs/<model>.txt  the full lock, installed with --no-deps, so the environment is exactly the lock whatever the
#                   packages declare (cpa-tools says Python < 3.11, scpram says torch==1.13.1).
set -euo pipefail
MODEL="${1:?usage: envs/install.sh <model>}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOCK="$ROOT/envs/$MODEL.txt"
ENV_DIR="${VCC_ENVS_DIR:-$ROOT/.envs}/$MODEL"
PYTHON="${PYTHON:-python3.11}"
UV="${UV:-$ROOT/.venv/bin/uv}"
STAMP="$ENV_DIR/.installed"
export UV_CACHE_DIR="${UV_CACHE_DIR:-$ROOT/.cache/uv}"
# The CPU-only torch the CPA and scPRAM locks pin (torch==2.13.0+cpu) comes from a local wheel directory (WHEELS,
# default /opt/wheels) when the machine has one, otherwise from PyTorch's CPU index (TORCH_CPU_INDEX).
WHEELS="${WHEELS:-/opt/wheels}"
TORCH_CPU_INDEX="${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}"
LINKS=()
if [[ -d "$WHEELS" ]]; then
  LINKS=(--find-links "$WHEELS")
elif grep -q '^torch==[^ ]*+cpu' "$ROOT/envs/$MODEL.txt" 2>/dev/null; then
  LINKS=(--extra-index-url "$TORCH_CPU_INDEX" --index-strategy unsafe-best-match)
fi
if [[ ! -f "$LOCK" ]]; then
  echo "no lock file envs/$MODEL.txt; models with their own environment: $(cd "$ROOT/envs" && ls ./*.txt | sed 's|^\./||; s/\.txt$//' | tr '\n' ' ')" >&2
  exit 2
fi
test -x "$UV" || { echo "uv not found at $UV: run make env first" >&2; exit 2; }
if [[ -f "$STAMP" && "$STAMP" -nt "$LOCK" ]]; then
  echo "$MODEL environment ready: $ENV_DIR"
  exit 0
fi
start=$(date +%s)
rm -f "$STAMP"
test -x "$ENV_DIR/bin/python" || "$UV" venv --quiet --python "$PYTHON" "$ENV_DIR"
# --no-deps: the lock is complete; it also lets a package whose metadata says Python < 3.11 (cpa-tools) install.
"$UV" pip install --quiet --python "$ENV_DIR/bin/python" --no-deps --compile-bytecode "${LINKS[@]}" -r "$LOCK"
"$ENV_DIR/bin/python" "$ROOT/vcclib/models/external/runners/run_$MODEL.py" check
touch "$STAMP"
echo "$MODEL environment ready: $ENV_DIR ($(( $(date +%s) - start )) s, $(du -sh "$ENV_DIR" | cut -f1))"
