#!/usr/bin/env bash
# Runs the Rust and C++ throughput benchmarks alternately (docs/cpp.md):
#   bench.sh RUST_BENCH CPP_BENCH ROUNDS SECONDS
# Each run: the producer process (hosting the media driver) flat out, the consumer process
# measuring accepted frames/s for SECONDS after a 1-second warm-up. Prints every run, the
# medians and bests, and the C++/Rust ratios. On a shared machine the runs vary a lot:
# compare many alternating rounds, not one.
#   bench.sh inproc RUST_BENCH CPP_BENCH ROUNDS [WORDS]
# runs the one-thread variant instead (claim, write, commit, do_work, poll, recheck in one
# loop; 5000 cycles of WORDS u64 words, default 81920 = 640 KiB) and prints ns/cycle.
set -euo pipefail
if [ "$1" = inproc ]; then
    shift
    rounds=${3:-8} words=${4:-81920}
    for i in $(seq "$rounds"); do
        for bin in "$1" "$2"; do
            dir=$(mktemp -d /dev/shm/tp-bench-XXXXXX)
            "$bin" inproc "$dir/shm" "$words" 5000
            rm -rf "$dir"
        done
    done | tee /dev/stderr | awk '{n[$1]++; v[$1, n[$1]] = $7}
        END {for (k in n) {m = 1e18; for (i = 1; i <= n[k]; i++) if (v[k, i] + 0 < m) m = v[k, i] + 0;
             printf "%s best %d ns/cycle over %d runs\n", k, m, n[k]}}'
    exit 0
fi
rust=$1 cpp=$2 rounds=${3:-5} secs=${4:-10}

run() { # bench binary -> "producer_fps consumer_fps"
    local bin=$1 dir
    dir=$(mktemp -d /dev/shm/tp-bench-XXXXXX)
    "$bin" producer "$dir/aeron" "$dir/shm" $((secs + 4)) >"$dir/p.log" 2>&1 &
    local pid=$!
    sleep 1
    "$bin" consumer "$dir/aeron" "$dir/shm" "$secs" >"$dir/c.log" 2>&1 || { cat "$dir/c.log" >&2; }
    wait $pid || true
    local p c
    p=$(grep -o '= [0-9]* frames/s' "$dir/p.log" | grep -o '[0-9]*')
    c=$(grep -o '= [0-9]* frames/s' "$dir/c.log" | grep -o '[0-9]*')
    echo "  $(basename "$(dirname "$bin")")/$(basename "$bin"): $(cat "$dir/c.log")" >&2
    rm -rf "$dir"
    echo "$p $c"
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
best() { sort -n | tail -1; }

rp=() rc=() cp=() cc=()
for i in $(seq "$rounds"); do
    echo "round $i" >&2
    read -r p c < <(run "$rust"); rp+=("$p"); rc+=("$c")
    read -r p c < <(run "$cpp"); cp+=("$p"); cc+=("$c")
done
mrp=$(printf '%s\n' "${rp[@]}" | median); mrc=$(printf '%s\n' "${rc[@]}" | median)
mcp=$(printf '%s\n' "${cp[@]}" | median); mcc=$(printf '%s\n' "${cc[@]}" | median)
echo "rust: producer ${rp[*]} (median $mrp) consumer ${rc[*]} (median $mrc) frames/s"
echo "c++:  producer ${cp[*]} (median $mcp) consumer ${cc[*]} (median $mcc) frames/s"
brc=$(printf '%s\n' "${rc[@]}" | best); bcc=$(printf '%s\n' "${cc[@]}" | best)
awk -v c="$mcc" -v r="$mrc" -v cp="$mcp" -v rp="$mrp" -v bc="$bcc" -v br="$brc" \
    'BEGIN {printf "ratio c++/rust: consumer median %.3f, best %.3f; producer median %.3f\n", c / r, bc / br, cp / rp}'
