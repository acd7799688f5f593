#!/usr/bin/env bash
# Every figure of issue 16 in one run, release build, 127.0.0.1 only, each beside its baseline
# measured in the same run, medians of 3 (python3 prints the medians and ratios at the end).
# Usage: benches/issue16.sh [PART...]        (from the repository root; run it under
#        `flock /work/bench.lock` on a shared machine)
# Parts (default all, in this order): ingest boards ws recovery redis; also (not in the
# default) feed: the same ingest beside a server whose tenant has one board that matches
# nothing, so its feed decodes every event (what every feed did before it learnt to skip).
#   ingest    Phoenix single@64 and bulk x100@16 vs the signed no-op; p99 at half those rates
#   boards    5 boards x 4 timeframes vs 1 board x 2 timeframes, and 100 boards on one tenant:
#             events/s to updated standings
#   ws        WebSocket streaming ingest with acks vs HTTP bulk; ack -> push, 1,000 subscribers
#   recovery  10 M logged events with a checkpoint: process start -> /ready -> standings
#             caught up (3 restarts of the same data dir) and the standings compared
#   redis     Debian's redis-server, appendonly + appendfsync always, ZINCRBY with 50 clients,
#             pipeline 1 and 32 (installed with apt-get if missing)
# BOARD_CASES (env) picks the boards cases (default "1x2 5x4 100x1"); PHOENIX_CONFIG (env) is
# the config every Phoenix starts with (default phoenix.example.toml); BENCH_NOTE (env), what
# else ran beside the run, is appended to the first line.
# Bounds: every loadgen run is SECS seconds (env, default 6); the recovery load stops at
# REC_EVENTS (default 10,000,000) and is refused with less than 6 GB free; everything lives
# in one temp dir removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${SECS:-6}
rec_events=${REC_EVENTS:-10000000}
parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=(ingest boards ws recovery redis)
source benches/lib.sh
rel=$release # where build puts the binaries (benches/lib.sh; CARGO_TARGET_DIR is honoured)
build --bin phoenix --example loadgen --example baseline_server --example ws_bench --example send_events
ulimit -n 65536 2>/dev/null || true
res="$work/results" # one "key value" line per measurement, summarised at the end
lg() { $rel/examples/loadgen --duration "$secs" "$@"; }
# field NAME LINE: the value of NAME=... in a loadgen result line.
field() { tr ' ' '\n' <<<"$2" | awk -F= -v k="$1" '$1 == k { print $2 }'; }
note() { echo "$1 $2" >>"$res"; }
now() { date +%s.%N; }
elapsed() { python3 -c "print(f'{$2 - $1:.3f}')"; }
machine "${BENCH_NOTE:+; $BENCH_NOTE}"

part_ingest() {
  start_phoenix 18480
  local ph=$started
  start baseline-signed $rel/examples/baseline_server --mode signed --listen 127.0.0.1:18490
  local bs=$started out
  for r in 1 2 3; do
    for t in "phoenix 18480" "signed 18490"; do
      set -- $t
      out=$(lg --label "$1" --addr 127.0.0.1:$2 --mode single --connections 64); echo "$out"
      note "ingest.single.$1" "$(field events/s "$out")"
      out=$(lg --label "$1" --addr 127.0.0.1:$2 --mode bulk --connections 16); echo "$out"
      note "ingest.bulk.$1" "$(field events/s "$out")"
    done
  done
  # Open loop at half of Phoenix's median closed-loop rates: p99 from the scheduled send time.
  local half_single half_bulk
  half_single=$(awk '$1=="ingest.single.phoenix"{print $2}' "$res" | sort -n | sed -n 2p | awk '{printf "%d", $1/2}')
  half_bulk=$(awk '$1=="ingest.bulk.phoenix"{print $2}' "$res" | sort -n | sed -n 2p | awk '{printf "%d", $1/2}')
  for r in 1 2 3; do
    out=$(lg --label phoenix-half --addr 127.0.0.1:18480 --mode single --connections 64 --rate "$half_single"); echo "$out"
    note ingest.single.half_p99_ms "$(field p99_ms "$out")"
    out=$(lg --label phoenix-half --addr 127.0.0.1:18480 --mode bulk --connections 16 --rate "$half_bulk"); echo "$out"
    note ingest.bulk.half_p99_ms "$(field p99_ms "$out")"
  done
  echo "# phoenix slow write/fsync warnings: $(grep -c WARN "$work/phoenix-18480.err" || true)"
  stop "$ph"; stop "$bs"; rm -rf "$work/data"
}

