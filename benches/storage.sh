#!/usr/bin/env bash
# Storage lifecycle, measured in one run (SPEC §10): bytes on disk per logged event and bulk
# ingest throughput with LZ4 record compression on and off, and the p99 ack while retention
# purges the log, beside the same load with retention idle.
# Usage: benches/storage.sh [seconds-per-run] [repeats]     (from the repository root)
# Starts Phoenix (release, fresh temp data dir per run) on 127.0.0.1 and runs
# examples/loadgen against it. Everything stays on loopback; each run is bounded in time.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
reps=${2:-3}
source benches/lib.sh
build --bin phoenix --example loadgen
port=18280

# serve NAME EXTRA-TOML: start Phoenix with the demo tenant and EXTRA-TOML at top level.
serve() {
  rm -rf "$work/data"
  { echo "listen = \"127.0.0.1:$port\""; echo "data_dir = \"$work/data\""
    echo 'operator_token = "bench-operator-token"'; printf '%b\n' "$2"
    echo '[[tenants]]'; echo 'id = "demo"'; echo 'secret = "demo-secret-0123456789"'
    echo '[[tenants.leaderboards]]'; echo 'id = "score"'
    echo 'rules = [{ event_type = "match.*", points_expression = "attrs.score" }]'
    echo 'timeframes = ["all_time"]'; } > "$work/$1.toml"
  PHOENIX_LOG=warn start "$1" ./target/release/phoenix serve --config "$work/$1.toml"
  pid=$started
}
# metric NAME: the sum of a metric's samples in /metrics.
metric() { metric_sum "$1" "http://127.0.0.1:$port" bench-operator-token; }
lg() { ./target/release/examples/loadgen --addr 127.0.0.1:$port --duration "$secs" "$@"; }

machine
for r in $(seq "$reps"); do
  for compression in false true; do
    serve "c-$compression" "log_compression = $compression\nlog_retention_hours = 100000"
    line=$(lg --label "compression=$compression" --mode bulk --connections 16)
    total=$(metric phoenix_events_accepted_total)
    stop "$pid"
    bytes=$(du -sb "$work/data" | cut -f1)
    echo "$line logged=$total disk_bytes=$bytes bytes_per_event=$(awk -v b="$bytes" -v t="$total" 'BEGIN { printf "%.0f", b / t }')"
  done
  # Half the bulk rate of this machine, open loop: retention idle, then purging all along
  # (everything older than the 2 s dedupe window goes, once the board checkpointed past it).
  for retention in idle purging; do
    if [ "$retention" = idle ]; then
      extra="log_retention_hours = 100000"
    else
      extra="log_retention_hours = 0\ndedupe_window_seconds = 2\nretention_interval_seconds = 1\ncheckpoint_interval_seconds = 1"
    fi
    serve "r-$retention" "$extra"
    lg --label "retention=$retention" --mode bulk --connections 16 --rate 100000
    purged=$(metric phoenix_log_purged_records_total)
    echo "  retention=$retention purged_records=$purged"
    stop "$pid"
  done
done
