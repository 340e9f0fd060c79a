#!/usr/bin/env bash
# Samples where the server's core goes, kernel and user space together, in
# one scenario at the scale of the run of record (`all`'s own flags: 1,000
# reps in 100 teams; 1,000 joins a second, 400 routing lanes, or 200 chat
# sessions with two lines in flight each), and draws it as a flamegraph.
# callgrind.sh counts user-space instructions, repeatable but blind to the
# kernel, which holds about half of a routed session's time; this shows
# time, kernel included, and varies from run to run as the machine does,
# so read shares from it, not small differences between two builds.
#
#   loadtests/flamegraph.sh join|routing|chat [SERVER_BIN] [OUT_DIR] [SECONDS]
#
# perf samples the server at 499 Hz for SECONDS (default 5) once the
# scenario is under way, with DWARF call stacks of up to 64 KiB: release
# builds keep no frame pointers (with perf's `-g` no stack reached its
# thread's root), and actix's nested futures make stacks deep (with 16
# KiB copies a fifth of them came out unrooted). Copying
# each sample's stack costs the server's core as well, so read the shares
# from a sampled run, not its throughput or latency. Needs perf (Debian's
# linux-perf) allowed to sample the server and the kernel (root, or
# kernel.perf_event_paranoid at most 1) and inferno's two tools (`cargo
# install inferno`). OUT_DIR keeps perf.data; folded.txt, one line per
# distinct stack with its weight last (kernel frames end in `_[k]`);
# flamegraph.svg (open it in a browser: hovering names a frame and its
# share, clicking zooms); and shares.txt, which it prints: the kernel's
# share of the samples, each thread's, and what they were doing. About 2
# minutes, half of it the server hashing 1,000 reps' passwords as it
# starts. TEAMS=N (default 100) spreads the same 1,000 reps over N teams,
# so that two profiles of the join tell what a told rep costs (1,000
# teams of one against 100 of ten: performance-rounds.md, round 44).
set -euo pipefail
cd "$(dirname "$0")/.."

scenario=${1:-}
case "$scenario" in
  join | routing | chat) ;;
  *) echo "usage: $0 join|routing|chat [SERVER_BIN] [OUT_DIR] [SECONDS]" >&2; exit 2 ;;
esac
server=${2:-target/release/switchboard}
out=${3:-loadtests/results/flamegraph-$scenario-$(date +%s)}
seconds=${4:-5}
duration=$((seconds + 15))
generator=target/release/switchboard-loadtests
. loadtests/server.sh
require_built "$server" perf inferno-collapse-perf inferno-flamegraph taskset curl
teams=${TEAMS:-100}
start_server "$out" "$server" "$teams" 1000

# Starts the generator with the scenario's own flags ("$@") and those of
# the catalog. The phase outlasts the samples, with time to get under way.
start_generator() {
  taskset -c 1 "$generator" run "$@" --reps 1000 --teams "$teams" \
    --server "ws://127.0.0.1:$port/ws" --server-pid "$server_pid" \
    --duration "$duration" --out "$out/generator" > "$out/generator.log" 2>&1 &
  generator_pid=$!
}
# start_at: the units done (see units_done) by which the scenario is
# under way, two seconds or so of its steady state.
case "$scenario" in
  join)
    start_at=2000 title="join to alert, 1,000 joins a second, 1,000 reps in $teams teams"
    start_generator --scenario join-alert --rate 1000
    ;;
  routing)
    start_at=5000 title="routing: 400 customer lanes, 100 reps, every step durable"
    start_generator --scenario routing --connections 400
    ;;
  chat)
    start_at=20000 title="chat: 200 sessions, two lines in flight each, every line durable"
    start_generator --scenario chat --connections 200 --balls 2
    ;;
esac

await_units "$scenario" "$start_at"
perf record -F 499 --call-graph dwarf,65528 -p "$server_pid" -o "$out/perf.data" \
  -- sleep "$seconds" 2> "$out/perf.log"
wait "$generator_pid"
grep -E '"errors":' "$out/generator/result.json" | head -1

# Inlined functions are resolved (perf calls addr2line: some seconds),
# since whole-program optimisation inlines most of the server's own code.
perf script -i "$out/perf.data" 2> /dev/null | inferno-collapse-perf --kernel > "$out/folded.txt"
# Frames under a thousandth of the samples are left out of the picture (a
# pixel or less wide; folded.txt keeps them), which makes it a third of
# the size.
inferno-flamegraph --colors rust --minwidth 0.1 --title "Switchboard, $title" \
  --subtitle "$(basename "$server"), perf at 499 Hz for ${seconds} s; Rust crates aqua, std and core orange, kernel and C yellow" \
  < "$out/folded.txt" > "$out/flamegraph.svg"

# Each folded line is a stack, its frames split by `;` (a frame may hold
# spaces), then its weight (the samples' periods: nanoseconds where perf
# falls back to the cpu-clock event, as in virtual machines). The first
# frame is the thread's name, as perf keeps it (15 characters), the last
# where the sample fell. What a sample was doing is the frame nearest to
# where it fell that names one of the kinds below, kernel or user space:
# a sample in `memcpy` under rmp-serde under the session actor is
# Switchboard's; one in the TCP stack under `sendto`, a frame out.
awk '
  BEGIN {
    n = split("__sys_sendto|__sys_recvfrom|do_epoll_wait|sync_file_range|pwrite64|fsync|" \
      "futex|ksys_write|finish_task_switch|__sys_accept4|__x64_sys_close|__sys_shutdown|" \
      "sled::|_rjem_|switchboard::|actix_http::|actix::|tokio::", pattern, "|")
    split("frames out (sendto; on loopback also the receiver TCP)|frames in (recvfrom)|" \
      "waiting for events (epoll_wait)|the store disk writes|the store disk writes|" \
      "the store disk writes|threads waking each other (futex, eventfd)|" \
      "threads waking each other (futex, eventfd)|the scheduler (finish_task_switch)|" \
      "connections opened and closed|connections opened and closed|" \
      "connections opened and closed|sled, user space|the allocator (jemalloc)|" \
      "Switchboard own code|actix-http (HTTP/1 and WebSocket framing)|" \
      "actix (actor mailboxes and contexts)|tokio (the runtime)", kind, "|")
  }
  {
    w = $NF; total += w; stack = $0; sub(/ [0-9]+$/, "", stack); k = split(stack, frames, ";")
    thread[frames[1]] += w
    if (frames[k] ~ /_\[k\]$/) kernel += w
    for (f = k; f >= 1; f--)
      for (i = 1; i <= n; i++)
        if (index(frames[f], pattern[i])) { doing[kind[i]] += w; next }
    doing["other"] += w
  }
  END {
    printf "in the kernel: %.1f%% of the samples\nby thread:\n", 100 * kernel / total
    for (t in thread) printf "  %5.1f%%  %s\n", 100 * thread[t] / total, t | "sort -rn"
    close("sort -rn")
    print "by what it was doing:"
    for (d in doing) printf "  %5.1f%%  %s\n", 100 * doing[d] / total, d | "sort -rn"
    close("sort -rn")
  }' "$out/folded.txt" | tee "$out/shares.txt"
echo "flamegraph: $out/flamegraph.svg"
