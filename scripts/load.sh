#!/usr/bin/env bash
# Load test: seeds a fresh log with RECORDS records, starts sumd serve on
# 127.0.0.1, and drives it with CLIENTS concurrent go-command-like clients
# (a lookup, then a hash tile) for DURATION. Everything stays on loopback
# and stops by itself. Used by `make bench`.
set -euo pipefail
cd "$(dirname "$0")/.."
RECORDS=${RECORDS:-100000} CLIENTS=${CLIENTS:-64} DURATION=${DURATION:-10s} PORT=${PORT:-18181}
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/sumd" ./cmd/sumd

# go.sum lines for example.com/load/m<i/1000>@v1.0.<i%1000>, hashes made up
# but well-formed (sha256 of the line's name, base64).
python3 - "$RECORDS" > "$work/load.sum" <<'PY'
import base64, hashlib, sys
for i in range(int(sys.argv[1])):
    p, v = f"example.com/load/m{i//1000}", f"v1.0.{i%1000}"
    h = lambda s: "h1:" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()
    print(f"{p} {v} {h(p+v)}\n{p} {v}/go.mod {h(p+v+'/go.mod')}")
PY
"$work/sumd" keygen -name load.example -key-dir "$work/keys" >/dev/null 2>&1
"$work/sumd" add -create -db "$work/sumd.db" -key "$work/keys/load.example.key" -gosum "$work/load.sum" -log-level warn
"$work/sumd" serve -db "$work/sumd.db" -key "$work/keys/load.example.key" -listen "127.0.0.1:$PORT" -log-level warn >/dev/null &
pid=$!
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
go run ./scripts/load -url "http://127.0.0.1:$PORT" -records "$RECORDS" -clients "$CLIENTS" -duration "$DURATION"
