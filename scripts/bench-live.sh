#!/usr/bin/env bash
# Latency, throughput and memory of the live pipeline (`ceus-edge run`), for BENCHMARKS.md.
#
# 1. Real-time sessions on the phantom at 1280x720 and 1920x1080, 30 fps: the stats
#    event's capture-to-overlay latency (p50, p95, p99) and dropped frames.
# 2. The same sizes with --pace fast: frames per second the pipeline sustains.
# 3. A real-time session of SOAK_SECONDS (default 600) at 1920x1080 with an exam restart
#    every 100 s over the control channel: resident memory sampled every 10 s.
#
# Usage: scripts/bench-live.sh [OUT_DIR]   (default target/bench-live)
# Environment: CEUS_EDGE (default target/release/ceus-edge), SOAK_SECONDS, SECONDS_PER_RUN
# (default 60).
set -euo pipefail
cd "$(dirname "$0")/.."

out=${1:-target/bench-live}
bin=${CEUS_EDGE:-target/release/ceus-edge}
soak=${SOAK_SECONDS:-600}
length=${SECONDS_PER_RUN:-60}
mkdir -p "$out"

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "binary: $bin ($("$bin" --version))"

stats_of() {
    python3 -c '
import json, sys
stats = [json.loads(l) for l in open(sys.argv[1]) if "\"stats\"" in l][-1]
lat = stats["latency_ms"]
print(f"frames {stats[\"frames\"]} dropped {stats[\"dropped\"]} in {stats[\"duration_s\"]:.1f} s "
      f"({stats[\"frames\"] / stats[\"duration_s\"]:.1f} fps); latency ms p50 {lat[\"p50\"]:.2f} "
      f"p95 {lat[\"p95\"]:.2f} p99 {lat[\"p99\"]:.2f} max {lat[\"max\"]:.2f}")
' "$1"
}

for size in 1280x720 1920x1080; do
    for pace in native fast; do
        events="$out/events-$size-$pace.jsonl"
        rm -f "$events"
        "$bin" run --source phantom:1 --phantom-size "$size" --phantom-fps 30 \
            --phantom-seconds "$length" --pace "$pace" --display none \
            --roi auto --events "$events" >/dev/null
        echo "$size $pace: $(stats_of "$events")"
    done
done

# The soak run: restart the exam every 100 s through --control stdin, sample VmRSS.
events="$out/events-soak.jsonl"
rss="$out/rss-soak.txt"
rm -f "$events" "$rss"
(
    for _ in $(seq $((soak / 100))); do
        sleep 100
        echo '{"cmd":"new_exam"}'
    done
    echo '{"cmd":"quit"}'
) | "$bin" run --source phantom:2 --phantom-size 1920x1080 --phantom-fps 30 \
    --phantom-seconds "$((soak + 60))" --pace native --display none \
    --control stdin --events "$events" >/dev/null &
pid=$!
sleep 2
while kill -0 "$pid" 2>/dev/null; do
    awk -v t="$(date +%s)" '/VmRSS/ {print t, $2}' "/proc/$pid/status" >>"$rss" 2>/dev/null || true
    sleep 10
done
wait "$pid"
echo "soak ${soak} s 1920x1080: $(stats_of "$events")"
python3 -c '
import sys
rows = [tuple(map(int, l.split())) for l in open(sys.argv[1]) if l.strip()]
kib = [r[1] for r in rows]
third = max(1, len(kib) // 3)
print(f"RSS MiB: first sample {kib[0] / 1024:.0f}, max {max(kib) / 1024:.0f}, "
      f"median of first third {sorted(kib[:third])[third // 2] / 1024:.0f}, "
      f"median of last third {sorted(kib[-third:])[third // 2] / 1024:.0f} ({len(kib)} samples)")
' "$rss"
