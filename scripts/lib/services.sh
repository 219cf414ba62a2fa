# shellcheck shell=bash
# Test services for scripts/test.sh. Source it after common.sh; each setup_* function exports
# one URL for the Rust tests and registers its own cleanup (on_exit). Each fails loudly (die)
# when its service cannot be had; none of them silently skips.
#
#   setup_postgres -> DATABASE_URL_TEST  postgres://postgres@127.0.0.1:PORT/DB
#       The machine's PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth) when
#       pg_isready and a query succeed, else a throwaway cluster (initdb + pg_ctl, run as the
#       postgres user when we are root) on a free port. Either way DB is a fresh database
#       made for this run (canvas_test_<random>) and dropped at exit, so runs from several
#       work trees never share a database.
#   setup_redis    -> REDIS_URL_TEST     redis://127.0.0.1:PORT/0
#       The machine's Redis on 127.0.0.1:6379 when `redis-cli ping` answers, else a throwaway
#       redis-server (no persistence) on a free port. Keys and channels are shared with any
#       other user of that server: tests must namespace them (e.g. by random canvas ids).
#   setup_mongodb  -> MONGODB_URI_TEST   mongodb://127.0.0.1:PORT/?directConnection=true
#       Always a throwaway secantusdb (MongoDB wire-compatible, from PyPI) on a free port,
#       installed into a venv cached under target/test-env/ and started with its data in a
#       temporary folder removed at exit.
#   setup_mariadb  -> MYSQL_URL_TEST     mysql://root@127.0.0.1:PORT
#       The machine's MariaDB on 127.0.0.1:3306 (root, no password) when a query succeeds,
#       else a throwaway mariadbd (mariadb-install-db into a temporary folder) on a free
#       port. The analytics tests create their own databases there and drop them.
#   setup_moto     -> CANVAS_TEST_S3_ENDPOINT  http://127.0.0.1:PORT
#       Always a throwaway moto_server (an S3 API, from PyPI moto[server], installed into a
#       venv cached under target/test-env/) on a free port; the analytics tests create
#       their buckets in it.
#
# A URL variable that is already set is used as given (checked, not replaced).
# CANVAS_TEST_FORCE_THROWAWAY=1 skips the machine's PostgreSQL and Redis (to test the
# throwaway paths).

SECANTUSDB_VERSION="0.7.0b3"
CANVAS_TEST_CACHE="${CANVAS_TEST_CACHE:-$CANVAS_ROOT/target/test-env}"

_rand_suffix() { printf '%s_%s' "$$" "$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')"; }

# --- PostgreSQL -----------------------------------------------------------------------------

# _pg_bindir: folder with initdb and pg_ctl (Debian keeps them out of PATH).
_pg_bindir() {
  local d
  for d in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V -r); do
    if [[ -x $d/initdb && -x $d/pg_ctl ]]; then
      echo "$d"
      return 0
    fi
  done
  if have initdb && have pg_ctl; then
    dirname "$(readlink -f "$(command -v pg_ctl)")"
    return 0
  fi
  return 1
}

_pg_query() { # host port db sql
  PGCONNECT_TIMEOUT=5 psql -X -w -q -At -v ON_ERROR_STOP=1 -h "$1" -p "$2" -U postgres -d "$3" -c "$4"
}

_pg_drop_like() { # host port pattern
  local name
  for name in $(_pg_query "$1" "$2" postgres "SELECT datname FROM pg_database WHERE datname LIKE '$3'" 2>/dev/null); do
    _pg_query "$1" "$2" postgres "DROP DATABASE IF EXISTS \"$name\" WITH (FORCE)" >/dev/null 2>&1 || true
  done
}

_pg_start_throwaway() { # sets _PG_PORT
  local bindir dir port as_pg=()
  bindir=$(_pg_bindir) || {
    apt_install postgresql
    bindir=$(_pg_bindir) || die "PostgreSQL's initdb/pg_ctl not found even after installing postgresql"
  }
  dir=$(mktemp -d /tmp/canvas-test-pg.XXXXXX)
  on_exit "rm -rf '$dir'"
  if [[ $EUID -eq 0 ]]; then
    # initdb refuses to run as root: run the cluster as the postgres user
    id postgres >/dev/null 2>&1 || apt_install postgresql
    id postgres >/dev/null 2>&1 || die "no 'postgres' user to run a throwaway PostgreSQL as"
    chown postgres: "$dir"
    as_pg=(runuser -u postgres --)
  fi
  info "throwaway PostgreSQL: initdb in $dir ($bindir)"
  "${as_pg[@]}" "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 \
    >"$dir/initdb.log" 2>&1 || {
    cat "$dir/initdb.log" >&2
    die "initdb failed"
  }
  port=$(free_port)
  "${as_pg[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null || {
    cat "$dir/server.log" >&2
    die "throwaway PostgreSQL did not start (log above)"
  }
  on_exit "${as_pg[*]} '$bindir/pg_ctl' -D '$dir/data' -m immediate -w stop >/dev/null 2>&1"
  _PG_PORT=$port
}

