#!/usr/bin/env bash
# WebSocket push latency with 1,000 subscribers, and WebSocket streaming ingest beside HTTP
# bulk ingest, in one run on 127.0.0.1. Usage: benches/ws_bench.sh   (from the repo root)
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/lib.sh
build --bin phoenix --example ws_bench --example loadgen
ulimit -n 65536 2>/dev/null || true
start_phoenix 18380
machine "; push interval 50 ms"
for r in 1 2 3; do
  ./target/release/examples/ws_bench --addr 127.0.0.1:18380 push --subscribers 1000 --samples 40 --rate 2000 --seconds 5
done
for r in 1 2 3; do
  ./target/release/examples/ws_bench --addr 127.0.0.1:18380 ingest --connections 8 --window 8 --seconds 8
  ./target/release/examples/loadgen --addr 127.0.0.1:18380 --mode bulk --connections 16 --duration 8 --label http-bulk-same-run
done
