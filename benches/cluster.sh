#!/usr/bin/env bash
# Cluster mode beside the embedded mode, in one run on one machine (issue 14): durable single
# events over 64 connections and bulk x100 over 16, medians of 3, against
#   - embedded Phoenix (sled, fsync per commit round),
#   - a 3-node cluster over a 3-server JetStream cluster (replicas 3), sent to the node that
#     owns the tenant, and to a node that does not (every request forwarded over NATS).
# Then the failover time: SIGKILL of the owner while a writer retries each event on the
# other nodes until acknowledged; the time from the kill to the first acknowledgement.
# Release build, 127.0.0.1 only, bounded (SECS per loadgen run, default 6), everything in a
# temp dir removed on exit. Needs nats-server (Debian: apt-get install nats-server).
# Usage: benches/cluster.sh [PART...]   (from the repository root; default: all parts)
#   ingest    the cluster's single and bulk ingest, to the owner and forwarded
#   failover  SIGKILL of the owner (without `ingest`, FILL_SECS (default 30) of bulk ingest
#             to the owner first, so the dedupe window holds some 600 k events as after
#             `ingest`); prints the events in the window and the new owner's tenant start
#   embedded  the embedded baseline
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${SECS:-6}
parts=" ${*:-ingest failover embedded} "
want() { [[ $parts == *" $1 "* ]]; }
source benches/lib.sh
build --bin phoenix --example loadgen --example send_events
nats=$(command -v nats-server || echo /usr/sbin/nats-server)
[ -x "$nats" ] || { echo "nats-server is required (apt-get install nats-server)"; exit 1; }
lg=./target/release/examples/loadgen
secret=demo-secret-change-me-0123 # tenant demo of phoenix.cluster.example.toml
res="$work/results"
field() { tr ' ' '\n' <<<"$2" | awk -F= -v k="$1" '$1 == k { print $2 }'; }
run() { # LABEL ADDR MODE CONNS [TENANT SECRET]
  local out
  out=$($lg --label "$1" --addr "$2" --mode "$3" --connections "$4" --duration "$secs" \
    --tenant "${5:-demo}" --secret "${6:-$secret}")
  echo "$out"
  echo "$1.$3 $(field events/s "$out") $(field p50_ms "$out") $(field p99_ms "$out") $(field errors "$out")" >>"$res"
}
machine "; load generator, 3 nats-servers and 3 nodes on the same cores"

# --- the cluster -------------------------------------------------------------------------
if want ingest || want failover; then
for i in 1 2 3; do
  routes=""
  for j in 1 2 3; do [ "$j" = "$i" ] || routes="$routes\"nats-route://127.0.0.1:1762$j\", "; done
  cat >"$work/s$i.conf" <<CONF
server_name: "s$i"
listen: "127.0.0.1:1742$i"
max_payload: 4MB
jetstream { store_dir: "$work/s$i", max_memory_store: 64MB, max_file_store: 8GB }
cluster { name: "bench", listen: "127.0.0.1:1762$i", routes: [${routes%, }] }
CONF
  "$nats" -c "$work/s$i.conf" >"$work/s$i.log" 2>&1 &
  pids+=($!)
done
urls="nats://127.0.0.1:17421,nats://127.0.0.1:17422,nats://127.0.0.1:17423"
node_pid=()
for i in 1 2 3; do
  PHOENIX_DATA_DIR="$work/n$i" PHOENIX_LISTEN="127.0.0.1:1871$i" PHOENIX_LOG=info \
    PHOENIX_CLUSTER_NODE_ID="n$i" PHOENIX_CLUSTER_NATS_URLS="$urls" \
    start "node-$i" ./target/release/phoenix serve --config phoenix.cluster.example.toml
  node_pid[$i]=$started
done
# The owner of tenant demo: the node whose tenant actor counts a warm-up sent to node 1
# (forwarded when node 1 does not own it). Empty while no node owns it.
find_owner() {
  local i before=() n
  owner=""
  for i in 1 2 3; do
    before[$i]=$(metric_sum 'phoenix_events_accepted_total{tenant="demo"}' "http://127.0.0.1:1871$i")
  done
  $lg --addr 127.0.0.1:18711 --mode single --connections 4 --duration 0.5 --label warm \
    --tenant demo --secret "$secret" >/dev/null 2>&1 || true
  for i in 1 2 3; do
    n=$(metric_sum 'phoenix_events_accepted_total{tenant="demo"}' "http://127.0.0.1:1871$i")
    [ "${n:-0}" -gt "${before[$i]:-0}" ] && owner=$i
  done
  return 0
}
for _ in $(seq 120); do
  find_owner
  [ -n "$owner" ] && break
  sleep 0.5
done
[ -n "$owner" ] || { echo "no node took tenant demo"; exit 1; }
# Let the hand-offs of the start-up settle (the first node takes every tenant and hands the
# others on, within a few lease passes): the same owner twice, 5 s apart, after 12 s.
sleep 12
for _ in $(seq 10); do
  find_owner
  first=$owner
  sleep 5
  find_owner
  [ -n "$owner" ] && [ "$owner" = "$first" ] && break
done
[ -n "$owner" ] && [ "$owner" = "$first" ] || { echo "tenant demo did not settle on one node"; exit 1; }
for i in 1 2 3; do
  n=$(metric_sum 'phoenix_cluster_owned_tenants' "http://127.0.0.1:1871$i")
  echo "# node $i owns $n tenant(s)"
