#!/usr/bin/env bash
# The side-by-side benchmark, one command: `./scripts/bench-compare.sh`.
#
# Builds our server and the load generator (release), installs the peers (y-sweet 0.9.1 with
# cargo into target/peers; the y-websocket server and Hocuspocus with `npm ci` in
# benches/peers), fetches the automerge-paper trace (diamond-types 0.1.0, through a
# throwaway manifest and `cargo fetch`), then runs workloads W2-W8 against every server,
# each workload on a freshly started server, the server pinned to one core and the load
# generator to the other (taskset). Finally `canvas-load report` prints the table with
# ratios and writes the charts (docs/bench/*.svg) and the comparison section of
# BENCHMARKS.md.
#
# W6 (soak) runs at half the server's own W3 knee, read from its W3 results file
# (results/KIND-w3.json, from this run or an earlier one): run w3 first. W8 (two nodes)
# runs against ours and Hocuspocus only, each as two processes sharing Redis, both pinned to
# the server core: ours on a throwaway PostgreSQL database created for the run (dropped
# after) and a unique Redis key prefix (its keys deleted after), the two nodes sharing one
# data directory for the canvases (the embedded store); Hocuspocus with
# @hocuspocus/extension-redis and a unique prefix.
#
# Options:
#   --quick                 small sizes (a few minutes per server) to check the set-up
#   --servers "LIST"        subset of: canvas y-sweet y-websocket hocuspocus (default: all)
#   --workloads "LIST"      subset of: w2 w3 w4 w5 w6 w7 w8 (default: all)
#   --no-markdown           print the table, write the charts under target/bench/charts and
#                           leave BENCHMARKS.md and docs/bench alone
#   --report-only           run nothing; report the results already in target/bench/results
#   -- ARGS...              passed to every `canvas-load run` (sizes: see `canvas-load run --help`)
# Environment: BENCH_SERVER_CPU (default 0) and BENCH_LOAD_CPU (default 1) choose the cores;
# BENCH_COMMAND replaces the command line the report names (after partial reruns);
# BENCH_NO_BUILD=1 runs the release binaries already in target/release as they are (the
# report should then say which commit built them);
# BENCH_OUT moves results, logs and data (default target/bench); W8: BENCH_PG_URL
# (default postgres://postgres@127.0.0.1:5432, a role that may create databases) and
# BENCH_REDIS (host:port, default 127.0.0.1:6379).

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

ORIG_ARGS="$*"
SERVERS="canvas y-sweet y-websocket hocuspocus"
WORKLOADS="w2 w3 w4 w5 w6 w7 w8"
QUICK=0
MARKDOWN=1
EXTRA=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --servers) SERVERS="$2"; shift ;;
    --workloads) WORKLOADS="$2"; shift ;;
    --no-markdown) MARKDOWN=0 ;;
    --report-only) SERVERS=""; WORKLOADS="" ;;
    --) shift; EXTRA=("$@"); break ;;
    *) echo "bench-compare.sh: unknown option $1 (see the top of this file)" >&2; exit 2 ;;
  esac
  shift
done

SERVER_CPU="${BENCH_SERVER_CPU:-0}"
LOAD_CPU="${BENCH_LOAD_CPU:-1}"
OUT="${BENCH_OUT:-$ROOT/target/bench}"
RESULTS="$OUT/results"
LOGS="$OUT/logs"
PEERS_ROOT="$ROOT/target/peers"
PEERS_JS="$ROOT/benches/peers"
mkdir -p "$OUT" "$LOGS"
# Results of the servers and workloads run now are replaced; others (from an earlier run with
# the same sizes) stay, so `--servers canvas --workloads w2` refreshes one cell of the table.
mkdir -p "$RESULTS"
for kind in $SERVERS; do for w in $WORKLOADS; do rm -f "$RESULTS/$kind-$w.json"; done; done

step() { printf '\n==> %s\n' "$*"; }
die() { printf '\nbench-compare.sh: ERROR: %s\n' "$*" >&2; exit 1; }
command -v taskset >/dev/null || die "taskset (util-linux) is needed to pin server and load generator"
command -v node >/dev/null || die "Node.js 20+ is needed for the y-websocket server and Hocuspocus"

