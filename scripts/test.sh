#!/usr/bin/env bash
# The one command that passes every test (README: "Test").
# Installs what the tests need when it is missing, then checks formatting
# and lints, then runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -x scripts/ensure-test-tools.sh ]; then
  scripts/ensure-test-tools.sh
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo test"
cargo test --workspace