done
other=$(( owner % 3 + 1 ))
echo "# tenant demo is owned by node $owner; node $other forwards"
if want ingest; then
  for r in 1 2 3; do
    run cluster-owner "127.0.0.1:1871$owner" single 64
    run cluster-owner "127.0.0.1:1871$owner" bulk 16
    run cluster-forwarded "127.0.0.1:1871$other" single 64
    run cluster-forwarded "127.0.0.1:1871$other" bulk 16
  done
elif want failover; then
  $lg --label fill --addr "127.0.0.1:1871$owner" --mode bulk --connections 16 \
    --duration "${FILL_SECS:-30}" --tenant demo --secret "$secret"
fi

if want failover; then
window=$(metric_sum 'phoenix_events_accepted_total{tenant="demo"}' "http://127.0.0.1:1871$owner")
echo "# events of demo accepted by node $owner (all within the 300 s dedupe window): $window"

# Failover: a writer sends one event at a time to the two other nodes, retrying each until
# it is acknowledged; the owner is killed mid-run.
python3 - "$owner" "$secret" >"$work/failover" <<'PY' &
import hashlib, hmac, json, sys, time, urllib.request
owner, secret = int(sys.argv[1]), sys.argv[2]
nodes = [i for i in (1, 2, 3) if i != owner]
def post(node, body):
    ts = str(int(time.time()))
    path = "/v1/events"
    sig = "hmac-sha256=" + hmac.new(secret.encode(), f"POST\n{path}\n{ts}\n".encode() + body, hashlib.sha256).hexdigest()
    req = urllib.request.Request(f"http://127.0.0.1:1871{node}{path}", data=body, method="POST",
        headers={"Content-Type": "application/json", "X-Tenant-Id": "demo", "X-Timestamp": ts, "X-Signature": sig})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status
    except Exception:
        return None
start = time.time()
k, turn, acks = 0, 0, []
while time.time() - start < 40:
    e = {"event_id": f"fo-{k}", "type": "match.completed", "occurred_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
         "actor": {"user_id": f"u{k % 7}"}, "attrs": {"score": 1}}
    body = json.dumps(e).encode()
    while post(nodes[turn % 2], body) != 202:
        turn += 1
        time.sleep(0.02)
    acks.append(time.time())
    k += 1
    time.sleep(0.01)
print(" ".join(f"{a:.3f}" for a in acks))
PY
writer=$!
sleep 5
killed=$(date +%s.%N)
kill -9 "${node_pid[$owner]}"
wait "$writer"
# The outage: the longest gap between two consecutive acknowledgements from just before the
# kill on (an answer already on its way when the owner died can land just after the kill).
python3 - "$killed" "$work/failover" >>"$res" <<'PY'
import sys
killed = float(sys.argv[1])
acks = [float(x) for x in open(sys.argv[2]).read().split()]
around = [a for a in acks if a > killed - 1.0]
gaps = [b - a for a, b in zip(around, around[1:])]
print(f"failover.seconds {max(gaps):.2f}" if gaps else "failover.seconds never")
PY
# Where the time went: when the new owner's tenant actor started, and how many ids it read.
for i in 1 2 3; do
  [ "$i" = "$owner" ] && continue
  sed 's/\x1b\[[0-9;]*m//g' "$work/node-$i.out" "$work/node-$i.err" 2>/dev/null |
    grep -E 'tenant actor started|tenant started on this node' | grep 'demo' |
    sed "s/^/# node $i: /" | tail -n 2 || true
done
echo "# killed at $(date -u -d "@$killed" +%H:%M:%S.%N | cut -c1-12) UTC"
for i in 1 2 3; do [ "$i" = "$owner" ] || stop "${node_pid[$i]}"; done
for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
pids=()
rm -rf "$work"/s? "$work"/n? 2>/dev/null || true
fi
fi

# --- the embedded mode, same machine, same run ------------------------------------------
if want embedded; then
  start_phoenix 18720
  for r in 1 2 3; do
    run embedded 127.0.0.1:18720 single 64 demo demo-secret-0123456789
    run embedded 127.0.0.1:18720 bulk 16 demo demo-secret-0123456789
  done
fi
touch "$res"

python3 - "$res" <<'PY'
import statistics, sys
rows = {}
fail = None
for line in open(sys.argv[1]):
    parts = line.split()
    if parts[0] == "failover.seconds":
        fail = parts[1]
        continue
    rows.setdefault(parts[0], []).append([float(x) for x in parts[1:]])
def med(key, i=0):
    return statistics.median(r[i] for r in rows[key])
print("\n| load | embedded | cluster, to the owner | cluster, forwarded | owner / embedded |")
print("| --- | --- | --- | --- | --- |")
for mode in ("single", "bulk"):
    if not all(f"{k}.{mode}" in rows for k in ("embedded", "cluster-owner", "cluster-forwarded")):
        continue
    e, o, f = med(f"embedded.{mode}"), med(f"cluster-owner.{mode}"), med(f"cluster-forwarded.{mode}")
    ep, op, fp = med(f"embedded.{mode}", 2), med(f"cluster-owner.{mode}", 2), med(f"cluster-forwarded.{mode}", 2)
    print(f"| {mode} | {e:,.0f}/s (p99 {ep:.1f} ms) | {o:,.0f}/s (p99 {op:.1f} ms) | {f:,.0f}/s (p99 {fp:.1f} ms) | {o / e:.2f}x |")
errs = sum(r[3] for k in rows for r in rows[k])
print(f"\nfailover (SIGKILL of the owner: longest gap between two acknowledgements): {fail} s; loadgen errors: {errs:.0f}")
PY
