#!/usr/bin/env bash
# Sets up, builds and generates a demo video: out/demo.mp4 and its contact sheet out/demo.png.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"
REEL_TARGETS=reel "$root/scripts/build.sh"   # the program only: the test binaries are not needed
mkdir -p "$root/out"
prompt=${1:-"a large red circle moving right on a striped navy background"}
"$root/build/cli/reel" generate "$prompt" --out "$root/out/demo.mp4" --sheet "$root/out/demo.png"
