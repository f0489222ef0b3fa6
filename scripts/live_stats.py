"""Summaries for scripts/bench-live.sh.

Usage:
  live_stats.py stats EVENTS.jsonl   the last `stats` event of a `ceus-edge run` session
  live_stats.py rss RSS.txt          resident memory samples ("UNIX_TIME KIB" per line)
"""

import json
import sys


def stats(path):
    events = [json.loads(line) for line in open(path) if '"stats"' in line]
    last = events[-1]
    latency = last["latency_ms"]
    fps = last["frames"] / last["duration_s"]
    print(
        f"frames {last['frames']} dropped {last['dropped']} in {last['duration_s']:.1f} s "
        f"({fps:.1f} fps); latency ms p50 {latency['p50']:.2f} p95 {latency['p95']:.2f} "
        f"p99 {latency['p99']:.2f} max {latency['max']:.2f}"
    )


def rss(path):
    kib = [int(line.split()[1]) for line in open(path) if line.strip()]
    third = max(1, len(kib) // 3)
    first = sorted(kib[:third])[third // 2] / 1024
    last = sorted(kib[-third:])[third // 2] / 1024
    print(
        f"RSS MiB: first sample {kib[0] / 1024:.0f}, max {max(kib) / 1024:.0f}, "
        f"median of first third {first:.0f}, median of last third {last:.0f} "
        f"({len(kib)} samples)"
    )


if __name__ == "__main__":
    {"stats": stats, "rss": rss}[sys.argv[1]](sys.argv[2])
