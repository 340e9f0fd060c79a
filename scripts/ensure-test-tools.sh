#!/usr/bin/env bash
# Installs the external tools the ops tests use, only when missing:
#   promtool     (Debian package prometheus)  - tests/metrics.rs
#   schemathesis (PyPI)                       - tests/openapi.rs
# Idempotent and quiet; safe to run from several test binaries at once
# (a lock serialises the installs). Prints what it installed, nothing else.
set -euo pipefail

lock="${TMPDIR:-/tmp}/switchboard-ensure-test-tools.lock"
exec 9>"$lock"
flock 9

if ! command -v promtool >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends prometheus >/dev/null
    echo "installed promtool (Debian package prometheus)" >&2
fi

if ! python3 -c 'import schemathesis.cli' >/dev/null 2>&1; then
    python3 -m pip install -q --disable-pip-version-check 'schemathesis>=4,<5' >/dev/null
    echo "installed schemathesis (PyPI)" >&2
fi
