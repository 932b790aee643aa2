#!/usr/bin/env bash
# Sets up, builds and runs the whole test suite (ctest). Tests that need ../shared (golden
# vectors) skip where it is absent.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"
"$root/scripts/setup_npm.sh"
"$root/scripts/build.sh"
cd "${REEL_BUILD_DIR:-$root/build}"
ctest --output-on-failure -j "${REEL_JOBS:-$(nproc)}" "$@"
