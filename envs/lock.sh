#!/usr/bin/env bash
# Recompile envs/<model>.txt (the full pinned lock) from envs/<model>.in.
#   "# python: X.Y"      resolve for that Python (default 3.11): cpa-tools declares Python < 3.11, so its lock is
#                        resolved for 3.10 and installed (--no-deps) on 3.11;
#   "# no-deps: PKG==V"  appended to the lock as is: a package whose declared pins cannot be met (scpram);
#   "# cpu-torch: V"     the resolved torch pin is replaced by the CPU-only build torch==V (a local wheel, or
#                        PyTorch's CPU index), and what only the CUDA build and torchaudio pull in (nvidia-*-cu*,
#                        triton, cmake, lit, torchaudio) is dropped: CPA declares torch <= 2.0.1, whose PyPI build
#                        brings ~5 GB of CUDA libraries; it trains with the CPU torch the project uses.
# A local wheel directory (WHEELS, default /opt/wheels: the CPU-only torch) is used when the machine has one.
set -euo pipefail
MODEL="${1:?usage: envs/lock.sh <model>}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
IN="$ROOT/envs/$MODEL.in"
OUT="$ROOT/envs/$MODEL.txt"
PYVER="$(sed -n 's/^# python: *\([0-9.]*\).*/\1/p' "$IN" | head -1)"
UV="${UV:-$ROOT/.venv/bin/uv}"
WHEELS="${WHEELS:-/opt/wheels}"
LINKS=()
[[ -d "$WHEELS" ]] && LINKS=(--find-links "$WHEELS")
"$UV" pip compile "$IN" --python-version "${PYVER:-3.11}" --python-platform x86_64-manylinux_2_28 "${LINKS[@]}" \
  --no-header --annotation-style line --quiet -o "$OUT"
sed -n 's/^# no-deps: *//p' "$IN" | sed 's/$/  # installed without its declared dependencies (envs\/'"$MODEL"'.in)/' >> "$OUT"
CPU_TORCH="$(sed -n 's/^# cpu-torch: *\([^ ]*\).*/\1/p' "$IN" | head -1)"
if [[ -n "$CPU_TORCH" ]]; then
  sed -i -E '/^(nvidia-[a-z0-9-]+-cu[0-9]+|triton|cmake|lit|torchaudio)==/d' "$OUT"
  sed -i -E "s/^torch==[^ ]+( +)#/torch==$CPU_TORCH\1#/; s/^torch==[^ ]+\$/torch==$CPU_TORCH/" "$OUT"
fi
