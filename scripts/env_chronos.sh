#!/usr/bin/env bash
# Create the separate environment that runs Chronos (crispr-chronos, which needs tensorflow) for the
# "Guide efficacy and off-targeting" chapter. Kept apart from .venv so tensorflow never enters the project's
# environment; vcclib.analyses.guides.chronos_runner runs it as a subprocess and exchanges files with it.
#
#   scripts/env_chronos.sh            # creates .cache/chronos-env (or $VCC_CHRONOS_ENV) when missing
#
# Idempotent: a stamp file records a finished install. Exit status non-zero when the install fails.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ENV_DIR="${VCC_CHRONOS_ENV:-$ROOT/.cache/chronos-env}"
PYTHON="${PYTHON:-python3.11}"
STAMP="$ENV_DIR/.installed"
export UV_CACHE_DIR="${UV_CACHE_DIR:-$ROOT/.cache/uv}"
export PIP_CACHE_DIR="${PIP_CACHE_DIR:-$ROOT/.cache/pip}"
if [[ -f "$STAMP" ]]; then
  echo "chronos environment ready: $ENV_DIR"
  exit 0
fi
test -x "$ENV_DIR/bin/python" || "$PYTHON" -m venv "$ENV_DIR"
"$ENV_DIR/bin/python" -m pip install -q --disable-pip-version-check uv
# tensorflow-cpu keeps the GPU build (and its CUDA wheels) out; chronos imports plain `tensorflow`, which
# tensorflow-cpu provides.
"$ENV_DIR/bin/uv" pip install --python "$ENV_DIR/bin/python" "tensorflow-cpu>=2.12,<2.17" "crispr-chronos==2.3.11" "pandas<3" patsy h5py
"$ENV_DIR/bin/python" -c "import chronos, tensorflow as tf; print('chronos', getattr(chronos, '__version__', '?'), 'tensorflow', tf.__version__)"
touch "$STAMP"
echo "chronos environment ready: $ENV_DIR"
