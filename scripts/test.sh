#!/usr/bin/env bash
# The project's whole test command: `./scripts/test.sh`. CI runs it too (.ci/run), as root,
# on a clean clone, with network only to the package registries.
#
# Steps: tools -> Node dependencies of tests/js -> cargo fmt --check -> cargo clippy
# -D warnings -> test services (PostgreSQL, Redis, MongoDB-compatible secantusdb) ->
# cargo test --workspace -> TypeScript SDK (client-sdk: npm ci, tsc, its tests against the
# real canvas-server binary, demo bundle freshness) -> API contract (Schemathesis against the
# real server's OpenAPI document, scripts/lib/api_contract.sh) -> browser test (headless
# Chromium, installed with apt when missing) -> summary. Exits non-zero on the first failure; services that it
# started are stopped and their folders removed on exit, whatever happens.
#
# How the Rust tests find the real-client interop script: by a path relative to the
# workspace root, tests/js/interop.mjs, i.e. from the canvas-tests crate (manifest in tests/)
#   Path::new(env!("CARGO_MANIFEST_DIR")).join("js/interop.mjs")
# and they run it with `node` from PATH. Its imports resolve from tests/js/node_modules,
# which the "Node dependencies" step below installs (`npm ci` in tests/js); the working
# directory does not matter. Its environment contract is at the top of interop.mjs.
#
# Environment knobs:
#   CANVAS_TEST_SERVICES   services to provide (default "postgres redis mongodb mariadb moto";
#                          "" = none). Exports DATABASE_URL_TEST, REDIS_URL_TEST,
#                          MONGODB_URI_TEST, MYSQL_URL_TEST, CANVAS_TEST_S3_ENDPOINT.
#                          A URL already set in the environment is used as given.
#   CANVAS_TEST_FORCE_THROWAWAY=1  ignore the machine's PostgreSQL/Redis, start private ones.
#   CARGO_TEST_ARGS        extra arguments for `cargo test --workspace --no-fail-fast`
#                          (e.g. "-- --nocapture").

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CANVAS_ROOT="$ROOT"
cd "$ROOT"
# shellcheck source=scripts/lib/common.sh
source "$ROOT/scripts/lib/common.sh"
# shellcheck source=scripts/lib/services.sh
source "$ROOT/scripts/lib/services.sh"
# shellcheck source=scripts/lib/api_contract.sh
source "$ROOT/scripts/lib/api_contract.sh"

JS_DIR="$ROOT/tests/js"
SDK_DIR="$ROOT/client-sdk"
LOG_DIR="$ROOT/target/test-logs"
# totals over cargo and node tests, for the last summary line
TOTAL_PASSED=0
TOTAL_FAILED=0
TOTAL_SKIPPED=0

check_tools() {
  step "Checking tools"
  local t
  for t in cargo rustc node npm; do
    have "$t" || die "required tool '$t' not found in PATH"
  done
  cargo fmt --version >/dev/null 2>&1 || die "rustfmt is missing (rustup component add rustfmt)"
  cargo clippy --version >/dev/null 2>&1 || die "clippy is missing (rustup component add clippy)"
  local node_major
  node_major=$(node -p 'process.versions.node.split(".")[0]')
  ((node_major >= 20)) || die "Node.js >= 20 is required, found $(node --version)"
  info "$(cargo --version); $(rustc --version)"
  info "node $(node --version); npm $(npm --version)"
}

# `npm ci` in tests/js when node_modules is missing, the lockfile changed since the last
# install, Node changed, or the installed packages cannot be imported.
install_node_deps() {
  step "Node dependencies (tests/js)"
  local stamp="$JS_DIR/node_modules/.canvas-install-stamp" want
  want="$(sha256sum "$JS_DIR/package-lock.json" | cut -d' ' -f1) node-$(node --version)"
  if [[ -f $stamp && $(cat "$stamp") == "$want" ]] && js_deps_importable; then
    info "node_modules is up to date with package-lock.json"
    return 0
  fi
  info "npm ci --no-audit --no-fund"
  (cd "$JS_DIR" && npm ci --no-audit --no-fund) || die "npm ci failed in tests/js"
  js_deps_importable || die "tests/js dependencies installed but cannot be imported"
  echo "$want" >"$stamp"
  node --check "$JS_DIR/interop.mjs" || die "tests/js/interop.mjs does not parse"
}

