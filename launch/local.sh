#!/usr/bin/env bash
# Train on N ranks on this machine:  launch/local.sh N [segdist arguments...]
#   launch/local.sh 2 --config configs/unet.cfg
# One rank per core, each bound to its core; OpenBLAS and segdist's workers then use the
# core(s) each rank owns (the `threads` key overrides). More ranks than cores oversubscribe.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
ranks="${1:?usage: launch/local.sh N [segdist arguments...]}"; shift
binary="${SEGDIST:-$here/.build/release/segdist}"
[ -x "$binary" ] || (cd "$here" && swift build -c release)
cores=$(nproc)
extra=()
if [ "$ranks" -gt "$cores" ]; then extra+=(--oversubscribe --bind-to none); else extra+=(--bind-to core --map-by core); fi
if [ "$(id -u)" = 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
exec mpirun -n "$ranks" "${extra[@]}" "$binary" train "$@"
