#!/usr/bin/env bash
# One-run comparison for BENCHMARKS.md: a glommio TCP echo server (the ceiling of any
# request/response server here) and Tessera, driven by the same closed-loop driver, at 1 and
# 50 connections: gets, and puts durable and relaxed, each in its own run. Everything runs on loopback; every process
# started is stopped by PID. Prints a markdown table with ratios to echo.
#
# Usage: bench/scripts/baseline.sh [SECONDS_PER_RUN] [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-10}
out=${2:-target/bench-baseline}
host=127.0.0.1
echo_port=7700
tessera_port=7800
rm -rf "$out" && mkdir -p "$out"
cargo build --release -q -p tessera -p tessera-bench
bin=target/release

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

wait_port() { # host port
    for _ in $(seq 200); do (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && return 0; sleep 0.05; done
    echo "baseline.sh: nothing listens on $1:$2" >&2; return 1
}

run() { # name, then the bench command's arguments
    local name=$1; shift
    echo "== $name" >&2
    "$bin/tessera-bench" "$@" --duration "$secs" --warmup 2 --json "$out/$name.json" >&2
}

"$bin/tessera-bench" echo-server --listen "$host:$echo_port" --shards 2 >"$out/echo-server.log" 2>&1 &
pids+=($!)
wait_port $host $echo_port
for c in 1 50; do run "echo-c$c" echo --server "$host:$echo_port" --connections $c --size 100; done
kill "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true; pids=()

"$bin/tessera" server --data-dir "$out/data" --listen "$host:$tessera_port" --shards 2 >"$out/server.log" 2>&1 &
pids+=($!)
wait_port $host $tessera_port
"$bin/tessera-bench" load --server "$host:$tessera_port" --prefill --ops 1 --connections 1 >&2
for c in 1 50; do
    run "tessera-get-c$c" load --server "$host:$tessera_port" --connections $c --read-ratio 1 \
        --keys 100000 --value-size 100
    for mode in durable relaxed; do
        run "tessera-put-$mode-c$c" load --server "$host:$tessera_port" --connections $c --$mode \
            --read-ratio 0 --keys 100000 --value-size 100
    done
done
cleanup; pids=()
python3 bench/scripts/table.py "$out"
