#!/usr/bin/env bash
# Installs what building and testing need when it is missing from a fresh
# Debian machine: a C compiler (crates that build C) and make (the server
# binary's allocator, jemalloc, is built with its own configure and make).
# Everything else the tests use (sockets, sled files, the server binary)
# comes with the Rust toolchain.
set -euo pipefail

missing=()
command -v cc >/dev/null || missing+=(gcc libc6-dev)
command -v make >/dev/null || missing+=(make)
[ ${#missing[@]} -eq 0 ] && exit 0

echo "== installing ${missing[*]}"
sudo=
[ "$(id -u)" -eq 0 ] || sudo=sudo
$sudo apt-get update -q
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
