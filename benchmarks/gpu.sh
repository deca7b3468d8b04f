#!/usr/bin/env bash
# One prepared run for a machine with a GPU: 8 minutes at most in all, no network.
#
#   benchmarks/gpu.sh            # the paper case at 0.125 and 0.0625 nm with each preconditioner,
#                                # a vmapped batch of 8 permittivities, a reverse-mode gradient
#   QUICK=1 benchmarks/gpu.sh    # a tiny network (checks the script, e.g. on a CPU)
#
# Writes one JSON: $OUT/gpu.json when $OUT is set, else benchmarks/results/gpu.json.
# If jax has no GPU backend, installs the project with CUDA wheels from a local wheelhouse
# ($WHEELHOUSE, default ./wheels) or pip's cache only (--no-index: never the network).
set -euo pipefail
cd "$(dirname "$0")/.."
export XLA_PYTHON_CLIENT_PREALLOCATE=false  # measure what the run needs, not a 75% pool
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY="${PYTHON:-python}"
START=$(date +%s)
LIMIT=480
OUT_DIR="${OUT:-benchmarks/results}"
mkdir -p "$OUT_DIR"

if [ -z "${QUICK:-}" ] && ! "$PY" -c "import jax, sys; sys.exit(jax.default_backend() != 'gpu')" 2>/dev/null; then
  echo "jax has no GPU backend: installing CUDA wheels offline" >&2
  timeout 120 "$PY" -m pip install --no-index --find-links "${WHEELHOUSE:-wheels}" -q -e ".[cuda]" \
    || echo "offline CUDA install failed; running on $("$PY" -c 'import jax; print(jax.default_backend())')" >&2
fi
"$PY" -c "import jax; print('backend', jax.default_backend(), jax.devices())"

LEFT=$(( LIMIT - ($(date +%s) - START) - 20 ))
ARGS=(--output "$OUT_DIR/gpu.json" --budget "$LEFT" --parts cv vmap grad
      --grids 0.125 0.0625 --preconditioner cyclic_reduction block_thomas superlu --batch 8 --grad-grid 0.25)
if [ -n "${QUICK:-}" ]; then ARGS+=(--quick); fi
timeout "$(( LEFT + 15 ))" "$PY" benchmarks/device_suite.py "${ARGS[@]}"
