#!/usr/bin/env bash
# Tessera side by side with Redis and memcached: the same runner, the same workloads, one
# machine, one run. Installs redis-server, redis-tools and memcached from Debian's packages
# if missing (as root), starts each server on loopback, stops everything it started by PID,
# and writes a markdown table with ratios to Redis into BENCHMARKS.md (between the
# "compare:begin" and "compare:end" markers) and into OUT/compare.md.
#
# Two set-ups (issue #3):
#   per-core  every server on CPU 0 (Tessera 1 shard, memcached 1 thread, Redis), the runner
#             on CPU 1;
#   machine   Tessera 2 shards, memcached 2 threads, Redis as it is, nothing pinned.
# For each set-up and repetition, the systems take turns (interleaved, so drift in the
# machine's speed hits all of them alike), each running YCSB A, B and C at 50 connections
# unpipelined, 50 connections with pipeline 16, and 1 connection. Medians over repetitions.
#
# Systems: redis-none (persistence off), redis-everysec, redis-always (appendfsync), memcached,
# tessera-durable and tessera-relaxed (native protocol, writes fsynced or not before the
# reply), tessera-resp (the RESP port, durable writes), and echo: `tessera-bench echo-server`,
# a glommio TCP echo server built like Tessera, the ceiling of any request/response server.
#
# Usage: bench/scripts/compare.sh [--secs S] [--reps N] [--out DIR] [--setups "per-core machine"]
#                                 [--no-write]
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=3; reps=3; out=target/bench-compare; setups="per-core machine"; write_md=1
while [ $# -gt 0 ]; do
    case "$1" in
        --secs) secs=$2; shift 2 ;;
        --reps) reps=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --setups) setups=$2; shift 2 ;;
        --no-write) write_md=0; shift ;;
        -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
        *) echo "compare.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
host=127.0.0.1
redis_port=6391; memcached_port=11311; tessera_port=7800; tessera_resp=6401; echo_port=7700

need() { command -v "$1" >/dev/null 2>&1; }
missing=()
need redis-server || missing+=(redis-server)
need redis-benchmark || missing+=(redis-tools)
need memcached || missing+=(memcached)
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing+=(fonts-dejavu-core)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "compare.sh: install ${missing[*]} (apt-get install ${missing[*]}) or run as root" >&2
        exit 2
    fi
    apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# Debian's packages start their services on install (where allowed); ours run on other ports.

cargo build --release -q -p tessera -p tessera-bench
bin=target/release
rm -rf "$out" && mkdir -p "$out/json"

pids=()
stop_all() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do while kill -0 "$p" 2>/dev/null; do sleep 0.05; done; done
    pids=()
}
trap stop_all EXIT

wait_port() { # port
    for _ in $(seq 400); do (exec 3<>"/dev/tcp/$host/$1") 2>/dev/null && return 0; sleep 0.05; done
    echo "compare.sh: nothing listens on $host:$1" >&2; return 1
}

