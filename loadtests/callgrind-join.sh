#!/usr/bin/env bash
# Counts the server's instructions per customer in the join-to-alert
# scenario, under valgrind's callgrind. docs/performance.md (fourteenth
# round) says why: an instruction count is the same from run to run within
# a fraction of a percent, whatever else the machine is doing, where CPU
# time on these shared machines swings by a third. It counts user space
# only (the kernel's half of a join is not in it) and says nothing about
# cache misses, so it tells whether a change removed work, not what a
# second of CPU buys.
#
#   loadtests/callgrind-join.sh [SERVER_BIN] [OUT_DIR] [WINDOW_SECS]
#
# The server runs under callgrind with instrumentation off (its start and
# the 100 reps' logins, each an argon2 hash, run at full speed); once 40
# customers have joined it is switched on for WINDOW_SECS (default 30) in
# the steady middle of the phase, where customers join, are alerted to ten
# reps and end at 10 a second, so the window holds whole customer
# lifecycles in all their stages. Prints the instructions per customer
# joined in the window; OUT_DIR keeps the profile (callgrind.out.1, read it
# with callgrind_annotate) and a top-functions list. About 2 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

server=${1:-target/release/switchboard}
out=${2:-loadtests/results/callgrind-$(date +%s)}
window=${3:-30}
generator=target/release/switchboard-loadtests
for tool in valgrind callgrind_control callgrind_annotate taskset curl; do
  command -v "$tool" >/dev/null || { echo "needs $tool" >&2; exit 1; }
done
[ -x "$server" ] && [ -x "$generator" ] || {
  echo "build first: cargo build --release -p switchboard -p switchboard-loadtests" >&2
  exit 1
}
mkdir -p "$out"
out=$(cd "$out" && pwd)
data=$(mktemp -d)
server_pid=
trap '[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$data"' EXIT

# The catalog: 10 teams of 10 reps (rep i in team i mod 10), so each join
# alerts ten reps as in the full scenario's 100 teams of 1,000.
"$generator" catalog --teams 10 --reps 100 --out "$out/catalog.toml"

SWITCHBOARD_CONFIG="$out/catalog.toml" SWITCHBOARD_DATA_DIR="$data" \
  SWITCHBOARD_LISTEN=127.0.0.1:0 SWITCHBOARD_LOG_LEVEL=warn \
  taskset -c 0 valgrind --tool=callgrind --instr-atstart=no \
  --callgrind-out-file="$out/callgrind.out" "$server" > "$out/server.log" 2>&1 &
server_pid=$!
port=
for _ in $(seq 600); do
  port=$(sed -n 's/.*switchboard listening on port \([0-9]*\).*/\1/p' "$out/server.log")
  [ -n "$port" ] && break
  sleep 0.5
done
[ -n "$port" ] || { echo "the server did not start; see $out/server.log" >&2; exit 1; }

joined() {
  curl -s "http://127.0.0.1:$port/metrics" |
    awk '$1 ~ /^switchboard_sessions_entered_total/ { n += $2 } END { print n + 0 }'
}

# The phase outlasts the window: 4 s to the first 40, 15 s to spare.
duration=$((window + 15))
taskset -c 1 "$generator" run --scenario join-alert \
  --server "ws://127.0.0.1:$port/ws" --server-pid "$server_pid" \
  --reps 100 --teams 10 --rate 10 --duration "$duration" \
  --out "$out/generator" > "$out/generator.log" 2>&1 &
generator_pid=$!

while [ "$(joined)" -lt 40 ]; do
  kill -0 "$generator_pid" 2>/dev/null || { echo "the generator stopped; see $out/generator.log" >&2; exit 1; }
  sleep 0.5
done
callgrind_control --instr=on "$server_pid" > /dev/null 2>&1
first=$(joined)
sleep "$window"
callgrind_control --dump "$server_pid" > /dev/null 2>&1
last=$(joined)
callgrind_control --instr=off "$server_pid" > /dev/null 2>&1
wait "$generator_pid"

profile="$out/callgrind.out.1"
instructions=$(sed -n 's/^summary: //p' "$profile")
customers=$((last - first))
callgrind_annotate "$profile" > "$out/top-self.txt" 2>/dev/null
callgrind_annotate --inclusive=yes "$profile" > "$out/top-inclusive.txt" 2>/dev/null
grep -E '"(alerts_missing|errors)":' "$out/generator/result.json" | head -2
echo "customers joined in the window: $customers"
echo "instructions in the window: $instructions"
echo "instructions per customer: $((instructions / customers))"
echo "profile: $profile"
