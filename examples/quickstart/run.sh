#!/usr/bin/env bash
# Starts the quickstart: the demo backend in the background, sluice in the
# foreground. The backend is stopped when sluice exits, however it exits
# (Ctrl-C, an error, SIGTERM), so a second `make run` finds its port free.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
sluice=${SLUICE:-bin/sluice}
backend=${BACKEND:-bin/quickstart-backend}

for bin in "$sluice" "$backend"; do
  [[ -x $bin ]] || { echo "run.sh: $bin missing; run 'make build' first" >&2; exit 1; }
done

"$backend" -listen 127.0.0.1:9001 &
backend_pid=$!
trap 'kill "$backend_pid" 2>/dev/null || true; wait "$backend_pid" 2>/dev/null || true' EXIT

cat <<MSG

  sluice quickstart: http://127.0.0.1:8080 -> backend http://127.0.0.1:9001
  policy: examples/quickstart/policy.yaml (edit it; sluice reloads it)

    curl -i http://127.0.0.1:8080/hello     # 200 with x-served-by: sluice
    curl -i http://127.0.0.1:8080/admin     # 403, denied by the policy
    curl -s http://127.0.0.1:4040/metrics | head

  Ctrl-C stops sluice and the backend.

MSG

# Not exec: the EXIT trap must run after sluice exits to stop the backend.
"$sluice" serve -c examples/quickstart/sluice.yaml
