#!/usr/bin/env bash
# ctest driver: the producer example (100 Hz) and, once it runs, the consumer example against
# it until the consumer printed one frame (at most 30 seconds: a sanitized build on a loaded
# 2-core machine can take seconds to connect). The consumer exits 0 only if it received a
# frame; the producer is then stopped with SIGTERM and must exit 0 (its files removed).
set -euo pipefail
producer=$1 consumer=$2
log=$(mktemp)
"$producer" >"$log" 2>&1 &
pid=$!
cleanup() {
    kill "$pid" 2>/dev/null || true
    cat "$log"
    rm -f "$log"
    rm -rf /dev/shm/tensorpool-example
}
trap cleanup EXIT
# The producer hosts the media driver: wait until it runs (a consumer started earlier could
# pick up a stale directory of an earlier run).
for _ in $(seq 300); do
    grep -q producing "$log" && break
    sleep 0.1
done
"$consumer" 30 1
kill -TERM "$pid"
wait "$pid"
