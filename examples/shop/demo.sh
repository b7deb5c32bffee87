#!/usr/bin/env bash
# The shop demo (`make demo`): a stand-in warehouse API, `interlink serve`, ten orders posted to
# the push-orders webhook, then the run log: retries, re-authentication, every run succeeded.
#
#   DEMO_PORT=8080        where `interlink serve` listens
#   WAREHOUSE_PORT=9000   where the stand-in warehouse listens (the connector follows it)
#   WAREHOUSE_SEED=3      which requests the warehouse fails (same seed, same story)
#   DEMO_ORDERS=10        how many orders to post
#   DEMO_EXIT=1           exit after printing instead of serving on until Ctrl-C
#   VENV_BIN=…            where `interlink` and `python` are (default: the repo's .venv/bin)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${VENV_BIN:-$here/../../.venv/bin}
demo_port=${DEMO_PORT:-8080}
wh_port=${WAREHOUSE_PORT:-9000}
orders=${DEMO_ORDERS:-10}
set -a; . "$here/.env"; set +a
# The connector's base_url is "{{ env.WAREHOUSE_URL }}": point it at the port used here.
export WAREHOUSE_URL="http://127.0.0.1:$wh_port"
server="http://127.0.0.1:$demo_port"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

pids=()
cleanup() {
    trap - EXIT INT TERM
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# GET a URL quietly: exit 0 when it answers 2xx.
get() {
    if command -v curl >/dev/null; then curl -fsS --max-time 2 "$1"
    else "$bin/python" -c 'import sys, urllib.request as u; sys.stdout.write(u.urlopen(sys.argv[1], timeout=2).read().decode())' "$1"
    fi
}
# POST JSON ($2) to a URL and print the answer.
post() {
    local answer
    if command -v curl >/dev/null; then
        answer=$(curl -sS --max-time 5 -X POST -H 'Content-Type: application/json' --data "$2" "$1")
    else answer=$("$bin/python" -c 'import sys, urllib.request as u; r = u.Request(sys.argv[1], sys.argv[2].encode(), {"Content-Type": "application/json"}); sys.stdout.write(u.urlopen(r, timeout=5).read().decode())' "$1" "$2")
    fi
    echo "$2 → $answer"
}
wait_for() {  # URL WHAT: poll until it answers 2xx (30 s at most)
    for _ in $(seq 150); do get "$1" >/dev/null 2>&1 && return 0; sleep 0.2; done
    echo "demo: $2 did not come up at $1" >&2; exit 1
}

say "interlink check"
"$bin/interlink" check "$here"

# A fresh store each time, so the run list below is only this demo's runs.
rm -rf "$here/.interlink"

say "starting the stand-in warehouse on $WAREHOUSE_URL and interlink serve on $server"
"$bin/python" "$here/warehouse.py" --port "$wh_port" --seed "${WAREHOUSE_SEED:-3}" &
pids+=($!)
"$bin/interlink" serve "$here" --port "$demo_port" &
pids+=($!)
wait_for "$WAREHOUSE_URL/stats" "the warehouse"
wait_for "$server/_interlink/health" "interlink serve"

say "posting $orders orders to $server/hooks/orders (each answers 202 with its run id)"
skus=(MUG-01 TEE-M CAP-02 SOCK-L BAG-03)
for i in $(seq "$orders"); do
    order="{\"id\": \"A-$((1000 + i))\", \"sku\": \"${skus[$((i % 5))]}\", \"qty\": $((i % 3 + 1))}"
    post "$server/hooks/orders" "$order"
done

say "waiting for the runs to end (the warehouse log above and below shows each call)"
runs_json() { "$bin/interlink" runs "$here" --json --limit 1000; }
for _ in $(seq 120); do
    if runs_json | "$bin/python" -c '
import json, sys
runs = json.load(sys.stdin)
ended = {"succeeded", "failed", "stopped", "partial"}
sys.exit(0 if len(runs) >= int(sys.argv[1]) and all(r["status"] in ended for r in runs) else 1)
' "$orders"; then break; fi
    sleep 1
done

say "interlink runs examples/shop"
"$bin/interlink" runs "$here" --limit 1000

# One run whose push step was retried and one that logged in again, picked from the run JSON.
read -r retried replayed reauthed < <(runs_json | "$bin/python" -c '
import json, sys, urllib.request
retried, reauthed, replays = [], [], set()
for run in reversed(json.load(sys.stdin)):
    url = sys.argv[1] + "/_interlink/runs/" + run["id"]
    with urllib.request.urlopen(url) as answer:
        attempts = [a for s in json.load(answer)["steps"] for a in s["attempts"]]
    decisions = {a["decision"] for a in attempts}
    # Prefer a retry whose last answer was the stored order replayed (the lost-answer case).
    replayed = any("Idempotent-Replayed" in ((a["response"] or {}).get("headers") or {})
                   for a in attempts)
    if "retry_step" in decisions:
        retried.insert(0, run["id"]) if replayed else retried.append(run["id"])
    if replayed:
        replays.add(run["id"])
    if "reauth" in decisions:
        reauthed.append(run["id"])
first = retried[0] if retried else "-"
print(first, "yes" if first in replays else "no", reauthed[0] if reauthed else "-")
' "$server")
if [[ $retried != - ]]; then
    say "a run that retried its push step: interlink runs examples/shop show $retried"
    "$bin/interlink" runs "$here" show "$retried"
    if [[ $replayed == yes ]]; then
        echo "  (the warehouse stored the order but its answer was lost; the retry sent the same"
        echo "   Idempotency-Key and got the stored order back: no duplicate)"
    fi
fi
if [[ $reauthed != - ]]; then
    say "a run that re-authenticated (200 \"Invalid session\" → response code 4): interlink runs examples/shop show $reauthed"
    "$bin/interlink" runs "$here" show "$reauthed"
fi

say "summary"
summary=$(runs_json | "$bin/python" -c '
import collections, json, sys
runs = json.load(sys.stdin)
counts = collections.Counter(r["status"] for r in runs)
print(f"{len(runs)} runs: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
')
echo "$summary"
echo "warehouse stats: $(get "$WAREHOUSE_URL/stats")"
ok=0
[[ $summary == "$orders runs: $orders succeeded" ]] || ok=1

if [[ ${DEMO_EXIT:-0} == 1 ]]; then
    exit "$ok"
fi
say "interlink keeps serving at $server until Ctrl-C"
echo "  try: curl -X POST -H 'Content-Type: application/json' -d '{\"id\": \"B-1\", \"sku\": \"MUG-01\", \"qty\": 1}' $server/hooks/orders"
echo "  then (in another shell, from the repo):"
echo "    set -a; . examples/shop/.env; set +a; export WAREHOUSE_URL=$WAREHOUSE_URL"
echo "    .venv/bin/interlink runs examples/shop"
wait "${pids[1]}"
