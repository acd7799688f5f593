# Shared by the bench scripts, which source it from the repository root after
# `set -euo pipefail`: a work directory removed on exit (with every server started), servers
# on 127.0.0.1 waited for, the machine line results start with, and /metrics readers.

work=$(mktemp -d)
pids=()
cleanup() {
  if [ ${#pids[@]} -gt 0 ]; then kill "${pids[@]}" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# build ARGS...: the release binaries the script needs (e.g. --bin phoenix --example loadgen),
# in $release (CARGO_TARGET_DIR is honoured).
release="${CARGO_TARGET_DIR:-./target}/release"
build() { cargo build --release --quiet "$@"; }

# start NAME CMD...: run CMD in the background, output in $work/NAME.out and .err, and wait
# until it prints "listening". Its pid is in $started (and is killed on exit).
start() {
  local name=$1
  shift
  "$@" >"$work/$name.out" 2>"$work/$name.err" &
  started=$!
  pids+=("$started")
  for _ in $(seq 200); do grep -q listening "$work/$name.out" 2>/dev/null && return; sleep 0.05; done
  echo "$name did not start"; cat "$work/$name.err"; exit 1
}

# start_phoenix PORT [CONFIG]: release Phoenix on 127.0.0.1:PORT, data in $work/data, with
# CONFIG (default $PHOENIX_CONFIG, else phoenix.example.toml); its pid in $started.
start_phoenix() {
  PHOENIX_DATA_DIR="$work/data" PHOENIX_LISTEN="127.0.0.1:$1" PHOENIX_LOG=warn \
    start "phoenix-$1" "$release/phoenix" serve --config "${2:-${PHOENIX_CONFIG:-phoenix.example.toml}}"
}

# stop PID: end a server started here, wait for it, and forget it.
stop() {
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  local keep=() p
  for p in "${pids[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  pids=(${keep[@]+"${keep[@]}"})
}

# machine [NOTE]: the line every result starts with: time, cores, CPU model.
machine() {
  echo "# $(date -u +%FT%TZ) $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)$*"
}

# scrape BASE [TOKEN]: the Prometheus text of BASE/metrics (operator token, default the
# example config's).
scrape() { curl -s -H "Authorization: Bearer ${2:-demo-operator-token}" "$1/metrics"; }

# metric_sum NAME BASE [TOKEN]: the sum of the samples of metric NAME, as a whole number.
metric_sum() {
  scrape "$2" "${3:-}" | awk -v m="$1" '$1 == m || index($1, m "{") == 1 { s += $2 } END { printf "%d", s }'
}

# max_lag BASE: the largest apply lag over all boards (0 when all applied the durable head).
max_lag() {
  scrape "$1" | awk '/^phoenix_leaderboard_apply_lag/ {if ($2 > m) m = $2} END {print m + 0}'
}
