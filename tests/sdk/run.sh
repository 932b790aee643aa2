#!/usr/bin/env bash
# The OpenAI Node SDK against a fresh `reel serve`: run.sh PATH/TO/reel
# Installs the pinned SDK (npm ci, into tests/sdk/node_modules), starts the server on a free
# port with an empty data folder, runs sdk_test.mjs, and stops the server however it ends.
# Exit code: sdk_test.mjs's; 2 for bad usage, 77 (CTest's SKIP_RETURN_CODE) when node, npm or
# ffprobe is missing, 1 when npm ci fails or the server does not start.
set -euo pipefail

reel=${1:-}
if [[ -z "$reel" || ! -x "$reel" ]]; then
  echo "usage: $0 PATH/TO/reel (an executable reel binary)" >&2
  exit 2
fi
reel=$(cd "$(dirname "$reel")" && pwd)/$(basename "$reel")
for tool in node npm ffprobe; do
  command -v "$tool" >/dev/null || { echo "run.sh: SKIPPED: $tool is not installed" >&2; exit 77; }
done
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$here"

# scripts/setup_npm.sh installs the packages; a run without them installs them here.
[[ -d node_modules/openai ]] || npm ci --no-audit --no-fund --loglevel=error

data=$(mktemp -d)
log=$(mktemp)
err=$(mktemp)
server_pid=
cleanup() {
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 600); do  # up to 60 s to stop, then SIGKILL
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$data" "$log" "$err"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

OMP_WAIT_POLICY=passive "$reel" serve --listen 127.0.0.1:0 --data "$data" >"$log" 2>"$err" &
server_pid=$!

# Its first line names the URL: "reel: serving on http://127.0.0.1:PORT" (details may follow).
url=
for _ in $(seq 1 1800); do  # up to 3 minutes
  [[ $(wc -l <"$log") -ge 1 ]] && url=$(sed -n '1s/^reel: serving on \(http:[^ ]*\).*$/\1/p' "$log")
  [[ -n "$url" ]] && break
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "run.sh: reel serve exited before serving:" >&2
    cat "$log" "$err" >&2
    exit 1
  fi
  sleep 0.1
done
if [[ -z "$url" ]]; then
  echo "run.sh: reel serve printed no URL within 3 minutes:" >&2
  cat "$log" "$err" >&2
  exit 1
fi
echo "run.sh: reel serve at $url"

status=0
REEL_SERVER_URL=$url node sdk_test.mjs || status=$?
if [[ $status -ne 0 ]]; then
  echo "run.sh: reel serve's output:" >&2
  cat "$log" "$err" >&2
fi
exit $status
