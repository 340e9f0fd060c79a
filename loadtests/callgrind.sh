#!/usr/bin/env bash
# Counts the server's instructions per unit of work under valgrind's
# callgrind: per customer in the join-to-alert scenario (`join`), per
# routed session (`routing`), or per chat line in the chat scenario
# (`chat`). docs/performance-rounds.md (round 14) says why: an
# instruction count is the same from run to run within a fraction of a
# percent, whatever else the machine is doing, where CPU time on these
# shared machines swings by a third. It counts user space only (the
# kernel's half of the work is not in it) and says nothing about cache
# misses, so it tells whether a change removed work, not what a second of
# CPU buys.
#
#   loadtests/callgrind.sh join|routing|chat [SERVER_BIN] [OUT_DIR] [WINDOW_SECS]
#
# The server runs under callgrind with instrumentation off (its start, the
# 100 reps' logins, each an argon2 hash, and chat's set-up run at full
# speed); once the scenario is under way it is switched on for WINDOW_SECS
# (default 30) in the steady middle of the phase, so the window holds whole
# lifecycles in all their stages:
# - join: customers join, are alerted to ten reps and end at 10 a second;
#   counted once 40 have joined, per customer joined in the window.
# - routing: one customer lane, each session joined, accepted, ended and
#   the next started, every step durable; counted once 50 sessions have
#   entered a queue, per session entered in the window. One lane, for the
#   reason given for chat below; even so, five runs of one build spread
#   over 1.2% (362,000 to 366,464), more than join's or chat's counts.
# - chat: one session, its customer and rep answering each other's lines
#   one at a time; counted once 50 lines have been said, per line said in
#   the window (a line is a durable write, a reply and two events). One line
#   at a time, because lines in flight together share flushes and socket
#   writes differently from run to run: 20 sessions with two lines each
#   counted 63,419 and 61,461 instructions a line in two runs, one line at
#   a time 64,333 and 64,377 (20 s windows; a count depends on the window's
#   length, so compare counts of one length).
# Prints the instructions per unit; OUT_DIR keeps the profile
# (callgrind.out.1, read it with callgrind_annotate) and top-functions
# lists. About 2 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

scenario=${1:-}
case "$scenario" in
  join | routing | chat) ;;
  *) echo "usage: $0 join|routing|chat [SERVER_BIN] [OUT_DIR] [WINDOW_SECS]" >&2; exit 2 ;;
esac
server=${2:-target/release/switchboard}
out=${3:-loadtests/results/callgrind-$scenario-$(date +%s)}
window=${4:-30}
generator=target/release/switchboard-loadtests
. loadtests/server.sh
require_built "$server" valgrind callgrind_control callgrind_annotate taskset curl
start_under_valgrind "$out" "$server" --tool=callgrind --instr-atstart=no \
  --callgrind-out-file="$out/callgrind.out"

# Starts the generator with the scenario's own flags ("$@") and the ones
# every count shares. The phase outlasts the window, with time to spare for
# getting under way.
start_generator() {
  taskset -c 1 "$generator" run "$@" \
    --server "ws://127.0.0.1:$port/ws" --server-pid "$server_pid" \
    --duration "$duration" --out "$out/generator" > "$out/generator.log" 2>&1 &
  generator_pid=$!
}
case "$scenario" in
  join)
    unit=customer start_at=40 duration=$((window + 15))
    start_generator --scenario join-alert --reps 100 --teams 10 --rate 10
    ;;
  routing)
    unit=session start_at=50 duration=$((window + 30))
    start_generator --scenario routing --reps 100 --teams 10 --connections 1
    ;;
  chat)
    unit=line start_at=50 duration=$((window + 30))
    start_generator --scenario chat --teams 10 --connections 1 --balls 1
    ;;
esac

await_units "$scenario" "$start_at"
callgrind_control --instr=on "$server_pid" > /dev/null 2>&1
first=$(units_done "$scenario")
sleep "$window"
callgrind_control --dump "$server_pid" > /dev/null 2>&1
last=$(units_done "$scenario")
callgrind_control --instr=off "$server_pid" > /dev/null 2>&1
wait "$generator_pid"

profile="$out/callgrind.out.1"
instructions=$(sed -n 's/^summary: //p' "$profile")
units=$((last - first))
callgrind_annotate "$profile" > "$out/top-self.txt" 2>/dev/null
callgrind_annotate --inclusive=yes "$profile" > "$out/top-inclusive.txt" 2>/dev/null
grep -E '"(alerts_missing|errors)":' "$out/generator/result.json" | head -2
echo "${unit}s in the window: $units"
echo "instructions in the window: $instructions"
echo "instructions per $unit: $((instructions / units))"
echo "profile: $profile"
