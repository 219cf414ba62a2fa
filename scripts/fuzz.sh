#!/usr/bin/env bash
# Coverage-guided fuzzing of the engine with cargo fuzz (libFuzzer): `./scripts/fuzz.sh
# [TARGET...]` runs each target (default: all of them, see fuzz/Cargo.toml) for a bounded
# time, one process at a time, and ends with a table of executions, new corpus entries and
# crashes per target. README.md, "Fuzzing", says what each target feeds and checks.
#
# Steps: cargo-fuzz (installed with `cargo install` when missing) -> seeds (real frames and
# updates made by the engine's encoders: `cargo run -p canvas-engine --example fuzz_seeds`)
# -> build -> run each target -> optional corpus minimisation -> summary.
#
# Where things go: the corpus in fuzz/corpus/<target>/ (seeds and new entries), crashes,
# timeouts and out-of-memory inputs in fuzz/artifacts/<target>/, logs in
# target/fuzz-logs/<target>.log, the build in target/fuzz/. Commit new crash files with the
# fix: engine/tests/fuzz_corpus.rs replays every file of both folders in `cargo test`.
#
# The toolchain may be stable: cargo fuzz needs nightly flags (-Zsanitizer), so on a stable
# rustc the script sets RUSTC_BOOTSTRAP=1 for its own cargo fuzz commands only.
#
# Environment knobs:
#   FUZZ_TIME       seconds per target (default 60): libFuzzer's -max_total_time
#   FUZZ_TIMEOUT    seconds one input may take before it counts as a hang (default 10)
#   FUZZ_RSS_MB     memory limit of the fuzzing process in MiB (default 2048)
#   FUZZ_SANITIZER  address (default), leak, memory, thread or none
#   FUZZ_JOBS       libFuzzer -jobs (default 1: one process; the machine is shared)
#   FUZZ_CMIN=1     minimise each target's corpus afterwards (cargo fuzz cmin, set cover);
#                   FUZZ_TIME=0 with it only minimises
#   FUZZ_ARGS       extra libFuzzer arguments, e.g. "-max_len=4096"

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

FUZZ_TIME=${FUZZ_TIME:-60}
FUZZ_TIMEOUT=${FUZZ_TIMEOUT:-10}
FUZZ_RSS_MB=${FUZZ_RSS_MB:-2048}
FUZZ_SANITIZER=${FUZZ_SANITIZER:-address}
FUZZ_JOBS=${FUZZ_JOBS:-1}
CARGO_FUZZ_VERSION=0.13.2
TARGET_DIR="$ROOT/target/fuzz"
LOG_DIR="$ROOT/target/fuzz-logs"

step() { printf '\n==> %s\n' "$*"; }
info() { printf '    %s\n' "$*" >&2; }
die() {
  printf '\nfuzz.sh: ERROR: %s\n' "$*" >&2
  exit 1
}

# cargo fuzz with nightly features allowed on a stable toolchain
cargo_fuzz() {
  if rustc --version | grep -q nightly; then
    cargo fuzz "$@"
  else
    RUSTC_BOOTSTRAP=1 cargo fuzz "$@"
  fi
}

# the [[bin]] names of fuzz/Cargo.toml
all_targets() {
  sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^canvas-fuzz$'
}

count_files() {
  if [[ -d $1 ]]; then
    find "$1" -maxdepth 1 -type f | wc -l
  else
    echo 0
  fi
}

