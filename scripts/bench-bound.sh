#!/usr/bin/env bash
# Bound blocks benchmark (issue 14, item 8): builds the release canvas-server and runs
# benches/bound/run.mjs against it (one fresh server on the embedded default, in one
# invocation): a refresh's fan-out to 50 WebSocket clients and executions per refresh, the
# cost of bound blocks on a join against an unbound canvas, and memory per room holding
# results. Figures go to BENCHMARKS.md ("Bound blocks").
#
#   ./scripts/bench-bound.sh                    # build, then run (~1 min after the build)
#   BENCH_SERVER=path/to/canvas-server ./scripts/bench-bound.sh   # reuse a release binary
#   BENCH_CLIENTS=50 BENCH_REFRESHES=30 BENCH_JOINS=40            # the defaults

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CANVAS_ROOT="$ROOT"
cd "$ROOT"
# shellcheck source=scripts/lib/common.sh
source "$ROOT/scripts/lib/common.sh"

OUT="$ROOT/target/analytics-bench"
SERVER="${BENCH_SERVER:-}"
if [[ -z $SERVER ]]; then
  step "Building canvas-server (release)"
  CARGO_TARGET_DIR="$OUT/build" cargo build --release -p canvas-server --bin canvas-server
  SERVER="$OUT/build/release/canvas-server"
fi

step "Node dependencies (tests/js)"
if ! (cd "$ROOT/tests/js" && node --input-type=module -e "await import('ws'); await import('@msgpack/msgpack')") 2>/dev/null; then
  (cd "$ROOT/tests/js" && npm ci --no-audit --no-fund) || die "npm ci failed in tests/js"
fi

step "Benchmark"
node "$ROOT/benches/bound/run.mjs" --server "$SERVER" \
  --clients "${BENCH_CLIENTS:-50}" --refreshes "${BENCH_REFRESHES:-30}" --joins "${BENCH_JOINS:-40}"
