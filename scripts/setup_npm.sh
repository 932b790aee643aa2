#!/usr/bin/env bash
# Installs the npm packages the tests use (the official OpenAI Node SDK, pinned by
# tests/sdk/package-lock.json) into tests/sdk/node_modules. Needs node and npm (scripts/setup.sh
# installs them when missing) and the npm registry, or npm's cache.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root/tests/sdk"
npm ci --no-audit --no-fund --loglevel=error
echo "setup_npm: installed tests/sdk packages"
