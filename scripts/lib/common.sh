# shellcheck shell=bash
# Shared helpers for scripts/test.sh and scripts/lib/services.sh. Source it; don't run it.

# errexit also inside $(...), where helpers like _secantus_venv run
shopt -s inherit_errexit

CANVAS_ROOT="${CANVAS_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"

# "==> title" step headers and messages, all on stderr except step headers (stdout).
step() { printf '\n==> %s\n' "$*"; }
info() { printf '    %s\n' "$*" >&2; }
warn() { printf 'test.sh: warning: %s\n' "$*" >&2; }
die() {
  printf '\ntest.sh: ERROR: %s\n' "$*" >&2
  exit 1
}

# --- cleanup on exit ------------------------------------------------------------------------
# on_exit CMD...: run CMD (one string, eval'd) when the shell exits, last registered first.
_CANVAS_EXIT_CMDS=()
on_exit() { _CANVAS_EXIT_CMDS+=("$*"); }
_canvas_run_exit_cmds() {
  local status=$? i
  trap - EXIT
  for ((i = ${#_CANVAS_EXIT_CMDS[@]} - 1; i >= 0; i--)); do
    eval "${_CANVAS_EXIT_CMDS[$i]}" || true
  done
  exit "$status"
}
trap _canvas_run_exit_cmds EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- tools ----------------------------------------------------------------------------------
have() { command -v "$1" >/dev/null 2>&1; }

_CANVAS_APT_UPDATED=0
# apt_install PKG...: install Debian packages (root only); fails loudly otherwise.
apt_install() {
  if [[ $EUID -ne 0 ]]; then
    die "need Debian package(s) $* but not running as root: install them (apt-get install $*)"
  fi
  have apt-get || die "need package(s) $* but apt-get is not available"
  if [[ $_CANVAS_APT_UPDATED -eq 0 ]]; then
    info "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null || die "apt-get update failed"
    _CANVAS_APT_UPDATED=1
  fi
  info "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null \
    || die "apt-get install $* failed"
}

# need_cmd CMD [DEBIAN_PACKAGE]: make sure CMD exists, installing the package if given.
need_cmd() {
  local cmd=$1 pkg=${2:-}
  have "$cmd" && return 0
  [[ -n $pkg ]] || die "required tool '$cmd' not found"
  apt_install "$pkg"
  have "$cmd" || die "'$cmd' still not found after installing $pkg"
}

# python_venv NAME SPEC BIN [MODULE]: print the folder of a virtualenv under
# $CANVAS_TEST_CACHE/NAME holding the PyPI requirement SPEC, installing it first when
# bin/BIN is missing there (or MODULE cannot be imported); a failed install leaves nothing.
python_venv() {
  local venv="$CANVAS_TEST_CACHE/$1" spec=$2 bin=$3 module=${4:-}
  if [[ -x $venv/bin/$bin ]] &&
    { [[ -z $module ]] || "$venv/bin/python" -c "import $module" >/dev/null 2>&1; }; then
    echo "$venv"
    return 0
  fi
  need_cmd python3 python3
  rm -rf "$venv"
  mkdir -p "$CANVAS_TEST_CACHE"
  info "installing $spec into $venv"
  if ! python3 -m venv "$venv" >/dev/null 2>&1; then
    rm -rf "$venv"
    apt_install python3-venv
    python3 -m venv "$venv" || die "python3 -m venv failed"
  fi
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-input "$spec" >&2 || {
    rm -rf "$venv"
    die "pip install $spec failed"
  }
  echo "$venv"
}

# free_port: print a TCP port on 127.0.0.1 that is free right now.
free_port() {
  if have python3; then
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
  elif have node; then
    node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
  else
    die "free_port needs python3 or node"
  fi
}

# stop_pid PID: SIGTERM a process this shell started, SIGKILL it after 10 s, and reap it.
stop_pid() {
  local pid=$1 i
  kill "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 100; i++)); do
    # a child that exited stays a zombie until waited for: ask ps for its state
    [[ $(ps -o stat= -p "$pid" 2>/dev/null) =~ ^[^Z] ]] || break
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# wait_until SECONDS DESCRIPTION CMD...: retry CMD every 0.1 s until it succeeds.
wait_until() {
  local secs=$1 what=$2
  shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      return 1
    fi
    sleep 0.1
  done
  info "$what: ready"
}
