#!/usr/bin/env bash
# Fairness: tenant A ("demo") with 100 boards under a bulk flood, tenant B ("arena") sending
# single events at a steady rate. B's ack latency (p50, p99) alone and beside A's flood, in
# the same run, 3 repeats, medians. Release build, 127.0.0.1 only, ~2 minutes.
# Usage: [PHOENIX_CONFIG=file.toml] benches/fairness.sh [seconds-per-phase] [B events/s] [A connections]
#        (from the repository root; defaults 8, 200, 8)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-8}
brate=${2:-200}
aconns=${3:-8}
source benches/lib.sh
build --bin phoenix --example loadgen --example send_events
port=18290
base="http://127.0.0.1:$port"
lg=./target/release/examples/loadgen

start_phoenix $port "${PHOENIX_CONFIG:-phoenix.example.toml}"

# A: 100 boards (the per-tenant maximum), all matching the flood's type. B: one board.
for i in $(seq 100); do
  ./target/release/examples/send_events --url "$base" board --id "a$i" \
    --def "{\"rules\":[{\"event_type\":\"match.*\",\"points_expression\":\"attrs.score + $i\"}],\"timeframes\":[\"daily\",\"all_time\"]}" >/dev/null
done
./target/release/examples/send_events --url "$base" --tenant arena --secret arena-secret-0123456789 \
  board --id b --def '{"rules":[{"event_type":"match.*","points_expression":"attrs.score"}],"timeframes":["daily","all_time"]}' >/dev/null

b_load() { # label
  $lg --addr 127.0.0.1:$port --tenant arena --secret arena-secret-0123456789 --mode single \
    --connections 4 --rate "$brate" --duration "$secs" --label "$1"
}

machine "; load generators on the same cores"
for r in 1 2 3; do
  b_load "alone-$r" | tee -a "$work/results"
  $lg --addr 127.0.0.1:$port --mode bulk --connections "$aconns" --duration "$((secs + 2))" \
    --label "flood-$r" >"$work/flood-$r" &
  flood=$!
  sleep 1.5 # the flood's warm-up second, then B starts while A is at full rate
  b_load "beside-$r" | tee -a "$work/results"
  wait "$flood"
  cat "$work/flood-$r" | tee -a "$work/results"
done
lag=$(max_lag "$base")
python3 - "$work/results" "$lag" <<'PY'
import re, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    label = line.split()[0]
    kind = label.rsplit("-", 1)[0]
    f = dict(re.findall(r"(\w+(?:/s)?)=([\d.]+|nan|max)", line))
    rows.setdefault(kind, []).append(f)
def med(kind, key):
    return statistics.median(float(r[key]) for r in rows[kind])
a50, a99 = med("alone", "p50_ms"), med("alone", "p99_ms")
b50, b99 = med("beside", "p50_ms"), med("beside", "p99_ms")
print(f"B alone:           p50 {a50:.2f} ms  p99 {a99:.2f} ms  (medians of 3)")
print(f"B beside A flood:  p50 {b50:.2f} ms  p99 {b99:.2f} ms  (medians of 3)")
print(f"A flood:           {med('flood', 'events/s'):.0f} events/s into 100 boards (median)")
print(f"ratio p50 {b50 / a50:.2f}x (target <= 2x), p99 {b99 / a99:.2f}x; largest board apply lag at the end: {sys.argv[2]} events")
PY
