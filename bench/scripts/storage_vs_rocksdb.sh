#!/usr/bin/env bash
# Tessera's storage engine (`tessera-bench storage`) and RocksDB's db_bench (Debian's
# rocksdb-tools), one after the other on the same machine and disk, with the same key and value
# sizes, key count, thread count (1) and memory: 16-byte keys, 100-byte values, an 8 MiB
# memtable, zstd, 10 bloom bits per key. Usage:
#   bench/scripts/storage_vs_rocksdb.sh [NUM] [READS] [SYNC_NUM] [DIR]
# Writes the outputs to $DIR/*.txt and prints them. Needs root for `apt-get install` if
# db_bench is missing.
set -euo pipefail
NUM=${1:-10000000}
READS=${2:-1000000}
SYNC_NUM=${3:-20000}
DIR=${4:-/tmp/storage-vs-rocksdb}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
command -v db_bench >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y rocksdb-tools
cargo build --release -p tessera-bench --manifest-path "$ROOT/Cargo.toml"
BENCH="$ROOT/target/release/tessera-bench"
rm -rf "$DIR" && mkdir -p "$DIR"
BUDGET=64MiB
# RocksDB gets the same memory: an 8 MiB write buffer (two of them, as Tessera's active and
# flushing memtables) and the rest of the 64 MiB as block cache.
ROCKS="--key_size=16 --value_size=100 --threads=1 --compression_type=zstd --bloom_bits=10
  --write_buffer_size=8388608 --max_write_buffer_number=2 --cache_size=41943040 --histogram=1"
run() { # name, command...
  local name=$1; shift
  echo "== $name: $*" | tee "$DIR/$name.txt"
  /usr/bin/time -f "max resident %M KiB, elapsed %e s" "$@" >>"$DIR/$name.txt" 2>&1
  cat "$DIR/$name.txt"
}
run tessera "$BENCH" storage --dir "$DIR/tessera" --num "$NUM" --reads "$READS" \
  --memory-budget "$BUDGET" --benchmarks fillrandom,readrandom,readmissing,overwrite
du -sb "$DIR/tessera" | tee -a "$DIR/tessera.txt"
run rocksdb db_bench --db="$DIR/rocksdb" --num="$NUM" --reads="$READS" $ROCKS \
  --benchmarks=fillrandom,readrandom,readmissing,overwrite,stats
du -sb "$DIR/rocksdb" | tee -a "$DIR/rocksdb.txt"
run tessera-sync "$BENCH" storage --dir "$DIR/tessera-sync" --num "$SYNC_NUM" --sync \
  --memory-budget "$BUDGET" --benchmarks fillrandom
run rocksdb-sync db_bench --db="$DIR/rocksdb-sync" --num="$SYNC_NUM" --sync=1 $ROCKS \
  --benchmarks=fillrandom
