#!/usr/bin/env bash
# Durable ingestion throughput and ack latency, with baselines measured in the same run.
# Usage: benches/ingest_load.sh [seconds-per-run] [repeats]     (from the repository root)
# Starts Phoenix (release, fresh temp data dir) and the baseline servers on 127.0.0.1, runs
# examples/loadgen against each, prints one line per run. Everything stays on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-8}
reps=${2:-3}
source benches/lib.sh
build --bin phoenix --example loadgen --example baseline_server
lg() { ./target/release/examples/loadgen --duration "$secs" "$@"; }

start_phoenix 18180
start baseline-signed ./target/release/examples/baseline_server --mode signed --listen 127.0.0.1:18190
start baseline-noop ./target/release/examples/baseline_server --mode noop --listen 127.0.0.1:18191

machine
for r in $(seq "$reps"); do
  for target in "phoenix 18180" "baseline-signed 18190" "baseline-noop 18191"; do
    set -- $target
    lg --label "$1" --addr 127.0.0.1:$2 --mode single --connections 128
    lg --label "$1" --addr 127.0.0.1:$2 --mode single --connections 256
    lg --label "$1" --addr 127.0.0.1:$2 --mode bulk --connections 16
    lg --label "$1" --addr 127.0.0.1:$2 --mode bulk --connections 64
  done
  # Sustained at the target rates (open loop): does the achieved rate keep up, and at what
  # latency (measured from each request's scheduled send time)?
  lg --label phoenix --addr 127.0.0.1:18180 --mode single --connections 256 --rate 40000
  lg --label phoenix --addr 127.0.0.1:18180 --mode bulk --connections 64 --rate 250000
  # Latency at half the target rates (open loop, latency from the scheduled send time).
  lg --label phoenix --addr 127.0.0.1:18180 --mode single --connections 64 --rate 20000
  lg --label phoenix --addr 127.0.0.1:18180 --mode bulk --connections 16 --rate 125000
  lg --label baseline-signed --addr 127.0.0.1:18190 --mode single --connections 64 --rate 20000
  lg --label baseline-signed --addr 127.0.0.1:18190 --mode bulk --connections 16 --rate 125000
done
echo "# phoenix data dir after the run: $(du -sh "$work/data" | cut -f1)"
# Slow log writes / fsyncs (>= 100 ms) the server logged, to attribute any latency spikes.
echo "# phoenix warnings: $(grep -c WARN "$work/phoenix-18180.err" || true)"
grep WARN "$work/phoenix-18180.err" | sed 's/\x1b\[[0-9;]*m//g' | tail -20 | sed 's/^/#   /' || true