part_feed() {
  start_phoenix 18480
  local a=$started
  PHOENIX_DATA_DIR="$work/data2" PHOENIX_LISTEN=127.0.0.1:18481 PHOENIX_LOG=warn \
    start phoenix-decoding $rel/phoenix serve --config phoenix.example.toml
  local b=$started out
  $rel/examples/send_events --url http://127.0.0.1:18481 board --id idle \
    --def '{"rules":[{"event_type":"never.happens","points_expression":"1"}],"timeframes":["all_time"]}' >/dev/null
  for r in 1 2 3; do
    for t in "skipping 18480" "decoding 18481"; do
      set -- $t
      out=$(lg --label "feed-$1" --addr 127.0.0.1:$2 --mode single --connections 64); echo "$out"
      note "feed.single.$1" "$(field events/s "$out")"
      out=$(lg --label "feed-$1" --addr 127.0.0.1:$2 --mode bulk --connections 16); echo "$out"
      note "feed.bulk.$1" "$(field events/s "$out")"
    done
  done
  stop "$a"; stop "$b"; rm -rf "$work/data" "$work/data2"
}

port=18580
base="http://127.0.0.1:$port"
se() { $rel/examples/send_events --url "$base" "$@"; }
boards_caught_up() { # expected board count
  local n
  n=$(scrape "$base" | grep -c '^phoenix_leaderboard_apply_lag' || true)
  [ "$n" -ge "$1" ] && [ "$(max_lag "$base")" = 0 ]
}

# board_case KEY BOARDS TIMEFRAMES: bulk@16 for $secs s from a fresh data dir with BOARDS
# boards; events accepted / (load start -> every board applied the durable head).
board_case() {
  local key=$1 boards=$2 tfs=$3
  rm -rf "$work/data"; start_phoenix $port; local pid=$started
  for i in $(seq "$boards"); do
    se board --id "b$i" --def "{\"rules\":[{\"event_type\":\"match.*\",\"points_expression\":\"attrs.score + $i\"}],\"timeframes\":$tfs}" >/dev/null
  done
  local t0 t1 events
  t0=$(now)
  lg --addr 127.0.0.1:$port --mode bulk --connections 16 --label "$key" >/dev/null
  until boards_caught_up "$boards"; do sleep 0.05; done
  t1=$(now)
  events=$(metric_sum phoenix_events_accepted_total "$base")
  local eps; eps=$(python3 -c "print(f'{$events / ($t1 - $t0):.0f}')")
  echo "$key: $events events applied by $boards boards in $(elapsed "$t0" "$t1") s = $eps events/s to updated standings"
  note "boards.$key" "$eps"
  stop "$pid"
}

part_boards() {
  local c
  for r in 1 2 3; do
    for c in ${BOARD_CASES:-1x2 5x4 100x1}; do
      case $c in
        1x2) board_case 1x2 1 '["daily","all_time"]' ;;
        5x4) board_case 5x4 5 '["hourly","daily","weekly","all_time"]' ;;
        100x1) board_case 100x1 100 '["all_time"]' ;;
      esac
    done
  done
  rm -rf "$work/data"
}