SERVER_PID=""
SERVER_PID2=""
W8_DB=""
W8_PREFIX=""
PG_URL="${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432}"
REDIS_HOSTPORT="${BENCH_REDIS:-127.0.0.1:6379}"
stop_pid() {
  local pid=$1
  if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
}
# W8's throwaway database and Redis keys.
drop_w8_services() {
  if [[ -n $W8_DB ]]; then
    psql "$PG_URL/postgres" -qAt -c "DROP DATABASE IF EXISTS \"$W8_DB\" WITH (FORCE)" >/dev/null 2>&1 ||
      echo "    note: could not drop the database $W8_DB" >&2
  fi
  if [[ -n $W8_PREFIX ]]; then
    redis-cli -h "${REDIS_HOSTPORT%:*}" -p "${REDIS_HOSTPORT##*:}" --scan --pattern "$W8_PREFIX*" |
      xargs -r -d '\n' -n 500 redis-cli -h "${REDIS_HOSTPORT%:*}" -p "${REDIS_HOSTPORT##*:}" del >/dev/null 2>&1 || true
  fi
  W8_DB=""
  W8_PREFIX=""
}
stop_server() {
  stop_pid "$SERVER_PID"
  stop_pid "$SERVER_PID2"
  SERVER_PID=""
  SERVER_PID2=""
}
trap 'stop_server; drop_w8_services' EXIT

if [[ ${BENCH_NO_BUILD:-0} == 1 ]]; then
  [[ -x $ROOT/target/release/canvas-server && -x $ROOT/target/release/canvas-load ]] ||
    die "BENCH_NO_BUILD=1 but target/release has no canvas-server or canvas-load"
  step "Using the release binaries already built (BENCH_NO_BUILD=1)"
else
  step "Building our server and the load generator (release)"
  cargo build --release -p canvas-server -p canvas-bench --bin canvas-server --bin canvas-load
fi
LOAD="$ROOT/target/release/canvas-load"

if [[ " $SERVERS " == *" y-sweet "* && ! -x "$PEERS_ROOT/bin/y-sweet" ]]; then
  step "Installing y-sweet 0.9.1 into target/peers"
  cargo install y-sweet --version 0.9.1 --locked --root "$PEERS_ROOT"
fi
if [[ " $SERVERS " == *" y-websocket "* || " $SERVERS " == *" hocuspocus "* ]]; then
  step "Installing the Node peers (npm ci in benches/peers)"
  (cd "$PEERS_JS" && npm ci --no-audit --no-fund --loglevel=error)
fi

if [[ -n $SERVERS && -n $WORKLOADS ]]; then
step "Fetching the automerge-paper trace (diamond-types 0.1.0)"
FETCH="$OUT/trace-fetch"
mkdir -p "$FETCH/src"
cat >"$FETCH/Cargo.toml" <<'EOF'
[package]
name = "trace-fetch"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
diamond-types = "=0.1.0"

[workspace]
EOF
: >"$FETCH/src/lib.rs"
cargo fetch --manifest-path "$FETCH/Cargo.toml" -q
TRACE="$(ls "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/diamond-types-0.1.0/benchmark_data/automerge-paper.json.gz 2>/dev/null | head -n1)"
[[ -f $TRACE ]] || die "automerge-paper.json.gz not found in the cargo registry after cargo fetch"
echo "    $TRACE"
fi

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[[ $(ulimit -n) -ge 12000 ]] || echo "    note: ulimit -n is $(ulimit -n); W4 at 10k connections needs about 11k per process"

SIZES=()
if [[ $QUICK -eq 1 ]]; then
  SIZES=(--edits 20000 --w3-peers 10,50 --w3-secs 2 --w3-ramp-rates 2000,8000,32000 --w3-ramp-secs 2
         --w4-levels 500,1000 --w5-warm 5 --w5-burst 20 --w5-cold-rounds 1
         --w6-secs 20 --w6-window-secs 5 --w7-rooms 100 --w7-secs 5
         --w8-secs 2 --w8-ramp-rates 2000,8000,32000 --w8-ramp-secs 2)
