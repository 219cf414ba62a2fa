# shellcheck shell=bash
# The API contract step of scripts/test.sh: Schemathesis against the real server and its own
# OpenAPI document (GET /api/v1/openapi.json). Sourced by scripts/test.sh after common.sh.
#
# It installs PyPI `schemathesis` (pinned) into a venv cached under target/test-env/, starts
# the canvas-server binary ($CANVAS_SERVER_BIN, default target/debug/canvas-server) with the
# embedded default storage on 127.0.0.1 and a free port, seeds it through the API
# (api_contract_seed.py: users, two projects each with a canvas from a template, a data
# source with a file, a query and an execution, a pipeline, a webhook, a template; path
# parameters point at them, DELETEs at the second set), and runs `schemathesis run` (4.x
# CLI) with the seeded user's bearer token, bounded (examples per operation, a time budget)
# and failing on:
#   not_a_server_error            any 5xx
#   status_code_conformance       a status the document does not list for the operation
#   content_type_conformance      a Content-Type the document does not list
#   response_schema_conformance   a body that does not match its schema; every error
#                                 response is documented with the Error schema
#                                 ({"error": {"code", "message"}}), so this also fails on
#                                 an error in any other shape
# Excluded: POST /api/v1/auth/logout, which would end the token the rest of the run uses
# (tests/tests/sessions.rs covers it).
#
# Bounds: at most CANVAS_SCHEMATHESIS_EXAMPLES test cases per operation and phase (default
# 25: about 2,500 requests, some 30 s here), and a hard limit of 170 s on the run (past it
# the step fails, saying so). CANVAS_SCHEMATHESIS_SEED: default 1 (the same cases every
# run); "random" for a new seed each run.

SCHEMATHESIS_VERSION=4.32.5
CANVAS_TEST_CACHE="${CANVAS_TEST_CACHE:-$CANVAS_ROOT/target/test-env}"

_schemathesis_venv() { # prints the venv folder, installing schemathesis there if needed
  python_venv "schemathesis-$SCHEMATHESIS_VERSION" "schemathesis==$SCHEMATHESIS_VERSION" schemathesis
}

# api_contract: the whole step (needs the canvas-server binary built).
api_contract() {
  step "API contract (Schemathesis $SCHEMATHESIS_VERSION against /api/v1/openapi.json)"
  local venv bin dir port pid base token log status
  venv=$(_schemathesis_venv)
  need_cmd curl curl
  bin=${CANVAS_SERVER_BIN:-$CANVAS_ROOT/target/debug/canvas-server}
  [[ -x $bin ]] || die "$bin was not built (cargo test --workspace --no-run)"
  dir=$(mktemp -d /tmp/canvas-api-contract.XXXXXX)
  on_exit "rm -rf '$dir'"
  port=$(free_port)
  base="http://127.0.0.1:$port"
  # signups from 127.0.0.1 are limited to 20 a minute by default; the run makes more
  # --allow-private-targets: the seeded webhook posts to 127.0.0.1 (and fails: a log entry)
  "$bin" --bind "127.0.0.1:$port" --data-dir "$dir/data" --log warn \
    --signup-rate-limit 100000 --allow-private-targets </dev/null >"$dir/server.log" 2>&1 &
  pid=$!
  on_exit "stop_pid $pid"
  local deadline=$((SECONDS + 60))
  until curl -fsS "$base/healthz" >/dev/null 2>&1; do
    if ! kill -0 "$pid" 2>/dev/null; then
      cat "$dir/server.log" >&2 || true
      die "canvas-server exited before answering on port $port (log above)"
    fi
    ((SECONDS < deadline)) || die "canvas-server did not answer on port $port within 60 s"
    sleep 0.2
  done
  info "canvas-server (pid $pid) on $base"
  "$venv/bin/python" "$CANVAS_ROOT/scripts/lib/api_contract_seed.py" "$base" \
    >"$dir/schemathesis.toml" || die "seeding the server failed"
  token=$(sed -n '1s/^# token: //p' "$dir/schemathesis.toml")
  [[ -n $token ]] || die "the seed printed no token"
  mkdir -p "$LOG_DIR"
  log="$LOG_DIR/schemathesis.log"
  local seed=${CANVAS_SCHEMATHESIS_SEED:-1} seed_args=()
  [[ $seed == random ]] || seed_args=(--seed "$seed")
  set +e
  # from the run's folder: schemathesis keeps a .schemathesis/ there
  (cd "$dir" && timeout --kill-after=10 170 "$venv/bin/schemathesis" --config-file "$dir/schemathesis.toml" \
    run "$base/api/v1/openapi.json" --url "$base" \
    --header "Authorization: Bearer $token" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --exclude-path /api/v1/auth/logout \
    --phases examples,coverage,fuzzing \
    --max-examples "${CANVAS_SCHEMATHESIS_EXAMPLES:-25}" "${seed_args[@]}" \
    --workers 2 --request-timeout 20 --generation-database none --no-color \
    --report junit --report-junit-path "$LOG_DIR/schemathesis-junit.xml") 2>&1 | tee "$log"
  status=${PIPESTATUS[0]}
  set -e
  if grep -qE 'panicked|request failed' "$dir/server.log"; then
    grep -E 'panicked|request failed' "$dir/server.log" | head -20 >&2
    die "the server logged a panic or a failed request (5xx) during the run (above)"
  fi
  ((status != 124 && status != 137)) || die "schemathesis did not finish within its 170 s bound"
  ((status == 0)) || die "schemathesis found responses that break the contract (log: ${log#"$CANVAS_ROOT"/})"
}