part_ws() {
  start_phoenix 18680; local pid=$started out
  for r in 1 2 3; do
    out=$($rel/examples/ws_bench --addr 127.0.0.1:18680 push --subscribers 1000 --samples 40 --rate 2000 --seconds 3); echo "$out"
    note ws.push.p50_ms "$(sed -n 's/^push quiet.* p50 \([0-9.]*\) ms.*/\1/p' <<<"$out")"
    note ws.push.p99_ms "$(sed -n 's/^push quiet.* p99 \([0-9.]*\) ms.*/\1/p' <<<"$out")"
  done
  for r in 1 2 3; do
    out=$($rel/examples/ws_bench --addr 127.0.0.1:18680 ingest --connections 8 --window 8 --seconds "$secs"); echo "$out"
    note ws.ingest "$(sed -n 's/^ws ingest: .* = \([0-9.]*\) events\/s.*/\1/p' <<<"$out")"
    out=$(lg --addr 127.0.0.1:18680 --mode bulk --connections 16 --label http-bulk-same-run); echo "$out"
    note ws.http_bulk "$(field events/s "$out")"
  done
  stop "$pid"; rm -rf "$work/data"
}

part_recovery() {
  local free_gb
  free_gb=$(df -BG --output=avail "$work" | tail -1 | tr -dc 0-9)
  if [ "$free_gb" -lt 6 ]; then echo "recovery: only ${free_gb} GB free, refused (needs 6)"; return 1; fi
  rm -rf "$work/data"; start_phoenix $port; local pid=$started
  top() { se standings --id rec --timeframe all_time --limit 10 | tail -n +2 | python3 -c 'import json, sys; d = json.load(sys.stdin); print(d["total"], [(e["rank"], e["user_id"], e["score"]) for e in d["entries"]])'; }
  se board --id rec --def '{"rules":[{"event_type":"match.*","points_expression":"attrs.score"}],"timeframes":["daily","all_time"]}' >/dev/null
  # Closed-loop bulk until the log holds rec_events (bounded: at most 40 loads of $secs s).
  local n=0 i
  for i in $(seq 40); do
    lg --addr 127.0.0.1:$port --mode bulk --connections 16 --label recovery-load >/dev/null
    n=$(metric_sum phoenix_events_accepted_total "$base")
    [ "$n" -lt "$rec_events" ] || break
  done
  until boards_caught_up 1; do sleep 0.1; done
  sleep 7 # a checkpoint (every 5 s) covers the log
  local before; before=$(top)
  echo "recovery: standings before the kill: $before"
  echo "recovery: $n events logged ($(du -sh "$work/data" | cut -f1) on disk)"
  for r in 1 2 3; do
    kill -9 "$pid"; wait "$pid" 2>/dev/null || true
    local t0 t1 t2 after
    t0=$(now); start_phoenix $port; pid=$started
    until curl -sf "$base/ready" >/dev/null; do sleep 0.01; done
    t1=$(now)
    until boards_caught_up 1; do sleep 0.01; done
    t2=$(now)
    after=$(top)
    local same=no; [ "$before" = "$after" ] && same=yes
    echo "recovery run $r: /ready after $(elapsed "$t0" "$t1") s, standings caught up after $(elapsed "$t0" "$t2") s, top 10 identical: $same"
    note recovery.ready_s "$(elapsed "$t0" "$t1")"
    note recovery.caught_up_s "$(elapsed "$t0" "$t2")"
    note recovery.same "$same"
  done
  grep -h 'tenant actor started\|recovered\|replay' "$work/phoenix-$port.err" 2>/dev/null | sed 's/\x1b\[[0-9;]*m//g' | tail -3 | sed 's/^/#   /' || true
  stop "$pid"; rm -rf "$work/data"
}

part_redis() {
  if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
    (apt-get update -qq && apt-get install -y -qq redis-server redis-tools) >/dev/null 2>&1 || { echo "redis: apt-get install failed"; return 1; }
  fi
  mkdir -p "$work/redis"
  redis-server --port 16479 --bind 127.0.0.1 --save '' --appendonly yes --appendfsync always --dir "$work/redis" --daemonize no >/dev/null &
  pids+=($!); local rp=$!
  for _ in $(seq 100); do redis-cli -p 16479 ping >/dev/null 2>&1 && break; sleep 0.05; done
  local out p
  for r in 1 2 3; do
    for p in 1 32; do
      out=$(redis-benchmark -p 16479 -q -n $((p == 1 ? 200000 : 2000000)) -r 1000000 -c 50 -P $p zincrby lb 1 user:__rand_int__ | tr '\r' '\n' | grep 'requests per second' | tail -1)
      echo "redis appendfsync=always zincrby -c 50 -P $p: $out"
      note "redis.p$p" "$(awk '{for (i=1;i<=NF;i++) if ($i=="requests") print $(i-1)}' <<<"$out")"
    done
  done
  stop "$rp"; rm -rf "$work/redis"
}

