#!/usr/bin/env bash
# The data layer against DuckDB and psql, in one invocation: `./scripts/bench-analytics.sh`.
#
# Builds the release canvas-server (target/analytics-bench/build), installs the PyPI `duckdb`
# wheel into a venv (target/bench-env/duckdb-VERSION), finds or starts a PostgreSQL the way
# scripts/test.sh does (a fresh database per run, dropped at the end) and runs
# benches/analytics/run.py: a generated data set of BENCH_ROWS rows (default 1,000,000) as
# CSV and Parquet; group by + sum, filter + count and top-N through our REST API (a fresh
# execution each time) against DuckDB on the same files; cache hits against executions;
# PostgreSQL push-down against psql. Results in target/analytics-bench/work/results.json and
# a Markdown table on stdout (BENCHMARKS.md "The data layer").
#
# Environment: BENCH_ROWS, BENCH_REPS (default 5), DUCKDB_VERSION (default 2.0.1),
# BENCH_SERVER (a canvas-server binary to use instead of building one).

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CANVAS_ROOT="$ROOT"
cd "$ROOT"
# shellcheck source=lib/common.sh
source "$ROOT/scripts/lib/common.sh"
# shellcheck source=lib/services.sh
source "$ROOT/scripts/lib/services.sh"

OUT="$ROOT/target/analytics-bench"
ROWS="${BENCH_ROWS:-1000000}"
REPS="${BENCH_REPS:-5}"
DUCKDB_VERSION="${DUCKDB_VERSION:-2.0.1}"
need_cmd psql postgresql-client

SERVER="${BENCH_SERVER:-}"
if [[ -z $SERVER ]]; then
  step "Building canvas-server (release)"
  CARGO_TARGET_DIR="$OUT/build" cargo build --release -p canvas-server --bin canvas-server
  SERVER="$OUT/build/release/canvas-server"
fi

step "Python with duckdb $DUCKDB_VERSION"
VENV="$ROOT/target/bench-env/duckdb-$DUCKDB_VERSION"
if ! "$VENV/bin/python" -c 'import duckdb' 2>/dev/null; then
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet "duckdb==$DUCKDB_VERSION" || die "pip install duckdb failed"
fi

# setup_postgres makes a database for the run; the benchmark makes its own beside it and
# needs an admin URL (database postgres) to do so.
setup_postgres
PG_ADMIN="${DATABASE_URL_TEST%/*}/postgres"

step "Benchmark ($ROWS rows, $REPS runs each)"
rm -rf "$OUT/work"
"$VENV/bin/python" "$ROOT/benches/analytics/run.py" --server "$SERVER" --work "$OUT/work" \
  --pg-url "$PG_ADMIN" --rows "$ROWS" --reps "$REPS"
