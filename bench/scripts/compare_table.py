#!/usr/bin/env python3
"""Markdown tables from compare.sh's JSON results (medians over repetitions, ratios to Redis).

Usage: compare_table.py OUT_DIR                      prints the tables
       compare_table.py --splice BENCHMARKS.md FILE  puts FILE between the compare markers
"""
import glob
import json
import os
import re
import statistics
import sys

BEGIN, END = "<!-- compare:begin -->", "<!-- compare:end -->"
SYSTEMS = ["echo", "redis-none", "redis-everysec", "redis-always", "memcached",
           "tessera-relaxed", "tessera-durable", "tessera-resp"]
# Each system's ratio is to the Redis set-up with the same promise about writes.
BASELINE = {"memcached": "redis-none", "tessera-relaxed": "redis-none",
            "tessera-durable": "redis-always", "tessera-resp": "redis-always",
            "redis-everysec": "redis-none", "redis-always": "redis-none"}
CONFS = [("c50p1", "50 conn"), ("c50p16", "50 conn, pipeline 16"), ("c1p1", "1 conn")]


def total(run):
    rows = run["results"]
    return next((r for r in rows if r["op"] == "total"), rows[0] if rows else None)


def load(out):
    runs = {}
    for path in glob.glob(os.path.join(out, "json", "*.json")):
        name = os.path.basename(path)[:-5]
        parts = name.split(".")
        if len(parts) != 5:
            continue
        setup, system, w, conf, _rep = parts
        with open(path) as f:
            r = json.load(f)
        runs.setdefault((setup, system, w, conf), []).append(r)
    return runs


def fmt_ops(x):
    return f"{x / 1000:.1f}k" if x >= 1000 else f"{x:.0f}"


def table(runs, setup):
    med = {}
    for (s, system, w, conf), rs in runs.items():
        if s != setup:
            continue
        rows = [total(r["run"]) for r in rs if total(r["run"])]
        if rows:
            med[(system, w, conf)] = (statistics.median(r["ops_per_sec"] for r in rows),
                                      statistics.median(r["p99_us"] for r in rows), len(rows))
    systems = [s for s in SYSTEMS if any(k[0] == s for k in med)]
    lines = ["| workload | load | " + " | ".join(systems) + " |",
             "|---|---|" + "---:|" * len(systems)]
    for w in "ABC":
        for conf, label in CONFS:
            cells = []
            for s in systems:
                # The echo ceiling has no workload: its round trips stand in every row.
                v = med.get((s, "A" if s == "echo" else w, conf))
                if not v:
                    cells.append("–")
                    continue
                cell = f"{fmt_ops(v[0])} · p99 {v[1] / 1000:.2f} ms"
                base = med.get((BASELINE.get(s, ""), w, conf))
                if base and base[0] > 0:
                    cell += f" · **{v[0] / base[0]:.2f}×**"
                cells.append(cell)
            lines.append(f"| {w} | {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def checks(runs):
    lost = wrong = siblings = errors = n = 0
    failed = []
    for key, rs in runs.items():
        for r in rs:
            n += 1
            v = r.get("verify") or {}
            lost += v.get("lost", 0)
            wrong += v.get("wrong", 0)
            siblings += r["run"].get("sibling_reads", 0)
            errors += r["run"].get("errors", 0)
            if not r.get("passed", False):
                failed.append(".".join(key))
    line = (f"Every run re-read every record it wrote: {n} runs, {lost} lost, {wrong} wrong, "
            f"{errors} failed operations, {siblings} reads with siblings.")
    if failed:
        line += " Runs that did not pass: " + ", ".join(sorted(set(failed))) + "."
    return line


def runner_vs_redis_benchmark(out):
    lines = ["| pipeline | redis-benchmark GET/s | tessera-bench workload C (uniform) reads/s | ratio |",
             "|---:|---:|---:|---:|"]
    for p in (1, 16):
        try:
            with open(os.path.join(out, f"redis-benchmark.get.p{p}.txt")) as f:
                rb = float(re.search(r"([0-9.]+) requests per second", f.read()).group(1))
            with open(os.path.join(out, "json", f"runner-vs-redis-benchmark.p{p}.json")) as f:
                ours = total(json.load(f)["run"])["ops_per_sec"]
        except (OSError, AttributeError, KeyError, TypeError):
            continue
        lines.append(f"| {p} | {fmt_ops(rb)} | {fmt_ops(ours)} | {ours / rb:.2f} |")
    return "\n".join(lines)


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--splice":
        target, piece = sys.argv[2], open(sys.argv[3]).read().strip()
        text = open(target).read()
        block = f"{BEGIN}\n{piece}\n{END}"
        if BEGIN in text and END in text:
            text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: block, text,
                          flags=re.S)
        else:
            text = text.rstrip() + "\n\n" + block + "\n"
        open(target, "w").write(text)
        return
    out = sys.argv[1]
    runs = load(out)
    setups = sorted({k[0] for k in runs}, key=lambda s: (s != "per-core", s))
    print("Cells: median ops/s over repetitions · median p99 latency · **ratio** to Redis with "
          "the same write promise (tessera-durable and tessera-resp to redis-always; "
          "tessera-relaxed and memcached to redis-none).\n")
    for setup in setups:
        print(f"**{setup}**\n")
        print(table(runs, setup))
        print()
    print(checks(runs) + "\n")
    print("The runner is not the bottleneck: against Redis (persistence off, per-core set-up, "
          "50 connections), side by side:\n")
    print(runner_vs_redis_benchmark(out))


if __name__ == "__main__":
    main()