# start SETUP SYSTEM: starts the server, sets $proto $port $extra for the runner.
start() {
    local setup=$1 system=$2 pin=()
    [ "$setup" = per-core ] && pin=(taskset -c 0)
    local threads=2; [ "$setup" = per-core ] && threads=1
    case $system in
        redis-*)
            local fsync=()
            case $system in
                redis-none) fsync=(--appendonly no) ;;
                redis-everysec) fsync=(--appendonly yes --appendfsync everysec) ;;
                redis-always) fsync=(--appendonly yes --appendfsync always) ;;
            esac
            rm -rf "$out/redis" && mkdir -p "$out/redis"
            "${pin[@]}" redis-server --port $redis_port --bind $host --save '' --dir "$out/redis" \
                "${fsync[@]}" >"$out/redis.log" 2>&1 &
            pids+=($!); wait_port $redis_port
            proto=resp; port=$redis_port; extra=() ;;
        memcached)
            "${pin[@]}" memcached -l $host -p $memcached_port -U 0 -t $threads -m 2048 -u root \
                >"$out/memcached.log" 2>&1 &
            pids+=($!); wait_port $memcached_port
            proto=memcache; port=$memcached_port; extra=() ;;
        echo)
            "${pin[@]}" $bin/tessera-bench echo-server --listen $host:$echo_port --shards $threads \
                >"$out/echo.log" 2>&1 &
            pids+=($!); wait_port $echo_port
            proto=echo; port=$echo_port; extra=() ;;
        tessera-*)
            rm -rf "$out/tessera-data"
            "${pin[@]}" $bin/tessera server --data-dir "$out/tessera-data" --listen $host:$tessera_port \
                --resp-listen $host:$tessera_resp --shards $threads --placement pinned \
                >"$out/tessera.log" 2>&1 &
            pids+=($!); wait_port $tessera_port; wait_port $tessera_resp
            case $system in
                tessera-durable) proto=native; port=$tessera_port; extra=(--durability durable) ;;
                tessera-relaxed) proto=native; port=$tessera_port; extra=(--durability relaxed) ;;
                tessera-resp) proto=resp; port=$tessera_resp; extra=() ;;
            esac ;;
    esac
}

systems="echo redis-none redis-everysec redis-always memcached tessera-durable tessera-relaxed tessera-resp"
confs="c50p1 c50p16 c1p1"
failures=0
for setup in $setups; do
    runner=(); [ "$setup" = per-core ] && runner=(taskset -c 1)
    for rep in $(seq "$reps"); do
        for system in $systems; do
            start "$setup" "$system"
            workloads="A B C"; [ "$system" = echo ] && workloads=A  # echo has no workload
            for w in $workloads; do
                for conf in $confs; do
                    case $conf in
                        c50p1) c=50; p=1 ;; c50p16) c=50; p=16 ;; c1p1) c=1; p=1 ;;
                    esac
                    name="$setup.$system.$w.$conf.$rep"
                    echo "== $name" >&2
                    if ! "${runner[@]}" $bin/tessera-bench run --protocol $proto -s $host:$port \
                        -w $w -c $c -P $p -d "$secs" --warmup 1 --key-prefix "u$w$conf" -q \
                        "${extra[@]}" --json "$out/json/$name.json" >"$out/$name.txt" 2>&1; then
                        echo "compare.sh: $name failed:" >&2; tail -5 "$out/$name.txt" >&2
                        failures=$((failures + 1))
                    fi
                done
            done
            stop_all
        done
    done
done

# The runner against redis-benchmark, same connections and pipeline, Redis persistence off.
# redis-benchmark's SET test runs first so that its GETs find values (GETs of missing keys
# answer a 5-byte nil and look faster than they are).
start per-core redis-none
for p in 1 16; do
    taskset -c 1 redis-benchmark -h $host -p $redis_port -t set,get -r 100000 -d 100 -c 50 -P $p \
        -n $((p == 1 ? 600000 : 3000000)) -q 2>/dev/null | tr '\r' '\n' \
        | grep '^GET: .*requests per second' | tail -1 >"$out/redis-benchmark.get.p$p.txt"
    taskset -c 1 $bin/tessera-bench run --protocol resp -s $host:$redis_port -w C \
        --distribution uniform -c 50 -P $p -d "$secs" --warmup 1 -q \
        --json "$out/json/runner-vs-redis-benchmark.p$p.json" >/dev/null 2>&1
done
stop_all

python3 bench/scripts/compare_table.py "$out" >"$out/compare.md"
cat "$out/compare.md"
if [ $write_md = 1 ]; then
    python3 bench/scripts/compare_table.py --splice BENCHMARKS.md "$out/compare.md"
    echo "compare.sh: BENCHMARKS.md updated" >&2
fi
if [ $failures -gt 0 ]; then
    echo "compare.sh: $failures run(s) failed (their output is in $out)" >&2
    exit 1
fi
