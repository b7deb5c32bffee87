#!/usr/bin/env bash
# The shop demo (`make demo`): a stand-in warehouse API, `interlink serve`, ten orders posted to
# the push-orders webhook, then the run log: retries, re-authentication, every run succeeded.
# Then the order-intake service (POST /orders): one request per response rule, and an order
# queued while the warehouse is down that the request processor completes once it is back.
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
scratch=$(mktemp -d)
cleanup() {
    trap - EXIT INT TERM
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$scratch"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# GET a URL quietly, with an optional header ($2, "Name: value"): exit 0 when it answers 2xx.
get() {
    if command -v curl >/dev/null; then curl -fsS --max-time 2 ${2:+-H "$2"} "$1"
    else "$bin/python" -c 'import sys, urllib.request as u; r = u.Request(sys.argv[1], headers=dict([sys.argv[2].split(": ", 1)]) if sys.argv[2] else {}); sys.stdout.write(u.urlopen(r, timeout=2).read().decode())' "$1" "${2:-}"
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
start_warehouse() {  # pids[0] is always the warehouse, pids[1] interlink serve
    "$bin/python" "$here/warehouse.py" --port "$wh_port" --seed "${WAREHOUSE_SEED:-3}" &
    pids[0]=$!
}
start_warehouse
# Its log (a line per request) goes to a file, so the demo's own output stays readable.
mkdir -p "$here/.interlink"
"$bin/interlink" serve "$here" --port "$demo_port" 2>>"$here/.interlink/serve.log" &
pids[1]=$!
echo "  (interlink serve logs to examples/shop/.interlink/serve.log)"
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
import json, os, sys, urllib.request
retried, reauthed, replays = [], [], set()
for run in reversed(json.load(sys.stdin)):
    url = sys.argv[1] + "/_interlink/runs/" + run["id"]  # an engine endpoint: the admin token
    token = {"Authorization": "Bearer " + os.environ["INTERLINK_ADMIN_TOKEN"]}
    with urllib.request.urlopen(urllib.request.Request(url, headers=token)) as answer:
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

# --- the order-intake service: one request per response rule -------------------------------
key=$PARTNER_KEY
# call EXPECTED RULE [HEADER…] -- BODY: POST BODY to $server/orders with the headers, print the
# request, the answer (status, the headers worth seeing, body) and which rule answered it. The
# body is left in $scratch/body. A status other than EXPECTED makes the demo exit 1.
call() {
    local expected=$1 rule=$2 status; shift 2
    local headers=() body
    while [[ $1 != -- ]]; do headers+=("$1"); shift; done
    body=$2
    printf '\n$ POST /orders'; printf '  %s' "${headers[@]}"; printf '  %s\n' "$body"
    if command -v curl >/dev/null; then
        local args=(); for h in "${headers[@]}"; do args+=(-H "$h"); done
        status=$(curl -sS --max-time 30 -o "$scratch/body" -D "$scratch/headers" -w '%{http_code}' \
                 -X POST -H 'Content-Type: application/json' "${args[@]}" --data "$body" "$server/orders")
    else
        status=$("$bin/python" - "$server/orders" "$body" "$scratch" "${headers[@]}" <<'PY'
import sys, urllib.error, urllib.request as u
url, body, out, *headers = sys.argv[1:]
request = u.Request(url, body.encode(), {"Content-Type": "application/json"}, method="POST")
for header in headers:
    name, _, value = header.partition(":")
    request.add_header(name.strip(), value.strip())
try:
    answer = u.urlopen(request, timeout=30)
except urllib.error.HTTPError as error:
    answer = error
open(out + "/headers", "w").write("".join(f"{k}: {v}\n" for k, v in answer.headers.items()))
open(out + "/body", "wb").write(answer.read())
print(answer.status)
PY
)
    fi
    # Content-Type and the headers the rules set; Date, Server and Content-Length are noise here.
    printf '  → %s  %s\n' "$status" "$(grep -iE '^(content-type|x-order-id):' "$scratch/headers" \
        | tr -d '\r' | awk '{ printf "%s%s", (NR > 1 ? "  " : ""), $0 }')"
    sed 's/^/    /' "$scratch/body"; [[ -z $(tail -c1 "$scratch/body") ]] || echo
    echo "  ↳ $rule"
    [[ $status == "$expected" ]] || { echo "  !! expected $expected"; ok=1; }
}
# The partner polls its own queued request with its own key (no admin token needed).
queue_item() { get "$server/_interlink/queue/$1" "X-API-Key: $key"; }
# queue_field ID EXPR: a Python expression over the queue item `q` (the JSON of GET …/queue/ID)
queue_field() {
    queue_item "$1" | "$bin/python" -c 'import json, sys; q = json.load(sys.stdin); print(eval(sys.argv[1]))' "$2"
}

say "services: order-intake answers POST $server/orders (partners send X-API-Key; see services/order-intake.yaml)"
call 200 "on: default — the flow push-orders ran; the body is its result (to_erp.py's ERP shape)" \
    "X-API-Key: $key" -- '{"order": {"id": "P-2001", "sku": "MUG-01", "qty": 2}}'
call 202 "when: page.order.status == 'HELD' — the XML acknowledgement (templates/held.xml) and X-Order-Id" \
    "X-API-Key: $key" -- '{"order": {"id": "P-2002", "sku": "TEE-M", "qty": 1, "status": "HELD"}}'
call 400 "on: mapping_error — the body is not JSON, so the flow never ran" \
    "X-API-Key: $key" -- '{"order": {"id": "P-2003",'
call 401 "on: security_error — no X-API-Key (the body is never read)" \
    -- '{"order": {"id": "P-2003", "sku": "CAP-02", "qty": 1}}'
call 401 "on: security_error — a wrong X-API-Key" \
    "X-API-Key: not-the-key" -- '{"order": {"id": "P-2003", "sku": "CAP-02", "qty": 1}}'

say "services: the warehouse goes down; an order is queued (queue_when) and completed later"
kill "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true
echo "(warehouse stopped)"
call 202 "queue_when: error is not none — push-orders failed (connection refused), so the request is queued durably" \
    "X-API-Key: $key" -- '{"order": {"id": "P-2004", "sku": "SOCK-L", "qty": 3}}'
queued=$("$bin/python" -c 'import json, sys; print(json.load(open(sys.argv[1])).get("queued", "-"))' \
         "$scratch/body" 2>/dev/null || echo -)
queue_status=-
if [[ $queued == q_* ]]; then
    # The request processor retries it after 2 s, 4 s, 8 s… (request_processor in the service).
    # Wait for its first re-run to fail (the warehouse is still down), so it shows last_error.
    for _ in $(seq 100); do
        [[ $(queue_field "$queued" 'q["status"] == "ready" and q["last_error"] is not None') == True ]] \
            && break
        sleep 0.2
    done
    echo; echo "\$ GET /_interlink/queue/$queued   (X-API-Key: the partner polls its own request; the warehouse is down)"
    echo "    $(queue_field "$queued" '" ".join(f"{k}={q[k]}" for k in ("status", "attempts", "last_error"))')"
    echo "(warehouse started again)"
    start_warehouse
    wait_for "$WAREHOUSE_URL/stats" "the warehouse"
    for _ in $(seq 100); do
        queue_status=$(queue_field "$queued" 'q["status"]')
        [[ $queue_status == ready || $queue_status == leased ]] || break
        sleep 0.2
    done
    echo; echo "\$ GET /_interlink/queue/$queued   (the request processor ran it again)"
    queue_item "$queued" | "$bin/python" -c '
import json, sys
q = json.load(sys.stdin)
print("   ", json.dumps({k: q[k] for k in ("id", "status", "attempts", "last_error", "earlier_error")}))
print("    result:", json.dumps(q["result"]))'
    echo "  ↳ the re-run succeeded: the restarted warehouse (fresh, in memory) refused the old session,"
    echo "    Interlink logged in again and the order was created;"
    echo "    the kept result (keep_results) is what the partner would have got as the 200 body"
fi
[[ $queue_status == done ]] || { echo "demo: the queued order did not end done ($queue_status)"; ok=1; }
echo
echo "(on: service_error → 502 is never reached here: queue_when \"error is not none\" comes first"
echo " and catches every failed activity; see examples/shop/README.md)"

if [[ ${DEMO_EXIT:-0} == 1 ]]; then
    exit "$ok"
fi
say "interlink keeps serving at $server until Ctrl-C"
echo "  the run log: open $server/_interlink/ui/ and sign in with the admin token"
echo "    (INTERLINK_ADMIN_TOKEN in examples/shop/.env); docs/ui.md shows what is there"
echo "  try: curl -X POST -H 'Content-Type: application/json' -d '{\"id\": \"B-1\", \"sku\": \"MUG-01\", \"qty\": 1}' $server/hooks/orders"
echo "       curl -i -X POST -H 'X-API-Key: $key' -d '{\"order\": {\"id\": \"B-2\", \"sku\": \"MUG-01\", \"qty\": 1}}' $server/orders"
echo "  then (in another shell, from the repo):"
echo "    set -a; . examples/shop/.env; set +a; export WAREHOUSE_URL=$WAREHOUSE_URL"
echo "    .venv/bin/interlink runs examples/shop"
wait "${pids[1]}"