main() {
  local targets=("$@") t
  if ((${#targets[@]} == 0)); then
    mapfile -t targets < <(all_targets)
  fi
  for t in "${targets[@]}"; do
    all_targets | grep -qx "$t" || die "unknown target '$t' (known: $(all_targets | tr '\n' ' '))"
  done

  step "cargo-fuzz"
  if ! cargo fuzz --version >/dev/null 2>&1; then
    info "cargo install cargo-fuzz --version $CARGO_FUZZ_VERSION --locked"
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked || die "cannot install cargo-fuzz"
  fi
  info "$(cargo fuzz --version); $(rustc --version)"

  step "Seeds (fuzz/corpus/<target>/seed-*)"
  cargo run --quiet -p canvas-engine --example fuzz_seeds -- fuzz/corpus

  step "Build (sanitizer: $FUZZ_SANITIZER)"
  cargo_fuzz build --sanitizer "$FUZZ_SANITIZER" --target-dir "$TARGET_DIR" || die "cargo fuzz build failed"

  mkdir -p "$LOG_DIR"
  local summary=() crashed=0
  for t in "${targets[@]}"; do
    ((FUZZ_TIME > 0)) || break
    step "Fuzzing $t for ${FUZZ_TIME}s"
    local corpus="fuzz/corpus/$t" artifacts="fuzz/artifacts/$t" log="$LOG_DIR/$t.log"
    mkdir -p "$corpus" "$artifacts"
    local corpus_before artifacts_before status runs
    corpus_before=$(count_files "$corpus")
    artifacts_before=$(count_files "$artifacts")
    set +e
    # shellcheck disable=SC2086 # FUZZ_ARGS is split on purpose
    cargo_fuzz run "$t" --sanitizer "$FUZZ_SANITIZER" --target-dir "$TARGET_DIR" "$corpus" -- \
      -max_total_time="$FUZZ_TIME" -timeout="$FUZZ_TIMEOUT" -rss_limit_mb="$FUZZ_RSS_MB" \
      -artifact_prefix="$artifacts/" -print_final_stats=1 \
      $( ((FUZZ_JOBS > 1)) && echo "-jobs=$FUZZ_JOBS -workers=$FUZZ_JOBS") \
      ${FUZZ_ARGS:-} 2>&1 | tee "$log" | grep -E '^(#[0-9]+.*(pulse|DONE)|==[0-9]+==|SUMMARY|Done|artifact_prefix|.*panicked)'
    status=${PIPESTATUS[0]}
    set -e
    runs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\)$/\1/p' "$log" | tail -1)
    [[ -n $runs ]] || runs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$log" | tail -1)
    local new_crashes=$(($(count_files "$artifacts") - artifacts_before))
    ((status == 0 && new_crashes == 0)) || crashed=1
    summary+=("$(printf '%-10s %12s %8s %8s %8s' "$t" "${runs:-?}" \
      "$(($(count_files "$corpus") - corpus_before))" "$new_crashes" "$status")")
  done

  if [[ ${FUZZ_CMIN:-0} == 1 ]]; then
    for t in "${targets[@]}"; do
      step "Minimising fuzz/corpus/$t"
      local before
      before=$(count_files "fuzz/corpus/$t")
      # set cover over edges (no hit counters, no comparison features): the fewest files that
      # keep every edge covered, several times fewer than a plain -merge=1
      cargo_fuzz cmin "$t" --sanitizer "$FUZZ_SANITIZER" --target-dir "$TARGET_DIR" "fuzz/corpus/$t" \
        -- -set_cover_merge=1 -use_counters=0 -use_cmp=0 >"$LOG_DIR/$t.cmin.log" 2>&1 || die "cargo fuzz cmin $t failed (log: $LOG_DIR/$t.cmin.log)"
      info "$before -> $(count_files "fuzz/corpus/$t") files"
    done
    # cmin names files by content hash: put the named seeds back
    cargo run --quiet -p canvas-engine --example fuzz_seeds -- fuzz/corpus
  fi

  step "Summary (${FUZZ_TIME}s per target; logs: ${LOG_DIR#"$ROOT"/})"
  printf '%-10s %12s %8s %8s %8s\n' target executions +corpus crashes exit
  printf '%s\n' "${summary[@]}"
  ((crashed == 0)) || die "a target crashed: see fuzz/artifacts/<target>/ and the logs"
}

main "$@"
