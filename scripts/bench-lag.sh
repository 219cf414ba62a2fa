#!/usr/bin/env bash
# The lag path, before and after, in one invocation: `./scripts/bench-lag.sh [OLD [NEW]]`.
#
# OLD defaults to 646518b (the commit before 5743f2e, which made a lagging connection caught
# up instead of dropped), NEW to HEAD. Each is exported (git archive) to
# target/lag/src/COMMIT and built in release mode once, into one shared target folder
# (target/lag/build/shared: the dependencies are compiled once), its canvas-server copied to
# target/lag/bin/COMMIT/ (a commit already there is not built again). The load generator
# canvas-load is NEW's, for both.
#
# Then, for each store (embedded SQLite; the services: PostgreSQL, MongoDB, Redis as
# scripts/test.sh finds or starts them) and each server, each run on a freshly started server
# pinned to core BENCH_SERVER_CPU (default 0), the load pinned to BENCH_LOAD_CPU (default 1):
#   1. benches/lag/eight-clients.mjs: eight y-websocket clients in one Node process editing
#      one room for LAG_SECS (20) s, once per case of LAG_CASES (default "type:2400
#      move:2400 move:9600": keystrokes at 2,400 edits/s, block moves at 2,400 and at 9,600
#      edits/s; see the script): 1013 closes, reconnects, time to converge once the edits
#      stop, the server's peak RSS;
#   2. canvas-load W3 at 2,000 updates/s in a room of 10 peers, then of 50 (LAG_W3_SECS, 10 s
#      each, no ramp), and the server's peak RSS.
# Results: target/lag/results/STORE-COMMIT-*.json; benches/lag/report.py prints them as a
# table with the ratio new/old at the end.
#
# Environment: LAG_STORES (default "embedded services"), LAG_CASES, LAG_SECS, LAG_W3_SECS,
# BENCH_SERVER_CPU, BENCH_LOAD_CPU.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=lib/common.sh
source "$ROOT/scripts/lib/common.sh"
# shellcheck source=lib/services.sh
source "$ROOT/scripts/lib/services.sh"

OLD=$(git rev-parse --short "${1:-646518b}")
NEW=$(git rev-parse --short "${2:-HEAD}")
STORES="${LAG_STORES:-embedded services}"
SECS="${LAG_SECS:-20}"
CASES="${LAG_CASES:-type:2400 move:2400 move:9600}"
W3_SECS="${LAG_W3_SECS:-10}"
SERVER_CPU="${BENCH_SERVER_CPU:-0}"
LOAD_CPU="${BENCH_LOAD_CPU:-1}"
LAG="$ROOT/target/lag"
RESULTS="$LAG/results"
mkdir -p "$RESULTS" "$LAG/logs"
need_cmd taskset util-linux
need_cmd node nodejs

step "Building $OLD and $NEW (release, target/lag/build)"
for commit in "$OLD" "$NEW"; do
  bin="$LAG/bin/$commit"
  wanted=("$bin/canvas-server")
  if [[ $commit == "$NEW" ]]; then wanted+=("$bin/canvas-load"); fi
  built=1
  for f in "${wanted[@]}"; do [[ -x $f ]] || built=0; done
  if [[ $built -eq 1 ]]; then
    info "$commit: already built ($bin)"
    continue
  fi
  src="$LAG/src/$commit"
  rm -rf "$src"
  mkdir -p "$src"
  git archive "$commit" | tar -x -C "$src"
  # Cargo keys the workspace's own crates by their path inside the workspace, the same in
  # both trees, and judges them by modification time (git archive stamps the commit's
  # time): touched, they are rebuilt from this tree, not taken from the other one's build.
  find "$src" -type f -exec touch {} +
  extra=()
  if [[ $commit == "$NEW" ]]; then extra=(-p canvas-bench --bin canvas-load); fi
  (cd "$src" && CARGO_TARGET_DIR="$LAG/build/shared" cargo build --release -p canvas-server \
    --bin canvas-server "${extra[@]}")
  mkdir -p "$bin"
  for f in "${wanted[@]}"; do cp "$LAG/build/shared/release/${f##*/}" "$f"; done
done