for p in "${parts[@]}"; do
  echo "## $p"
  "part_$p"
done

echo "## summary (medians of 3; each ratio from medians of the same run)"
python3 - "$res" <<'PY'
import statistics, sys
vals = {}
for line in open(sys.argv[1]):
    k, _, v = line.strip().partition(" ")
    if v:
        vals.setdefault(k, []).append(v)
def med(k):
    xs = [float(x) for x in vals.get(k, []) if x.replace(".", "", 1).isdigit()]
    return statistics.median(xs) if xs else None
def show(label, k, unit=""):
    m = med(k)
    if m is not None:
        print(f"{label}: {m:,.2f}{unit}  (runs: {', '.join(vals[k])})")
    return m
def ratio(label, a, b, target, higher=True):
    if a is None or b is None:
        return
    r = a / b
    ok = r >= target if higher else r <= target
    print(f"{label}: {r:.2f}  target {'>=' if higher else '<='} {target}: {'MET' if ok else 'MISSED'}")
def limit(label, v, target):
    if v is not None:
        print(f"{label}: {v:.2f}  target <= {target}: {'MET' if v <= target else 'MISSED'}")
ps, ss = show("phoenix single@64 events/s", "ingest.single.phoenix"), show("signed no-op single@64", "ingest.single.signed")
pb, sb = show("phoenix bulk@16 events/s", "ingest.bulk.phoenix"), show("signed no-op bulk@16", "ingest.bulk.signed")
ratio("single@64 phoenix/signed", ps, ss, 0.6)
ratio("bulk@16 phoenix/signed", pb, sb, 0.6)
limit("single p99 ms at half rate", show("single half-rate p99", "ingest.single.half_p99_ms", " ms"), 10)
limit("bulk p99 ms at half rate", show("bulk half-rate p99", "ingest.bulk.half_p99_ms", " ms"), 10)
fs, fd = show("feed skipping single@64", "feed.single.skipping"), show("feed decoding single@64", "feed.single.decoding")
ratio("single: no-board feed skipping / decoding (no target)", fs, fd, 1.0)
fs, fd = show("feed skipping bulk@16", "feed.bulk.skipping"), show("feed decoding bulk@16", "feed.bulk.decoding")
ratio("bulk: no-board feed skipping / decoding (no target)", fs, fd, 1.0)
b12, b54 = show("1 board x 2 tf events/s", "boards.1x2"), show("5 boards x 4 tf events/s", "boards.5x4")
ratio("5x4 / 1x2", b54, b12, 0.6)
b100 = show("100 boards events/s", "boards.100x1")
if b100 is not None:
    print(f"100 boards: {b100:,.0f} events/s  target >= 20000: {'MET' if b100 >= 20000 else 'MISSED'}")
wi, hb = show("ws ingest events/s", "ws.ingest"), show("http bulk same run", "ws.http_bulk")
ratio("ws ingest / http bulk", wi, hb, 1.5)
limit("ack->push p50 ms", show("ack->push p50", "ws.push.p50_ms", " ms"), 2)
limit("ack->push p99 ms", show("ack->push p99", "ws.push.p99_ms", " ms"), 10)
show("recovery /ready", "recovery.ready_s", " s")
limit("recovery standings caught up s", show("recovery caught up", "recovery.caught_up_s", " s"), 3)
if "recovery.same" in vals:
    print(f"recovery standings identical to before the kill: {vals['recovery.same']}")
r1, r32 = show("redis zincrby P1 req/s", "redis.p1"), show("redis zincrby P32 req/s", "redis.p32")
if r1 is not None and ps is not None:
    print(f"phoenix single@64 / redis P1: {ps / r1:.2f}")
if r32 is not None and pb is not None:
    print(f"phoenix bulk@16 / redis P32: {pb / r32:.2f}")
PY
