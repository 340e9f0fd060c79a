#!/usr/bin/env bash
# Builds the server with profile-guided optimisation (PGO) into
# target/pgo/switchboard. docs/performance-rounds.md (round 11) says what it
# buys over `cargo build --release`; the README says when to use it.
#
# 1. builds the load generator and a server instrumented to count which
#    branches and calls it takes;
# 2. runs every load-test scenario against that server with small numbers,
#    which is the training: the server writes its counts when it exits;
# 3. builds the server again, telling LLVM those counts, so it lays out hot
#    paths together and inlines where the calls really are.
#
# The profile is made fresh from the source being built, never committed: a
# profile of other source is silently ignored function by function. Needs
# rustup's llvm-tools component (installed here when missing) for
# llvm-profdata, which must match rustc's LLVM. About 26 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."

host=$(rustc -vV | sed -n 's/^host: //p')
profdata="$(rustc --print sysroot)/lib/rustlib/$host/bin/llvm-profdata"
if [ ! -x "$profdata" ]; then
  echo "== rustup component add llvm-tools (for llvm-profdata)"
  rustup component add llvm-tools
fi

work="$PWD/target/pgo"
rm -rf "$work/profiles" "$work/training"
mkdir -p "$work/profiles" "$work/training"

# The generator only drives the training, so it skips the release profile's
# whole-program optimisation, which would double this script's build time.
echo "== build the load generator"
CARGO_PROFILE_RELEASE_LTO=off CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
  cargo build --release -p switchboard-loadtests --target-dir "$work/generator"

# --target makes RUSTFLAGS apply to the server only, not to build scripts
# and proc macros, which would otherwise write profiles of the build itself.
echo "== build the instrumented server"
RUSTFLAGS="${RUSTFLAGS:-} -Cprofile-generate=$work/profiles/raw" \
  cargo build --release --bin switchboard --target "$host" \
  --target-dir "$work/instrumented"

echo "== training: every scenario, small numbers"
"$work/generator/release/switchboard-loadtests" all \
  --server-bin "$work/instrumented/$host/release/switchboard" \
  --idle-connections 4000 --idle-secs 5 \
  --join-rate 500 --join-secs 10 --routing-secs 10 --chat-secs 10 \
  --sled-secs 1 --note "PGO training (instrumented server)" \
  --out "$work/training"

"$profdata" merge -o "$work/profiles/switchboard.profdata" "$work/profiles/raw"

echo "== build the optimised server"
RUSTFLAGS="${RUSTFLAGS:-} -Cprofile-use=$work/profiles/switchboard.profdata" \
  cargo build --release --bin switchboard --target "$host" \
  --target-dir "$work/optimized"
cp "$work/optimized/$host/release/switchboard" "$work/switchboard"
echo "== built target/pgo/switchboard"
