#!/usr/bin/env bash
# Runs throughput benchmarks alternately and compares them to the first (docs/cpp.md;
# scripts/bench-cpp builds the binaries and calls this):
#   bench.sh BASELINE OTHER... -- ROUNDS SECONDS
# Each run: the producer process (hosting the media driver) flat out, the consumer process
# measuring accepted frames/s for SECONDS after a 1-second warm-up. Every round runs every
# binary once, the order rotating from round to round. Prints every run, then per binary the
# median and best consumer frames/s and their ratios to the baseline's. On a shared machine
# the runs vary a lot: compare many alternating rounds, not one.
#   bench.sh inproc BASELINE OTHER... -- ROUNDS [WORDS]
# runs the one-thread variant instead (claim, write, commit, do_work, poll, recheck in one
# loop; 5000 cycles of WORDS u64 words, default 81920 = 640 KiB) and prints ns/cycle.
# A binary's label is its path; TP_BENCH_LABELS="rust g++ clang++" names them instead.
set -euo pipefail
inproc=0
if [ "$1" = inproc ]; then
    inproc=1
    shift
fi
bins=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do
    bins+=("$1")
    shift
done
if [ $# -eq 0 ] || [ ${#bins[@]} -eq 0 ]; then
    echo "usage: bench.sh [inproc] BASELINE OTHER... -- ROUNDS [SECONDS|WORDS]" >&2
    exit 2
fi
shift # --
rounds=${1:-5} arg2=${2:-}
read -r -a labels <<<"${TP_BENCH_LABELS:-}"
for i in "${!bins[@]}"; do
    [ -n "${labels[i]:-}" ] || labels[i]=${bins[i]}
done
nb=${#bins[@]}

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
best_max() { sort -g | tail -1; }
best_min() { sort -g | head -1; }

run_pair() { # bin secs -> "producer_fps consumer_fps"
    local bin=$1 secs=$2 dir
    dir=$(mktemp -d /dev/shm/tp-bench-XXXXXX)
    "$bin" producer "$dir/aeron" "$dir/shm" $((secs + 4)) >"$dir/p.log" 2>&1 &
    local pid=$!
    sleep 1
    "$bin" consumer "$dir/aeron" "$dir/shm" "$secs" >"$dir/c.log" 2>&1 || { cat "$dir/c.log" >&2; }
    wait $pid || true
    local p c
    p=$(grep -o '= [0-9]* frames/s' "$dir/p.log" | grep -o '[0-9]*' || echo 0)
    c=$(grep -o '= [0-9]* frames/s' "$dir/c.log" | grep -o '[0-9]*' || echo 0)
    rm -rf "$dir"
    echo "$p $c"
}

run_inproc() { # bin words -> ns per cycle
    local bin=$1 words=$2 dir out
    dir=$(mktemp -d /dev/shm/tp-bench-XXXXXX)
    out=$("$bin" inproc "$dir/shm" "$words" 5000)
    rm -rf "$dir"
    echo "$out" | grep -o '[0-9]* ns/cycle' | grep -o '[0-9]*'
}

declare -A res
for r in $(seq "$rounds"); do
    echo "round $r ($(uptime | sed 's/.*load/load/'))" >&2
    for k in $(seq 0 $((nb - 1))); do
        i=$(((k + r - 1) % nb))
        if [ "$inproc" = 1 ]; then
            v=$(run_inproc "${bins[i]}" "${arg2:-81920}")
            echo "  ${labels[i]}: $v ns/cycle" >&2
        else
            read -r p v < <(run_pair "${bins[i]}" "${arg2:-10}")
            echo "  ${labels[i]}: consumer $v frames/s (producer $p)" >&2
        fi
        res[$i]="${res[$i]:-} $v"
    done
done

if [ "$inproc" = 1 ]; then unit="ns/cycle (lower is better)"; else unit="consumer frames/s"; fi
echo "== $rounds rounds, $unit"
base_med=$(printf '%s\n' ${res[0]} | median)
if [ "$inproc" = 1 ]; then base_best=$(printf '%s\n' ${res[0]} | best_min); else base_best=$(printf '%s\n' ${res[0]} | best_max); fi
for i in $(seq 0 $((nb - 1))); do
    med=$(printf '%s\n' ${res[$i]} | median)
    if [ "$inproc" = 1 ]; then best=$(printf '%s\n' ${res[$i]} | best_min); else best=$(printf '%s\n' ${res[$i]} | best_max); fi
    # ratio = throughput relative to the baseline (>1: faster), for ns/cycle too
    awk -v l="${labels[i]}" -v all="${res[$i]}" -v m="$med" -v b="$best" -v bm="$base_med" -v bb="$base_best" -v inv="$inproc" \
        'BEGIN {rm = inv ? bm / m : m / bm; rb = inv ? bb / b : b / bb;
                printf "%-10s median %8.0f  best %8.0f  vs %s: median %.3f best %.3f   (runs:%s)\n", l, m, b, "baseline", rm, rb, all}'
done