[[ -d $ROOT/tests/js/node_modules/y-websocket ]] ||
  (cd "$ROOT/tests/js" && npm ci --no-audit --no-fund --loglevel=error)

if [[ " $STORES " == *" services "* ]]; then
  setup_postgres
  setup_redis
  setup_mongodb
fi

SERVER_PID=""
stop_server() {
  if [[ -n $SERVER_PID ]]; then
    stop_pid "$SERVER_PID"
    SERVER_PID=""
  fi
}
on_exit stop_server

RUN=0
# start_server COMMIT STORE LOG: a fresh server (data folder, database, key prefix) pinned
# to SERVER_CPU; sets SERVER_PID and PORT.
start_server() {
  local commit=$1 store=$2 log=$3 dir
  RUN=$((RUN + 1))
  dir="$LAG/data/$RUN"
  rm -rf "$dir"
  mkdir -p "$dir"
  PORT=$(free_port)
  local envs=()
  if [[ $store == services ]]; then
    local db="${DATABASE_URL_TEST##*/}_e2e_lag$RUN"
    _pg_query 127.0.0.1 "$(sed -E 's#.*:([0-9]+)/.*#\1#' <<<"$DATABASE_URL_TEST")" postgres \
      "CREATE DATABASE $db" >/dev/null
    envs=(DATABASE_URL="${DATABASE_URL_TEST%/*}/$db"
          MONGODB_URI="${MONGODB_URI_TEST/\/\?//$db?}"
          REDIS_URL="$REDIS_URL_TEST" CANVAS_REDIS_KEY_PREFIX="$db:")
  fi
  env "${envs[@]}" taskset -c "$SERVER_CPU" "$LAG/bin/$commit/canvas-server" \
    --bind "127.0.0.1:$PORT" --data-dir "$dir" --rest-rate-limit 1000000 \
    --ws-rate-limit 1000000000 --max-message-bytes 16777216 --log warn </dev/null >"$log" 2>&1 &
  SERVER_PID=$!
  wait_until 60 "canvas-server $commit on $PORT" curl -fsS -o /dev/null "http://127.0.0.1:$PORT/healthz" || {
    cat "$log" >&2
    die "canvas-server $commit did not start (log above)"
  }
}

peak_rss_mib() {
  awk '/VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"
}

for store in $STORES; do
  for commit in "$OLD" "$NEW"; do
    for case in $CASES; do
      kind=${case%%:*}
      rate=${case##*:}
      step "$store, $commit: eight y-websocket clients, $kind at $rate edits/s for $SECS s"
      start_server "$commit" "$store" "$LAG/logs/$store-$commit-eight-$kind-$rate.log"
      CANVAS_ADDR="127.0.0.1:$PORT" SERVER_PID=$SERVER_PID LAG_RATE=$rate LAG_SECS=$SECS \
        LAG_EDIT=$kind taskset -c "$LOAD_CPU" node "$ROOT/benches/lag/eight-clients.mjs" \
        >"$RESULTS/$store-$commit-eight-$kind-$rate.json" ||
        warn "$store $commit: the clients did not converge"
      cat "$RESULTS/$store-$commit-eight-$kind-$rate.json"
      stop_server
    done

    for peers in 10 50; do
      step "$store, $commit: canvas-load W3 at 2,000 updates/s, $peers peers"
      start_server "$commit" "$store" "$LAG/logs/$store-$commit-w3-$peers.log"
      taskset -c "$LOAD_CPU" "$LAG/bin/$NEW/canvas-load" run --target canvas \
        --addr "127.0.0.1:$PORT" --server-pid "$SERVER_PID" --workloads w3 --w3-peers "$peers" \
        --w3-rate 2000 --w3-secs "$W3_SECS" --w3-ramp-peers 0 \
        --out "$RESULTS/$store-$commit-w3-$peers.json" || warn "$store $commit: W3 failed"
      echo "{\"server_peak_rss_mib\": $(peak_rss_mib "$SERVER_PID")}" \
        >"$RESULTS/$store-$commit-w3-$peers-rss.json"
      stop_server
    done
  done
done

step "Figures (new $NEW / old $OLD)"
python3 "$ROOT/benches/lag/report.py" "$RESULTS" "$OLD" "$NEW" "$STORES" "$CASES"
