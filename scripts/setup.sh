#!/usr/bin/env bash
# Installs the Debian packages reel builds and runs with. Idempotent: packages already
# installed are skipped, and nothing is done when all are there. Run as root (or with sudo).
#
#   scripts/setup.sh            # install what is missing
#   scripts/setup.sh --check    # only report what is missing; exit 1 if anything is
set -euo pipefail

packages=(
  # toolchain
  build-essential cmake ninja-build ccache pkg-config git
  # models: LibTorch (CPU) and a fast BLAS. Debian's LibTorch links the reference BLAS by
  # default (about 5 GFLOP/s for a 512x512 sgemm); OpenBLAS with OpenMP makes it 20x faster.
  libtorch-dev libopenblas0-openmp
  # models: the umT5 tokenizer (sentencepiece; its trainer is used by the tests)
  libsentencepiece-dev
  # codecs and the cache
  libzstd-dev librocksdb-dev libhnswlib-dev
  # video: FFmpeg's libraries for MP4, OpenCV for PNG; ffprobe for tests
  libavcodec-dev libavformat-dev libavutil-dev libswscale-dev ffmpeg
  libopencv-core-dev libopencv-imgproc-dev libopencv-imgcodecs-dev
  # actors and cluster
  libcaf-dev libboost-dev libboost-system-dev prometheus-cpp-dev
  # configuration, CLI, logging
  libyaml-cpp-dev nlohmann-json3-dev libcli11-dev libspdlog-dev
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev
)
# The SDK test (tests/sdk) runs the official OpenAI Node SDK: Debian's node and npm where the
# machine has none of its own (a node from elsewhere, with its npm, is used as it is).
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  packages+=(nodejs npm)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "setup: all ${#packages[@]} packages are installed"
  exit 0
fi
if [[ "${1:-}" == "--check" ]]; then
  echo "setup: missing: ${missing[*]}"
  exit 1
fi

sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "setup: run as root or install sudo" >&2; exit 2; }
  sudo_cmd=(sudo)
fi
echo "setup: installing ${#missing[@]} packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: done"