js_deps_importable() {
  (cd "$JS_DIR" && node --input-type=module -e \
    "await Promise.all(['yjs', 'y-websocket', 'ws', '@msgpack/msgpack'].map((m) => import(m)))" \
    >/dev/null 2>&1)
}

# Test services: each setup_* (scripts/lib/services.sh) exports its URL and cleans up on exit.
setup_services() {
  local services=${CANVAS_TEST_SERVICES-postgres redis mongodb mariadb moto} s
  if [[ -z ${services// /} ]]; then
    step "Test services: none (CANVAS_TEST_SERVICES is empty)"
    return 0
  fi
  for s in $services; do
    case $s in
      postgres) setup_postgres ;;
      redis) setup_redis ;;
      mongodb) setup_mongodb ;;
      mariadb) setup_mariadb ;;
      moto) setup_moto ;;
      *) die "unknown service '$s' in CANVAS_TEST_SERVICES (postgres, redis, mongodb, mariadb, moto)" ;;
    esac
  done
}

cargo_fmt() {
  step "cargo fmt --all -- --check"
  cargo fmt --all -- --check || die "formatting differs: run 'cargo fmt --all'"
}

cargo_clippy() {
  step "cargo clippy --workspace --all-targets -- -D warnings"
  cargo clippy --workspace --all-targets -- -D warnings || die "clippy found problems"
}

# Runs the tests, keeps a log, and ends with one summary line over all test binaries.
cargo_test() {
  step "cargo test --workspace --no-fail-fast"
  mkdir -p "$LOG_DIR"
  local log="$LOG_DIR/cargo-test.log" status
  set +e
  # shellcheck disable=SC2086 # CARGO_TEST_ARGS is split on purpose
  cargo test --workspace --no-fail-fast ${CARGO_TEST_ARGS:-} 2>&1 | tee "$log"
  status=${PIPESTATUS[0]}
  set -e
  summarize_cargo_test "$log" "$status"
}

summarize_cargo_test() {
  local log=$1 status=$2 passed=0 failed=0 ignored=0 binaries=0 line
  while IFS= read -r line; do
    if [[ $line =~ ([0-9]+)\ passed\;\ ([0-9]+)\ failed\;\ ([0-9]+)\ ignored ]]; then
      passed=$((passed + BASH_REMATCH[1]))
      failed=$((failed + BASH_REMATCH[2]))
      ignored=$((ignored + BASH_REMATCH[3]))
      binaries=$((binaries + 1))
    fi
  done < <(grep -E '^test result: ' "$log" || true)
  TOTAL_PASSED=$((TOTAL_PASSED + passed))
  TOTAL_FAILED=$((TOTAL_FAILED + failed))
  TOTAL_SKIPPED=$((TOTAL_SKIPPED + ignored))
  step "Summary (cargo test, $binaries test binaries; full log: ${log#"$ROOT"/})"
  if ((status != 0)); then
    grep -E '^test .+ \.\.\. FAILED$|^error(\[E[0-9]+\])?:' "$log" | head -40 >&2 || true
    echo "summary: $passed passed, $failed failed, $ignored skipped"
    die "cargo test failed (exit $status)"
  fi
  echo "summary: $passed passed, $failed failed, $ignored skipped"
}

