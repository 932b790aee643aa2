#!/usr/bin/env bash
# Configures (Ninja, Release, ccache) and builds reel into build/ (or $REEL_BUILD_DIR).
# Extra arguments go to cmake, e.g. scripts/build.sh -DREEL_BUILD_BENCH=OFF.
# REEL_TARGETS="reel" builds only those targets (the demo builds the program, not the tests).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${REEL_BUILD_DIR:-$root/build}
jobs=${REEL_JOBS:-$(nproc)}
if [[ ! -f $build/build.ninja ]]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release "$@"
elif [[ $# -gt 0 ]]; then
  cmake "$build" "$@"
fi
targets=()
for t in ${REEL_TARGETS:-}; do targets+=(--target "$t"); done
cmake --build "$build" -j "$jobs" "${targets[@]}"
