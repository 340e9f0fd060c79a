#!/usr/bin/env bash
# Counts the system calls of a routed session or a chat line, in
# Switchboard and in the two relays, one after the other at the scale of
# the run of record (1,000 reps in 100 teams for Switchboard; 400 routing
# lanes, or 200 chat sessions with two lines in flight each).
#
# Frames out are the largest item of the server's time (flamegraph.sh),
# and on loopback each `sendto` also runs the receiver's TCP, so what
# compares is how many a unit of work takes beside the relays. Calls are
# steadier than time: in three runs of the thirty-seventh round, routing's
# counts a session moved by 2% for the relays and 10% for Switchboard (how
# many frames of one socket share a write depends on timing), and chat's
# estimated counts a line (below) by 4 to 9%, where every rate moved by a
# fifth or more.
#
#   loadtests/syscalls.sh routing|chat [SERVER_BIN] [OUT_DIR] [SECONDS]
#
# Each server runs pinned to core 0 and the generator to core 1. Once a
# scenario is under way, `perf stat` counts the server's calls for
# SECONDS (default 3). A unit is a routed session or a chat line.
# - Routing: each session is one new connection, so the units are the
#   connections the server accepted in the window, counted by the kernel
#   for every server alike.
# - Chat: nothing in the kernel counts lines and the relays keep no
#   count, so for every server the units are the generator's rate over
#   its whole phase times SECONDS, an estimate. (Switchboard's metrics,
#   read just before and after `perf stat`, span its attaching too: in
#   routing they counted 7% more sessions than connections accepted.)
# Counting each call through a tracepoint costs the server a little of
# its core: read the counts from such a run, not its rates. Needs perf
# (Debian's linux-perf) allowed to read the syscalls tracepoints (root,
# or kernel.perf_event_paranoid at most 1). OUT_DIR keeps each server's
# counts and generator result, and the table it prints (syscalls.txt).
# About a minute and a half, half of it the server hashing the reps'
# passwords as it starts.
set -euo pipefail
cd "$(dirname "$0")/.."

scenario=${1:-}
case "$scenario" in
  routing) unit=session rate=sessions_per_sec ;;
  chat) unit=line rate=messages_per_sec ;;
  *) echo "usage: $0 routing|chat [SERVER_BIN] [OUT_DIR] [SECONDS]" >&2; exit 2 ;;
esac
server=${2:-target/release/switchboard}
out=${3:-loadtests/results/syscalls-$scenario-$(date +%s)}
seconds=${4:-3}
# The phase outlasts the count, with time to get under way.
duration=$((seconds + 6))
generator=target/release/switchboard-loadtests
. loadtests/server.sh
require_built "$server" perf taskset curl python3
calls=(sendto recvfrom epoll_wait futex pwrite64 pread64)
# The connections accepted: every server here accepts through tokio's
# listener (Switchboard and the stack relay in Switchboard's own workers),
# which calls `accept4` until it fails with EAGAIN, so only the calls that
# returned a socket count.
events=(-e "$(printf 'syscalls:sys_enter_%s,' "${calls[@]}")context-switches"
  -e syscalls:sys_exit_accept4 --filter 'ret >= 0')

# Starts the generator with the scenario's own flags ("$@") against the
# server on `port`, in the protocol `protocol`.
start_generator() {
  taskset -c 1 "$generator" run "$@" --protocol "$protocol" --reps 1000 --teams 100 \
    --server "ws://127.0.0.1:$port/ws" --server-pid "$pid" --duration "$duration" \
    --out "$dir/generator" > "$dir/generator.log" 2>&1 &
  generator_pid=$!
}

# measure NAME PID PROTOCOL: runs the scenario against the server on
# `port` and counts its calls in the steady middle of the phase.
measure() {
  local dir="$out/$1" pid=$2 protocol=$3
  mkdir -p "$dir"
  case "$scenario" in
    routing)
      start_generator --scenario routing --connections 400
      ;;
    chat)
      start_generator --scenario chat --connections 200 --balls 2
      ;;
  esac
  # Warm-up (up to 2 s) and a second of the measured window.
  sleep 4
  perf stat -x, "${events[@]}" -p "$pid" -o "$dir/stat.csv" -- sleep "$seconds"
  wait "$generator_pid"
}

# stop: ends the server or relay measured last. `server_pid` is what
# server.sh's exit trap kills, so a relay left by a failure goes too.
stop() {
  kill "$server_pid"
  wait "$server_pid" 2>/dev/null || true
  server_pid=
}

start_server "$out" "$server" 100 1000
measure switchboard "$server_pid" switchboard
stop

for stack in tungstenite actix; do
  taskset -c 0 "$generator" relay --stack "$stack" > "$out/relay-$stack.log" 2>&1 &
  server_pid=$!
  await_port relay "$out/relay-$stack.log"
  measure "relay-$stack" "$server_pid" relay
  stop
done

python3 - "$out" "$scenario" "$rate" "$unit" "$seconds" "${calls[@]}" context-switches accepted <<'EOF' | tee "$out/syscalls.txt"
import csv, json, sys
out, scenario, rate, unit, seconds, *counted = sys.argv[1:]
names = {"switchboard": "Switchboard", "relay-tungstenite": "bare relay",
         "relay-actix": "stack relay"}
print(f"{scenario}: calls per {unit}, {seconds} s counted in the steady middle")
print(f"{'server':<12} {unit + 's/s':>10} {'counted':>8} " + " ".join(f"{c:>10}" for c in counted))
for run, name in names.items():
    result = json.load(open(f"{out}/{run}/generator/result.json"))
    # The generator files a run under the protocol it spoke.
    protocol = "switchboard" if run == "switchboard" else "relay"
    per_sec = result[protocol][scenario]["figures"][rate]
    count = {}
    for row in csv.reader(open(f"{out}/{run}/stat.csv")):
        if len(row) > 2 and row[0].strip().isdigit():
            event = row[2].removeprefix("syscalls:sys_enter_")
            count["accepted" if event.endswith("accept4") else event] = int(row[0])
    if scenario == "routing":
        units = count.get("accepted", 0)
    else:
        units = per_sec * float(seconds)
    if not units:
        sys.exit(f"{name}: no {unit}s in the window; see {out}/{run}/generator.log")
    cells = " ".join(f"{count.get(c, 0) / units:>10.2f}" for c in counted)
    print(f"{name:<12} {per_sec:>10,.0f} {units:>8,.0f} {cells}")
EOF
