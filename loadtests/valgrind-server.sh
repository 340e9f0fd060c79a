# Sourced by callgrind.sh and dhat.sh: starts the server under a valgrind
# tool, pinned to core 0, on a fresh data directory and the load-test
# catalog, and waits for its port.
#
#   start_under_valgrind OUT_DIR SERVER_BIN VALGRIND_ARGS...
#
# The caller sets `generator` (the load generator's binary, which writes
# the catalog). Sets `out` (OUT_DIR made absolute), `server_pid` and
# `port`; the server is killed and its data directory removed when the
# calling script exits.

start_under_valgrind() {
  out=$1
  local server=$2
  shift 2
  mkdir -p "$out"
  out=$(cd "$out" && pwd)
  data=$(mktemp -d)
  server_pid=
  trap '[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$data"' EXIT

  # The catalog: 10 teams of 10 reps (rep i in team i mod 10), so each join
  # alerts ten reps as in the full scenario's 100 teams of 1,000. Chat uses
  # one rep per team, as its full scenario does.
  "$generator" catalog --teams 10 --reps 100 --out "$out/catalog.toml"

  SWITCHBOARD_CONFIG="$out/catalog.toml" SWITCHBOARD_DATA_DIR="$data" \
    SWITCHBOARD_LISTEN=127.0.0.1:0 SWITCHBOARD_LOG_LEVEL=warn \
    taskset -c 0 valgrind "$@" "$server" > "$out/server.log" 2>&1 &
  server_pid=$!
  port=
  for _ in $(seq 600); do
    port=$(sed -n 's/.*switchboard listening on port \([0-9]*\).*/\1/p' "$out/server.log")
    [ -n "$port" ] && break
    sleep 0.5
  done
  [ -n "$port" ] || { echo "the server did not start; see $out/server.log" >&2; exit 1; }
}
