#!/usr/bin/env bash
# The side-by-side benchmark, one command: `./scripts/bench-compare.sh`.
#
# Builds our server and the load generator (release), installs the peers (y-sweet 0.9.1 with
# cargo into target/peers; the y-websocket server and Hocuspocus with `npm ci` in
# benches/peers), fetches the automerge-paper trace (diamond-types 0.1.0, through a
# throwaway manifest and `cargo fetch`), then runs workloads W2-W5 against every server,
# each workload on a freshly started server, the server pinned to one core and the load
# generator to the other (taskset). Finally `canvas-load report` prints the table with
# ratios and writes the charts (docs/bench/*.svg) and the comparison section of
# BENCHMARKS.md.
#
# Options:
#   --quick                 small sizes (about a minute per server) to check the set-up
#   --servers "LIST"        subset of: canvas y-sweet y-websocket hocuspocus (default: all)
#   --workloads "LIST"      subset of: w2 w3 w4 w5 (default: all)
#   --no-markdown           print the table, write the charts under target/bench/charts and
#                           leave BENCHMARKS.md and docs/bench alone
#   --report-only           run nothing; report the results already in target/bench/results
#   -- ARGS...              passed to every `canvas-load run` (sizes: see `canvas-load run --help`)
# Environment: BENCH_SERVER_CPU (default 0) and BENCH_LOAD_CPU (default 1) choose the cores;
# BENCH_COMMAND replaces the command line the report names (after partial reruns);
# BENCH_NO_BUILD=1 runs the release binaries already in target/release as they are (the
# report should then say which commit built them);
# BENCH_OUT moves results, logs and data (default target/bench).

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

ORIG_ARGS="$*"
SERVERS="canvas y-sweet y-websocket hocuspocus"
WORKLOADS="w2 w3 w4 w5"
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
stop_server() {
  if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID=""
}
trap stop_server EXIT

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
         --w4-levels 500,1000 --w5-warm 5 --w5-burst 20 --w5-cold-rounds 1)
fi

free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 10000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
}

wait_port() {
  for _ in $(seq 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}

# start_server KIND PORT DIR LOG: starts one server pinned to SERVER_CPU; sets SERVER_PID.
start_server() {
  local kind=$1 port=$2 dir=$3 log=$4
  case "$kind" in
    canvas)
      taskset -c "$SERVER_CPU" "$ROOT/target/release/canvas-server" --bind "127.0.0.1:$port" \
        --data-dir "$dir" --rest-rate-limit 1000000 --ws-rate-limit 1000000000 \
        --idle-unload-secs 1 --max-message-bytes 16777216 --log warn >"$log" 2>&1 &
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
      HOST=127.0.0.1 PORT=$port taskset -c "$SERVER_CPU" node "$PEERS_JS/hocuspocus.mjs" >"$log" 2>&1 &
      ;;
    *) die "unknown server $kind" ;;
  esac
  SERVER_PID=$!
  wait_port "$port" || { cat "$log" >&2; die "$kind did not start (log above)"; }
}

FAILED=()
for kind in $SERVERS; do
  for w in $WORKLOADS; do
    step "$kind: $w"
    port=$(free_port)
    dir="$OUT/data/$kind-$w"
    rm -rf "$dir"
    mkdir -p "$dir"
    start_server "$kind" "$port" "$dir" "$LOGS/$kind-$w.log"
    args=(run --target "$kind" --addr "127.0.0.1:$port" --server-pid "$SERVER_PID" --workloads "$w"
          --trace "$TRACE" --out "$RESULTS/$kind-$w.json")
    [[ $kind == hocuspocus ]] && args+=(--no-storage)
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
Trace: automerge-paper (259,778 edits, one update each) unless --edits says otherwise."
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
