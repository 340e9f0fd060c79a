# Sourced by callgrind.sh, dhat.sh, flamegraph.sh and syscalls.sh:
# checks what a script needs, starts the server pinned to core 0, on a
# fresh data directory and a load-test catalog, and waits for its port
# (or a relay's); and counts the units of work it has done.
#
#   require_built SERVER_BIN TOOL...
#   start_server OUT_DIR SERVER_BIN TEAMS REPS [WRAPPER...]
#   await_port NAME LOG
#   start_under_valgrind OUT_DIR SERVER_BIN VALGRIND_ARGS...
#   units_done join|routing|chat
#   await_units join|routing|chat COUNT
#
# WRAPPER is what the server runs under (valgrind and its flags), or
# nothing. With `seed_first=1` set by the caller, the server binary first
# runs once on its own, seeding the store, and is stopped before it starts
# under WRAPPER: the wrapped run then hashes no password, and its profile
# holds none of argon2's 19 MiB blocks. The caller sets `generator` (the
# load generator's binary, which writes the catalog). Sets `out` (OUT_DIR
# made absolute), `server_pid` and `port`; the server is killed and its
# data directory removed when the calling script exits. A fresh data
# directory means the server hashes every rep's password as it starts
# (argon2, on purpose slow): about 30 s for 1,000 reps, and minutes under
# valgrind.

require_built() {
  local server=$1 tool
  shift
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "needs $tool" >&2; exit 1; }
  done
  [ -x "$server" ] && [ -x "$generator" ] || {
    echo "build first: cargo build --release -p switchboard -p switchboard-loadtests" >&2
    exit 1
  }
}

start_server() {
  out=$1
  local server=$2 teams=$3 reps=$4
  shift 4
  mkdir -p "$out"
  out=$(cd "$out" && pwd)
  data=$(mktemp -d)
  server_pid=
  trap '[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$data"' EXIT

  "$generator" catalog --teams "$teams" --reps "$reps" --out "$out/catalog.toml"

  if [ -n "${seed_first:-}" ]; then
    run_on_data "$server" "$out/seed.log"
    kill -TERM "$server_pid"
    wait "$server_pid" || true
  fi
  run_on_data "$server" "$out/server.log" "$@"
}

# run_on_data SERVER_BIN LOG [WRAPPER...]: the server on `data` with the
# catalog, pinned to core 0, until it listens.
run_on_data() {
  local server=$1 log=$2
  shift 2
  SWITCHBOARD_CONFIG="$out/catalog.toml" SWITCHBOARD_DATA_DIR="$data" \
    SWITCHBOARD_LISTEN=127.0.0.1:0 SWITCHBOARD_LOG_LEVEL=warn \
    taskset -c 0 "$@" "$server" > "$log" 2>&1 &
  server_pid=$!
  await_port switchboard "$log"
}

# await_port NAME LOG: waits for the process `server_pid` to write "NAME
# listening on port N" to LOG and sets `port` to N; exits if it ends
# first or has not said so in five minutes (seeding a catalog's reps
# hashes each password, on purpose slowly).
await_port() {
  local name=$1 log=$2
  port=
  for _ in $(seq 600); do
    port=$(sed -n "s/.*$name listening on port \([0-9]*\).*/\1/p" "$log")
    [ -n "$port" ] && return
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.5
  done
  echo "$name did not start; see $log" >&2
  exit 1
}

# Under valgrind the catalog is 10 teams of 10 reps (rep i in team i mod
# 10), so each join alerts ten reps as in the full scenario's 100 teams of
# 1,000, with a tenth of the passwords to hash. Chat uses one rep per
# team, as its full scenario does.
start_under_valgrind() {
  local dir=$1 bin=$2
  shift 2
  start_server "$dir" "$bin" 10 100 valgrind "$@"
}

# The units a scenario counts, read from the server's metrics: customers
# or sessions that entered a queue (join, routing), or chat lines said.
units_done() {
  curl -s "http://127.0.0.1:$port/metrics" | case "$1" in
    join | routing) awk '$1 ~ /^switchboard_sessions_entered_total/ { n += $2 } END { print n + 0 }' ;;
    chat) awk '$1 ~ /^switchboard_protocol_messages_total/ && /direction="in"/ && /type="chat"/ { n += $2 }
               END { print n + 0 }' ;;
  esac
}

# Waits until the scenario has done COUNT units, or exits if the generator
# (started by the caller, `generator_pid`) has stopped.
await_units() {
  while [ "$(units_done "$1")" -lt "$2" ]; do
    kill -0 "$generator_pid" 2>/dev/null || { echo "the generator stopped; see $out/generator.log" >&2; exit 1; }
    sleep 0.5
  done
}
