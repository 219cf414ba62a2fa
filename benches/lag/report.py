#!/usr/bin/env python3
"""Prints what scripts/bench-lag.sh measured as a Markdown table, old against new.

Usage: report.py RESULTS_DIR OLD NEW "STORES" "CASES" (as the script passes them).
Every figure is shown for both commits with the ratio new/old ("-" where a ratio means
nothing: a count that is zero on the old side, or a run that failed).
"""

import json
import os
import sys


def load(results, name):
    """One results file: a JSON document, or JSON lines of which the last is the summary."""
    try:
        with open(os.path.join(results, name)) as f:
            text = f.read().strip()
    except OSError:
        return {}
    try:
        return json.loads(text)
    except ValueError:
        try:
            return json.loads(text.splitlines()[-1])
        except (ValueError, IndexError):
            return {}


def show(value):
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def ratio(old, new):
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (old, new))
    if not numbers or old == 0:
        return "-"
    return f"{new / old:.2f}"


def eight_rows(results, store, commits, case):
    kind, rate = case.split(":")
    runs = [load(results, f"{store}-{c}-eight-{kind}-{rate}.json") for c in commits]
    what = f"eight clients, {kind} at {rate}/s"
    for key, label in [
        ("closes_1013", "1013 closes"),
        ("reconnects", "reconnects"),
        ("converge_ms", "ms to converge after the edits stop"),
        ("server_peak_rss_mib", "server peak RSS MiB"),
    ]:
        values = []
        for run in runs:
            if key == "converge_ms" and run and run.get(key) is None:
                values.append("not converged")
            else:
                values.append(run.get(key))
        yield f"{what}: {label}", values


def w3_rows(results, store, commits, peers):
    runs = [load(results, f"{store}-{c}-w3-{peers}.json") for c in commits]
    points = [((run.get("w3") or {}).get("fixed") or [{}])[0] for run in runs]
    failed = ["failed: " + "; ".join(run.get("errors", [])) if run.get("errors") else None
              for run in runs]
    for key, label in [("p50_ms", "p50 ms"), ("p99_ms", "p99 ms"), ("p999_ms", "p99.9 ms")]:
        yield (f"W3 {peers} peers at 2,000/s: {label}",
               [p.get(key) if p else f for p, f in zip(points, failed)])
    yield (f"W3 {peers} peers: deliveries lost",
           [p["expected"] - p["delivered"] if p else None for p in points])
    yield (f"W3 {peers} peers: converged",
           [(run.get("w3") or {}).get("converged") if run.get("w3") else None for run in runs])
    rss = [load(results, f"{store}-{c}-w3-{peers}-rss.json").get("server_peak_rss_mib")
           for c in commits]
    yield f"W3 {peers} peers: server peak RSS MiB", rss


def main():
    results, old, new, stores, cases = sys.argv[1:6]
    commits = (old, new)
    print(f"| store | figure | old {old} | new {new} | new/old |")
    print("|---|---|---|---|---|")
    for store in stores.split():
        rows = []
        for case in cases.split():
            rows.extend(eight_rows(results, store, commits, case))
        for peers in (10, 50):
            rows.extend(w3_rows(results, store, commits, peers))
        for label, (a, b) in rows:
            print(f"| {store} | {label} | {show(a)} | {show(b)} | {ratio(a, b)} |")


if __name__ == "__main__":
    main()
