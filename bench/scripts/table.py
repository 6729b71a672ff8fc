#!/usr/bin/env python3
"""Turns bench/scripts/baseline.sh's JSON results into the markdown table of BENCHMARKS.md."""
import json
import pathlib
import sys

out = pathlib.Path(sys.argv[1])


def load(name):
    return json.loads((out / f"{name}.json").read_text())


def row(label, result, echo):
    ratio = result["ops_per_sec"] / echo["ops_per_sec"]
    lat = "{p50_us} / {p99_us} / {p999_us}".format(**result)
    return f"| {label} | {result['ops_per_sec']:,.0f} | {ratio:.2f} | {lat} | {result['p50_us'] / echo['p50_us']:.1f}× |"


print("| run | ops/s | ops/s ÷ echo | p50 / p99 / p99.9 µs | p50 ÷ echo p50 |")
print("|---|---:|---:|---|---:|")
for c in (1, 50):
    echo = next(r for r in load(f"echo-c{c}")["results"] if r["op"] == "echo")
    print(row(f"TCP echo (ceiling), {c} conn", echo, echo))
    for name, op, label in (
        (f"tessera-get-c{c}", "get", f"tessera get, {c} conn"),
        (f"tessera-put-durable-c{c}", "put", f"tessera put durable, {c} conn"),
        (f"tessera-put-relaxed-c{c}", "put", f"tessera put relaxed, {c} conn"),
    ):
        report = load(name)
        result = next(r for r in report["results"] if r["op"] == op)
        print(row(label, result, echo))
        if report["errors"]:
            print(f"| ↳ {report['errors']} errors: {report['first_error']} | | | | |")