setup_postgres() {
  step "PostgreSQL for the tests"
  need_cmd psql postgresql-client
  need_cmd pg_isready postgresql-client
  if [[ -n ${DATABASE_URL_TEST:-} ]]; then
    PGCONNECT_TIMEOUT=5 psql -X -w -q -At -d "$DATABASE_URL_TEST" -c 'select 1' >/dev/null \
      || die "DATABASE_URL_TEST is set but does not answer a query"
    info "using the given DATABASE_URL_TEST"
    return 0
  fi
  local port=5432
  if [[ ${CANVAS_TEST_FORCE_THROWAWAY:-0} != 1 ]] &&
    pg_isready -q -h 127.0.0.1 -p 5432 -t 5 &&
    _pg_query 127.0.0.1 5432 postgres 'select 1' >/dev/null 2>&1; then
    info "using the PostgreSQL on 127.0.0.1:5432"
  else
    if [[ ${CANVAS_TEST_FORCE_THROWAWAY:-0} == 1 ]]; then
      info "CANVAS_TEST_FORCE_THROWAWAY=1: not using 127.0.0.1:5432"
    else
      info "no usable PostgreSQL on 127.0.0.1:5432 (user postgres): starting a throwaway one"
    fi
    _pg_start_throwaway
    port=$_PG_PORT
  fi
  local db
  db="canvas_test_$(_rand_suffix)"
  _pg_query 127.0.0.1 "$port" postgres "CREATE DATABASE $db" >/dev/null \
    || die "could not create database $db on 127.0.0.1:$port"
  on_exit "_pg_query 127.0.0.1 $port postgres 'DROP DATABASE IF EXISTS $db WITH (FORCE)' >/dev/null 2>&1"
  # The end-to-end tests create one database per server, named ${db}_e2e_*: drop them too.
  on_exit "_pg_drop_like 127.0.0.1 $port '${db}_e2e_%'"
  export DATABASE_URL_TEST="postgres://postgres@127.0.0.1:$port/$db"
  info "DATABASE_URL_TEST=$DATABASE_URL_TEST"
}

# --- Redis ----------------------------------------------------------------------------------

_redis_ping() { # port
  [[ $(timeout 5 redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null) == PONG ]]
}

setup_redis() {
  step "Redis for the tests"
  need_cmd redis-cli redis-tools
  if [[ -n ${REDIS_URL_TEST:-} ]]; then
    [[ $(timeout 5 redis-cli -u "$REDIS_URL_TEST" ping 2>/dev/null) == PONG ]] \
      || die "REDIS_URL_TEST is set but does not answer PING"
    info "using the given REDIS_URL_TEST"
    return 0
  fi
  local port=6379
  if [[ ${CANVAS_TEST_FORCE_THROWAWAY:-0} != 1 ]] && _redis_ping 6379; then
    info "using the Redis on 127.0.0.1:6379"
  else
    info "no Redis answering on 127.0.0.1:6379 (or forced): starting a throwaway one"
    need_cmd redis-server redis-server
    local dir
    dir=$(mktemp -d /tmp/canvas-test-redis.XXXXXX)
    on_exit "rm -rf '$dir'"
    port=$(free_port)
    # in the foreground of a background job, so this shell owns (and reaps) its pid
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
      --dir "$dir" --logfile "$dir/redis.log" </dev/null >/dev/null 2>&1 &
    local pid=$!
    on_exit "stop_pid $pid"
    wait_until 10 "throwaway Redis on 127.0.0.1:$port" _redis_ping "$port" || {
      cat "$dir/redis.log" >&2 || true
      die "throwaway Redis did not answer PING on port $port"
    }
  fi
  export REDIS_URL_TEST="redis://127.0.0.1:$port/0"
  info "REDIS_URL_TEST=$REDIS_URL_TEST"
}

# --- MongoDB (secantusdb) -------------------------------------------------------------------

_secantus_venv() { # prints the venv folder, installing secantusdb there if needed
  python_venv "secantusdb-$SECANTUSDB_VERSION" "secantusdb==$SECANTUSDB_VERSION" secantusd-py pymongo
}

_mongo_ping() { # venv port
  "$1/bin/python" - "$2" <<'EOF'
import sys, pymongo
c = pymongo.MongoClient(f"mongodb://127.0.0.1:{sys.argv[1]}/?directConnection=true",
                        serverSelectionTimeoutMS=1000)
c.admin.command("ping")
EOF
}

