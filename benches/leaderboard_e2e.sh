#!/usr/bin/env bash
# Leaderboards end to end: HTTP bulk ingest → updated standings, apply lag, recovery time,
# and Redis sorted sets doing the same updates, all on 127.0.0.1 in one run.
# Usage: benches/leaderboard_e2e.sh [ingest-seconds]      (from the repository root)
# Needs: redis-server + redis-benchmark (installed with apt-get if missing), python3.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
source benches/lib.sh
build --bin phoenix --example loadgen --example send_events
port=18280
base="http://127.0.0.1:$port"
se() { ./target/release/examples/send_events --url "$base" "$@" >/dev/null; }

# Phoenix on $port with the data in $work/data; its pid in $phoenix_pid.
phoenix_up() { start_phoenix $port; phoenix_pid=$started; }
boards_caught_up() { # expected board count
  local n
  n=$(scrape "$base" | grep -c '^phoenix_leaderboard_apply_lag' || true)
  [ "$n" -ge "$1" ] && [ "$(max_lag "$base")" = 0 ]
}
now() { date +%s.%N; }

run_case() { # label, board count, timeframes json
  local label=$1 boards=$2 tfs=$3
  rm -rf "$work/data"; phoenix_up
  for i in $(seq "$boards"); do
    se board --id "b$i" --def "{\"rules\":[{\"event_type\":\"match.*\",\"points_expression\":\"attrs.score + $i\"}],\"timeframes\":$tfs}"
  done
  (while kill -0 "$phoenix_pid" 2>/dev/null; do max_lag "$base"; sleep 0.5; done) >"$work/lag" 2>/dev/null &
  local sampler=$!
  local t0; t0=$(now)
  ./target/release/examples/loadgen --addr 127.0.0.1:$port --mode bulk --connections 16 --duration "$secs" --label "$label" | tee "$work/lg"
  until boards_caught_up "$boards"; do sleep 0.05; done
  local t1; t1=$(now)
  kill "$sampler" 2>/dev/null || true
  local events
  events=$(metric_sum phoenix_events_accepted_total "$base")
  python3 - "$label" "$events" "$t0" "$t1" "$work/lag" <<'PY'
import sys
label, events, t0, t1, lagf = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
lags = [float(x) for x in open(lagf).read().split() if x.strip()]
print(f"{label}: {events:.0f} events ingested and applied in {t1 - t0:.2f} s = {events / (t1 - t0):.0f} events/s to updated standings; max apply lag sampled {max(lags or [0]):.0f} events")
PY
}

machine
run_case "1board-x-2tf" 1 '["daily","all_time"]'
stop "$phoenix_pid"
run_case "5boards-x-4tf" 5 '["hourly","daily","weekly","all_time"]'
stop "$phoenix_pid"

# Recovery: 1,000,000 logged events (125k/s for 1 s warm-up + 7 s), one board x 2 windows.
rm -rf "$work/data"; phoenix_up
se board --id rec --def '{"rules":[{"event_type":"match.*","points_expression":"attrs.score"}],"timeframes":["daily","all_time"]}'
./target/release/examples/loadgen --addr 127.0.0.1:$port --mode bulk --connections 16 --duration 7 --rate 125000 --label recovery-load >/dev/null
until boards_caught_up 1; do sleep 0.05; done
sleep 6 # let a checkpoint (every 5 s) cover the log
kill -9 "$phoenix_pid"; wait "$phoenix_pid" 2>/dev/null || true
t0=$(now); phoenix_up
until boards_caught_up 1; do sleep 0.02; done
t1=$(now)
logged=$(./target/release/examples/send_events --url "$base" log --from 999990 | grep -c '"seq"' || true)
echo "recovery with checkpoint: $(python3 -c "print(f'{$t1 - $t0:.2f}')") s from process start to standings caught up (log holds ~1,000,000 events; tail read $logged)"
t0=$(now)
se board --id rebuild --def '{"rules":[{"event_type":"match.*","points_expression":"attrs.score * 2"}],"timeframes":["daily","all_time"]}'
until boards_caught_up 2; do sleep 0.02; done
t1=$(now)
echo "full rebuild of a new board from the log (no checkpoint): $(python3 -c "print(f'{$t1 - $t0:.2f}')") s"
stop "$phoenix_pid"

# Redis sorted sets doing the same kind of updates (1 ZINCRBY = 1 window update).
if ! command -v redis-server >/dev/null; then
  (apt-get update -qq && apt-get install -y -qq redis-server redis-tools) >/dev/null 2>&1 || { echo "redis unavailable; skipped"; exit 0; }
fi
redis-server --port 16379 --bind 127.0.0.1 --save '' --appendonly yes --appendfsync always --dir "$work" --daemonize no >/dev/null &
pids+=($!)
sleep 0.5
for cmd in "zincrby lb 1 user:__rand_int__" "zrevrank lb user:__rand_int__"; do
  echo "redis (appendfsync always) $cmd: $(redis-benchmark -p 16379 -q -n 1000000 -r 1000000 -c 50 -P 16 $cmd | tr '\r' '\n' | tail -1)"
done
redis-cli -p 16379 config set appendfsync no >/dev/null
echo "redis (no fsync) zincrby: $(redis-benchmark -p 16379 -q -n 1000000 -r 1000000 -c 50 -P 16 zincrby lb 1 user:__rand_int__ | tr '\r' '\n' | tail -1)"
echo "redis zcard: $(redis-cli -p 16379 zcard lb)"
