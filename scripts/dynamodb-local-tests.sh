#!/usr/bin/env bash
# Runs the DynamoDB-facing suites (store, api-keys, organizations) against AWS DynamoDB Local instead of dynoxide.
# DynamoDB Local has no bind-address flag, so it runs in a private network namespace together with
# the test binaries: nothing outside the namespace can reach it.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$COVE_ROOT"

jar_dir="$(ensure_dynamodb_local)"
# The test binaries, built (not run) by cargo; their paths come from cargo's JSON messages.
# Same package selection as scripts/test.sh, so nothing is rebuilt with other features.
mapfile -t bins < <(cargo test --release --workspace --exclude cove-toolbox --no-run --message-format=json 2>/dev/null \
    | "${COVE_PYTHON:-python3}" -c 'import json,sys
for l in sys.stdin:
    m=json.loads(l)
    if m.get("reason")!="compiler-artifact" or not m.get("executable") or not m["profile"]["test"]:
        continue
    pkg=m["package_id"]
    if ("/crates/store#" in pkg or "/functions/api-keys#" in pkg or "/functions/organizations#" in pkg) and m["target"]["kind"]!=["bin"]:
        print(m["executable"])')
[ ${#bins[@]} -gt 0 ] || { echo "no test binaries found" >&2; exit 1; }

unshare --net bash -s -- "$jar_dir" "${bins[@]}" <<'INNER'
set -euo pipefail
jar_dir="$1"; shift
ip link set lo up
port=8000
(cd "$jar_dir" && exec java -Djava.library.path=./DynamoDBLocal_lib -jar DynamoDBLocal.jar \
    -sharedDb -inMemory -disableTelemetry -port "$port" >/dev/null 2>&1) &
java_pid=$!
trap 'kill $java_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
    curl -s -o /dev/null "http://127.0.0.1:$port" && break
    sleep 0.25
done
export COVE_TEST_DYNAMODB_ENDPOINT="http://127.0.0.1:$port"
for bin in "$@"; do
    echo "--- $(basename "$bin") against DynamoDB Local" >&2
    "$bin" --test-threads=4
done
INNER