fi

free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 10000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
}

# wait_port PORT [PID]: until PORT accepts (PID, default SERVER_PID, must stay alive).
wait_port() {
  local pid=${2:-$SERVER_PID}
  for _ in $(seq 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}

# start_server KIND PORT DIR LOG [NODE]: starts one server pinned to SERVER_CPU; sets
# SERVER_PID. With NODE (1 or 2: W8), it runs as that node on the shared services
# (W8_DB, W8_PREFIX) and sets SERVER_PID2 for node 2.
start_server() {
  local kind=$1 port=$2 dir=$3 log=$4 node=${5:-}
  local shared=()
  if [[ -n $node && $kind == canvas ]]; then
    shared=(--database-url "$PG_URL/$W8_DB" --redis-url "redis://$REDIS_HOSTPORT/0"
            --redis-key-prefix "$W8_PREFIX" --node-id "node$node")
  fi
  case "$kind" in
    canvas)
      taskset -c "$SERVER_CPU" "$ROOT/target/release/canvas-server" --bind "127.0.0.1:$port" \
        --data-dir "$dir" --rest-rate-limit 1000000 --ws-rate-limit 1000000000 \
        --idle-unload-secs 1 --max-message-bytes 16777216 --log warn "${shared[@]}" >"$log" 2>&1 &
      ;;
    y-sweet)
      taskset -c "$SERVER_CPU" "$PEERS_ROOT/bin/y-sweet" serve --host 127.0.0.1 --port "$port" \
        --checkpoint-freq-seconds 1 "$dir" >"$log" 2>&1 &
      ;;
    y-websocket)
      # node directly (not npx), so that SERVER_PID is the server itself.
      HOST=127.0.0.1 PORT=$port YPERSISTENCE="$dir" taskset -c "$SERVER_CPU" \
        node "$PEERS_JS/node_modules/@y/websocket-server/src/server.js" >"$log" 2>&1 &
      ;;
    hocuspocus)
      if [[ -n $node ]]; then
        HOST=127.0.0.1 PORT=$port REDIS_HOST="${REDIS_HOSTPORT%:*}" REDIS_PORT="${REDIS_HOSTPORT##*:}" \
          REDIS_PREFIX="$W8_PREFIX" NODE_ID="node$node" \
          taskset -c "$SERVER_CPU" node "$PEERS_JS/hocuspocus.mjs" >"$log" 2>&1 &
      else
        HOST=127.0.0.1 PORT=$port taskset -c "$SERVER_CPU" node "$PEERS_JS/hocuspocus.mjs" >"$log" 2>&1 &
      fi
      ;;
    *) die "unknown server $kind" ;;
  esac
  local pid=$!
  if [[ $node == 2 ]]; then SERVER_PID2=$pid; else SERVER_PID=$pid; fi
  wait_port "$port" "$pid" || { cat "$log" >&2; die "$kind${node:+ node $node} did not start (log above)"; }
}

# run_w8 KIND: two nodes of KIND on the shared services, a writer on node 1, the readers on
# node 2 (canvas-load --addr2). Returns non-zero if the run failed.
run_w8() {
  local kind=$1 dir="$OUT/data/$kind-w8" port1 port2 rc=0
  rm -rf "$dir"
  mkdir -p "$dir"
  W8_PREFIX="bench-w8-$$-$RANDOM:"
  if [[ $kind == canvas ]]; then
    command -v psql >/dev/null || die "psql is needed for W8 (a throwaway PostgreSQL database)"
    W8_DB="bench_w8_$$_$RANDOM"
    psql "$PG_URL/postgres" -qAt -c "CREATE DATABASE \"$W8_DB\"" >/dev/null ||
      die "cannot create the database $W8_DB at $PG_URL (BENCH_PG_URL)"
  fi
  port1=$(free_port)
  start_server "$kind" "$port1" "$dir" "$LOGS/$kind-w8-node1.log" 1
  port2=$(free_port)
  while [[ $port2 == "$port1" ]]; do port2=$(free_port); done
  start_server "$kind" "$port2" "$dir" "$LOGS/$kind-w8-node2.log" 2
  local args=(run --target "$kind" --addr "127.0.0.1:$port1" --server-pid "$SERVER_PID"
              --addr2 "127.0.0.1:$port2" --server-pid2 "$SERVER_PID2" --workloads w8
              --out "$RESULTS/$kind-w8.json")
  taskset -c "$LOAD_CPU" "$LOAD" "${args[@]}" "${SIZES[@]}" "${EXTRA[@]}" || rc=$?
  stop_server
  drop_w8_services
  rm -rf "$dir"
  return "$rc"
}

