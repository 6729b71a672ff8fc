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
# What the tests need from Debian, installed once if missing (as root); without it the tests
# that need it fail, they do not skip:
# - procps: the `kill` utility, to stop servers by PID;
# - redis-tools: redis-cli and redis-benchmark drive the RESP front door (tools/tests/resp.rs);
# - fonts-dejavu-core: the benchmark runner's latency plots draw text with it;
# - iproute2, nftables: the cluster tests put each node in its own network namespace
#   (`ip netns`, veth, a bridge) and make partitions and loss with nftables rules (as root);
# - e2fsprogs, mount: mkfs.ext4, losetup and mount build the small full disk of
#   tools/tests/disk_full.rs (which also needs root and loop devices: `modprobe loop`).
missing=()
need kill || missing+=(procps)
need redis-cli || missing+=(redis-tools)
need mkfs.ext4 || missing+=(e2fsprogs)
need ip || missing+=(iproute2)
need nft || missing+=(nftables)
{ need mount && need losetup; } || missing+=(mount)
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing+=(fonts-dejavu-core)
if [ ${#missing[@]} -gt 0 ] && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq "${missing[@]}"
fi

echo "== tessera test suite: $(nproc) cores, kernel $(uname -r), memlock $(ulimit -l)"
# A one-off build gains nothing from incremental state and it doubles target/'s size on disk.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
# --all-targets also builds the criterion benches and runs each once as a test, so a bench
# that stops compiling or panics fails the suite.
cargo test --workspace --all-targets --locked "$@"
