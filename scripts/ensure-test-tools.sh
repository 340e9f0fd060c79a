#!/usr/bin/env bash
# Installs the external tools the build and the tests use, only when missing:
#   cc, make     (Debian packages gcc, libc6-dev, make) - crates that build C;
#                the server binary's allocator, jemalloc, is built with its
#                own configure and make
#   promtool     (Debian package prometheus)  - tests/metrics.rs
#   schemathesis (PyPI)                       - tests/openapi.rs
# Idempotent and quiet; safe to run from several test binaries at once
# (a lock serialises the installs). Prints what it installed, nothing else.
set -euo pipefail

lock="${TMPDIR:-/tmp}/switchboard-ensure-test-tools.lock"
exec 9>"$lock"
flock 9

debian=()
command -v cc >/dev/null 2>&1 || debian+=(gcc libc6-dev)
command -v make >/dev/null 2>&1 || debian+=(make)
command -v promtool >/dev/null 2>&1 || debian+=(prometheus)
if [ ${#debian[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${debian[@]}" >/dev/null
    echo "installed Debian packages: ${debian[*]}" >&2
fi

if ! python3 -c 'import schemathesis.cli' >/dev/null 2>&1; then
    python3 -m pip install -q --disable-pip-version-check 'schemathesis>=4,<5' >/dev/null
    echo "installed schemathesis (PyPI)" >&2
fi
