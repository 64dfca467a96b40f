#!/usr/bin/env bash
# ctest driver: the producer example (300 frames at 100 Hz) and, once it runs, the consumer
# example for 2 seconds against it. The consumer exits 0 only if it received a frame.
set -euo pipefail
producer=$1 consumer=$2
log=$(mktemp)
"$producer" 300 >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; cat "$log"; rm -f "$log"; rmdir /dev/shm/tensorpool-example 2>/dev/null || true' EXIT
# The producer hosts the media driver: wait until it runs (a consumer started earlier could
# pick up a stale directory of an earlier run).
for _ in $(seq 100); do
    grep -q producing "$log" && break
    sleep 0.1
done
"$consumer" 2
wait $pid
