#!/usr/bin/env bash
# Runs Tessera's whole test suite on a fresh Debian machine with Rust (as root or a user
# with the limits in linux-only.md). Installs whatever the tests need that is not there yet.
# Usage: ./scripts/test.sh            (all tests, as CI runs them)
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1; }
if ! need cargo; then
    echo "test.sh: cargo is missing; install Rust (https://rustup.rs) first" >&2
    exit 2
fi
# The tests stop servers with the `kill` utility (procps) by PID.
if ! need kill && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq procps
fi

echo "== tessera test suite: $(nproc) cores, kernel $(uname -r), memlock $(ulimit -l)"
# --all-targets also builds the criterion benches and runs each once as a test, so a bench
# that stops compiling or panics fails the suite.
cargo test --workspace --all-targets --locked "$@"