setup_mongodb() {
  step "MongoDB-compatible secantusdb for the tests"
  local venv dir port pid
  venv=$(_secantus_venv)
  # The MongoDB fault test starts (and stops) a private instance of its own with this.
  export CANVAS_TEST_SECANTUSD="$venv/bin/secantusd-py"
  if [[ -n ${MONGODB_URI_TEST:-} ]]; then
    info "using the given MONGODB_URI_TEST (not checked)"
    return 0
  fi
  dir=$(mktemp -d /tmp/canvas-test-mongo.XXXXXX)
  on_exit "rm -rf '$dir'"
  port=$(free_port)
  # run from its own folder: secantusd-py auto-discovers ./secantusd.toml
  (cd "$dir" && exec "$venv/bin/secantusd-py" --host 127.0.0.1 --port "$port" \
    --storage-path "$dir/data" --log-level WARNING </dev/null >"$dir/secantusd.log" 2>&1) &
  pid=$!
  on_exit "stop_pid $pid"
  local deadline=$((SECONDS + 30))
  until _mongo_ping "$venv" "$port" >/dev/null 2>&1; do
    if ! kill -0 "$pid" 2>/dev/null; then
      cat "$dir/secantusd.log" >&2 || true
      die "secantusd-py exited before answering on port $port (log above)"
    fi
    if ((SECONDS >= deadline)); then
      cat "$dir/secantusd.log" >&2 || true
      die "secantusd-py did not answer a ping on port $port within 30 s"
    fi
    sleep 0.1
  done
  info "secantusdb (pid $pid) on 127.0.0.1:$port: ready"
  export MONGODB_URI_TEST="mongodb://127.0.0.1:$port/?directConnection=true"
  info "MONGODB_URI_TEST=$MONGODB_URI_TEST"
}

# --- MariaDB (analytics database sources) ---------------------------------------------------

_mysql_ping() { # port
  timeout 5 mariadb -h 127.0.0.1 -P "$1" -u root --protocol=TCP -N -e 'select 1' >/dev/null 2>&1
}

setup_mariadb() {
  step "MariaDB for the tests"
  need_cmd mariadb mariadb-client
  if [[ -n ${MYSQL_URL_TEST:-} ]]; then
    info "using the given MYSQL_URL_TEST (not checked)"
    return 0
  fi
  local port=3306
  if [[ ${CANVAS_TEST_FORCE_THROWAWAY:-0} != 1 ]] && _mysql_ping 3306; then
    info "using the MariaDB on 127.0.0.1:3306"
  else
    info "no MariaDB answering on 127.0.0.1:3306 (or forced): starting a throwaway one"
    need_cmd mariadbd mariadb-server
    local dir pid
    dir=$(mktemp -d /tmp/canvas-test-mariadb.XXXXXX)
    on_exit "rm -rf '$dir'"
    port=$(free_port)
    mariadb-install-db --no-defaults --datadir="$dir/data" --auth-root-authentication-method=normal \
      --user="$(id -un)" >"$dir/install.log" 2>&1 || {
      cat "$dir/install.log" >&2
      die "mariadb-install-db failed"
    }
    mariadbd --no-defaults --datadir="$dir/data" --port="$port" --bind-address=127.0.0.1 \
      --socket="$dir/mysqld.sock" --pid-file="$dir/mysqld.pid" --user="$(id -un)" \
      </dev/null >"$dir/server.log" 2>&1 &
    pid=$!
    on_exit "stop_pid $pid"
    wait_until 30 "throwaway MariaDB on 127.0.0.1:$port" _mysql_ping "$port" || {
      cat "$dir/server.log" >&2 || true
      die "throwaway MariaDB did not answer on port $port"
    }
  fi
  export MYSQL_URL_TEST="mysql://root@127.0.0.1:$port"
  info "MYSQL_URL_TEST=$MYSQL_URL_TEST"
}

# --- S3 API (moto) --------------------------------------------------------------------------

MOTO_VERSION="5.2.5"

_moto_venv() { # prints the venv folder, installing moto[server] there if needed
  python_venv "moto-$MOTO_VERSION" "moto[server]==$MOTO_VERSION" moto_server
}

_moto_ping() { # port
  [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/moto-api/" 2>/dev/null) == 200 ]]
}

setup_moto() {
  step "S3 API (moto_server) for the tests"
  if [[ -n ${CANVAS_TEST_S3_ENDPOINT:-} ]]; then
    info "using the given CANVAS_TEST_S3_ENDPOINT (not checked)"
    return 0
  fi
  need_cmd curl curl
  local venv dir port pid
  venv=$(_moto_venv)
  dir=$(mktemp -d /tmp/canvas-test-moto.XXXXXX)
  on_exit "rm -rf '$dir'"
  port=$(free_port)
  "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" </dev/null >"$dir/moto.log" 2>&1 &
  pid=$!
  on_exit "stop_pid $pid"
  wait_until 60 "moto_server on 127.0.0.1:$port" _moto_ping "$port" || {
    cat "$dir/moto.log" >&2 || true
    die "moto_server did not answer on port $port"
  }
  export CANVAS_TEST_S3_ENDPOINT="http://127.0.0.1:$port"
  info "CANVAS_TEST_S3_ENDPOINT=$CANVAS_TEST_S3_ENDPOINT"
}