# node --test FILES... in client-sdk, with a spec report on the terminal and a TAP log whose
# counts go into the totals.
run_node_tests() {
  local name=$1 status passed failed skipped
  shift
  local log="$LOG_DIR/$name.tap"
  mkdir -p "$LOG_DIR"
  set +e
  # --test-timeout: a last hang guard, not a bound (the tests' own waits have 30 s deadlines
  # and every test closes what it opened, so a failure ends the run at once)
  (cd "$SDK_DIR" && node --test --test-concurrency=1 --test-timeout=600000 \
    --test-reporter=spec --test-reporter-destination=stdout \
    --test-reporter=tap --test-reporter-destination="$log" "$@")
  status=$?
  set -e
  passed=$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$log" | tail -1)
  failed=$(sed -n 's/^# fail \([0-9]*\)$/\1/p' "$log" | tail -1)
  skipped=$(sed -n 's/^# skipped \([0-9]*\)$/\1/p' "$log" | tail -1)
  TOTAL_PASSED=$((TOTAL_PASSED + ${passed:-0}))
  TOTAL_FAILED=$((TOTAL_FAILED + ${failed:-0}))
  TOTAL_SKIPPED=$((TOTAL_SKIPPED + ${skipped:-0}))
  info "$name: ${passed:-0} passed, ${failed:-0} failed (log: ${log#"$ROOT"/})"
  ((status == 0)) || die "$name tests failed (exit $status)"
}

# The TypeScript SDK: dependencies, type checks and build, its tests against the real
# canvas-server binary (target/debug/canvas-server), and the committed demo bundle
# (server/assets/demo/app.js) must match a fresh build.
client_sdk() {
  step "TypeScript SDK (client-sdk)"
  local stamp="$SDK_DIR/node_modules/.canvas-install-stamp" want
  want="$(sha256sum "$SDK_DIR/package-lock.json" | cut -d' ' -f1) node-$(node --version)"
  if [[ ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
    info "npm ci --no-audit --no-fund (client-sdk)"
    (cd "$SDK_DIR" && npm ci --no-audit --no-fund) || die "npm ci failed in client-sdk"
    echo "$want" >"$stamp"
  fi
  (cd "$SDK_DIR" && npm run --silent typecheck && npm run --silent build) || die "client-sdk does not type-check or build"
  (cd "$SDK_DIR" && node demo/build.mjs --check) || die "the committed demo bundle is stale"
  # The tests start the real binary. `cargo test --workspace` has built it already (the
  # server crate has integration tests), with the workspace's test features; asking again
  # the same way is a no-op. `cargo build -p canvas-server` would unify features differently
  # and rebuild Apache DataFusion and everything under it (about ten CPU minutes).
  info "cargo test --workspace --no-run (the canvas-server binary the tests start)"
  cargo test --workspace --no-run --quiet || die "building canvas-server failed"
  local target_dir=${CARGO_TARGET_DIR:-target}
  [[ $target_dir == /* ]] || target_dir="$ROOT/$target_dir"
  export CANVAS_SERVER_BIN="$target_dir/debug/canvas-server"
  [[ -x $CANVAS_SERVER_BIN ]] || die "$CANVAS_SERVER_BIN was not built"
  run_node_tests client-sdk test/sdk.test.mjs test/lifecycle.test.mjs test/data.test.mjs test/example.test.mjs test/package.test.mjs test/openapi.test.mjs
}

# The demo page in headless Chromium (Debian's chromium, installed when missing).
browser_test() {
  step "Browser test (headless Chromium, two users on one canvas)"
  need_cmd chromium chromium
  run_node_tests browser test/browser.test.mjs
  info "screenshots: target/browser-screenshots/"
}

main() {
  check_tools
  install_node_deps
  cargo_fmt
  cargo_clippy
  setup_services
  cargo_test
  client_sdk
  api_contract
  browser_test
  step "Summary (cargo and node tests)"
  echo "summary: $TOTAL_PASSED passed, $TOTAL_FAILED failed, $TOTAL_SKIPPED skipped"
}

# run when executed; sourcing only defines the functions (to run single steps by hand)
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  main "$@"
fi