FAILED=()
for kind in $SERVERS; do
  for w in $WORKLOADS; do
    step "$kind: $w"
    if [[ $w == w8 ]]; then
      if [[ $kind != canvas && $kind != hocuspocus ]]; then
        echo "    skipped: $kind has no two-node mode (W8 runs against ours and Hocuspocus)"
        continue
      fi
      run_w8 "$kind" || FAILED+=("$kind $w")
      continue
    fi
    port=$(free_port)
    dir="$OUT/data/$kind-$w"
    rm -rf "$dir"
    mkdir -p "$dir"
    start_server "$kind" "$port" "$dir" "$LOGS/$kind-$w.log"
    args=(run --target "$kind" --addr "127.0.0.1:$port" --server-pid "$SERVER_PID" --workloads "$w"
          --trace "$TRACE" --out "$RESULTS/$kind-$w.json")
    [[ $kind == hocuspocus ]] && args+=(--no-storage)
    # W6 runs at half this server's W3 knee (unless --w6-rate is passed after --).
    if [[ $w == w6 && " ${EXTRA[*]} " != *" --w6-rate "* ]]; then
      args+=(--w6-knee-from "$RESULTS/$kind-w3.json")
    fi
    if ! taskset -c "$LOAD_CPU" "$LOAD" "${args[@]}" "${SIZES[@]}" "${EXTRA[@]}"; then
      FAILED+=("$kind $w")
    fi
    stop_server
    rm -rf "$dir"
  done
done

step "Report"
CONDITIONS="Conditions: one machine ($(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)); \
each server pinned to core $SERVER_CPU and the load generator (one thread) to core $LOAD_CPU with taskset; \
a fresh server per workload; no auth on the peers (ours: a bearer token, created through the REST API first); \
storage on local disk: ours the embedded SQLite store (WAL, synchronous=FULL, durable before acknowledging), \
y-sweet its file store (checkpoint every 1 s), the y-websocket server LevelDB (YPERSISTENCE); \
Hocuspocus without extensions keeps documents in memory only (no join from storage). \
Trace: automerge-paper (259,778 edits, one update each) unless --edits says otherwise. \
W6 runs each server at half its own W3 knee. W8: two processes of ours (PostgreSQL and Redis on this machine, \
the canvases in one shared data directory) or of Hocuspocus (@hocuspocus/extension-redis), both pinned to core $SERVER_CPU."
# The charts in docs/bench belong to BENCHMARKS.md: a run that leaves it alone writes its
# charts next to its results.
CHARTS=docs/bench
[[ $MARKDOWN -eq 1 ]] || CHARTS="$OUT/charts"
report=(report --results "$RESULTS" --charts "$CHARTS" --command "${BENCH_COMMAND:-./scripts/bench-compare.sh${ORIG_ARGS:+ $ORIG_ARGS}}" --conditions "$CONDITIONS")
[[ $MARKDOWN -eq 1 ]] && report+=(--markdown BENCHMARKS.md)
"$LOAD" "${report[@]}" || true
if [[ ${#FAILED[@]} -gt 0 ]]; then
  printf '\nbench-compare.sh: these runs failed or did not converge: %s\n' "${FAILED[*]}" >&2
  exit 1
fi
