#!/usr/bin/env bash
# Runs the shop demo: validates the project, then serves it on http://127.0.0.1:8080.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${VENV_BIN:-$here/../../.venv/bin}
set -a; . "$here/.env.demo"; set +a

"$bin/interlink" check "$here"
echo "serving examples/shop on http://127.0.0.1:8080 (health: /_interlink/health); Ctrl-C stops"
exec "$bin/interlink" serve "$here"
