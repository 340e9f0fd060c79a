#!/usr/bin/env bash
# What a waiting customer's memory is made of: the server under valgrind's
# DHAT while CONNECTIONS customers wait in queues, its heap at its peak
# split by allocation site, in bytes per waiting customer.
#
#   loadtests/dhat.sh [CONNECTIONS] [OUT_DIR]
#
# DHAT sees only calls to the system allocator, so the server is built
# here without its `jemalloc` feature (its own target directory,
# target/dhat: about five minutes the first time). The sites are the same
# under jemalloc; the sizes are what the program asked for, before any
# allocator rounds them up to its size classes, and the heap is not the
# resident set (idle density measures that), so the split says where a
# customer's memory goes, not what it costs to the byte.
#
# The peak (DHAT's t-gmax) is while every customer is connected and
# waiting: the store is seeded before the server starts under valgrind
# (server.sh's `seed_first`), and the 100 reps never log in, so no argon2
# hash or rep state is in it. Seeded under valgrind instead, the server's
# peak was the seeding's, one argon2 hash's 19 MiB, whenever the customers'
# heap was smaller: below about 20 KB a customer at 1,000 customers. Lines
# for less than one allocation per twenty customers are left out: they are
# the server's own fixed state (sled's page table and buffers, the
# catalog) and do not grow with customers. About two minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

connections=${1:-1000}
out=${2:-loadtests/results/dhat-$(date +%s)}
generator=target/release/switchboard-loadtests
for tool in valgrind taskset python3 cargo; do
  command -v "$tool" >/dev/null || { echo "needs $tool" >&2; exit 1; }
done
[ -x "$generator" ] || {
  echo "build the generator first: cargo build --release -p switchboard-loadtests" >&2
  exit 1
}
cargo build --release -p switchboard --bin switchboard --no-default-features \
  --target-dir target/dhat
server=target/dhat/release/switchboard

. loadtests/server.sh
seed_first=1 start_under_valgrind "$out" "$server" --tool=dhat --dhat-out-file="$out/dhat.out"

taskset -c 1 "$generator" run --scenario idle --teams 10 --connections "$connections" \
  --duration 20 --server "ws://127.0.0.1:$port/ws" --server-pid "$server_pid" \
  --out "$out/generator" > "$out/generator.log" 2>&1
grep -E '^- (connected|errors):' "$out/generator/summary.md" || true

# DHAT writes its file when the server exits; SIGTERM stops it in order.
kill -TERM "$server_pid"
wait "$server_pid" || true
server_pid=

python3 - "$out/dhat.out" "$connections" <<'EOF' | tee "$out/per-customer.txt"
import collections, json, sys

profile, customers = json.load(open(sys.argv[1])), float(sys.argv[2])
frames = profile["ftbl"]

def site(pp):
    """The first three frames outside the standard library and valgrind."""
    named = []
    for i in pp["fs"]:
        frame = frames[i].split(": ", 1)[-1]
        if "library/" in frame or "vgpreload" in frame or frame.startswith("[root]"):
            continue
        named.append(frame[:90])
    return " <- ".join(named[:3])

size, blocks = collections.Counter(), collections.Counter()
for pp in profile["pps"]:
    if pp.get("gb", 0):
        key = site(pp)
        size[key] += pp["gb"]
        blocks[key] += pp.get("gbk", 0)
total = sum(size.values())
print(f"heap at its peak: {total / customers:.0f} bytes per waiting customer")
print("bytes/customer  blocks/customer  site")
for key, n in size.most_common():
    if blocks[key] / customers >= 0.05:
        print(f"{n / customers:14.0f}  {blocks[key] / customers:15.2f}  {key}")
EOF
echo "profile: $out/dhat.out (open it in /usr/libexec/valgrind/dh_view.html)"
