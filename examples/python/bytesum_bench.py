"""Micro-benchmark: ways to sum every byte of a 640 KiB uint8 array exactly with NumPy.

Run with the venv of scripts/py-test: `target/py-venv/bin/python examples/python/bytesum_bench.py
[ROUNDS]`. The array is read-only (like a frame's view of its slot); a way that is not exact
(differs from the sum of the bytes as Python integers) is reported and not timed. Each round
times every way 200 times in turn (so a burst of load on the machine hits all of them); it
prints the min / median / max over the rounds in microseconds per sum. Figures and the choice:
docs/python.md, Benchmark. `bytesum.byte_sum` is the way scripts/py-bench uses.
"""

import sys
import timeit

import numpy as np

from bytesum import byte_sum

N = 640 * 1024
a = np.random.default_rng(1).integers(0, 256, N, dtype=np.uint8)
a[:5000] = 255
a.flags.writeable = False
exact = sum(int(x) for x in np.bincount(a, minlength=256) * np.arange(256))

LOW = np.uint64(0x00FF_00FF_00FF_00FF)
EIGHT = np.uint64(8)
even = np.empty(N // 8, np.uint64)
odd = np.empty(N // 8, np.uint64)
col = np.empty(N // 256, np.uint16)


def swar(axis):
    """SWAR: 64-bit words as four 16-bit lanes; the even bytes `v & 0x00FF..` plus the odd
    ones `(v >> 8) & 0x00FF..` (scratch arrays, no allocation), lane sums over 128 words
    (<= 65 280), then the four lanes of each."""
    def way(a):
        v = a.view(np.uint64)
        np.bitwise_and(v, LOW, out=even)
        np.right_shift(v, EIGHT, out=odd)
        np.bitwise_and(odd, LOW, out=odd)
        np.add(even, odd, out=even)
        r = even.reshape(-1, 128).sum(axis=1) if axis else even.reshape(128, -1).sum(axis=0)
        return int(((r & 0xFFFF) + ((r >> 16) & 0xFFFF) + ((r >> 32) & 0xFFFF)
                    + (r >> 48)).sum())
    return way


def u16_words(a):
    """sum(bytes) = sum(u16 words) - 255 * sum(high bytes)."""
    w = a.view(np.uint16)
    return int(w.sum(dtype=np.uint64)) - 255 * int((w >> 8).sum(dtype=np.uint64))


WAYS = {
    "a.sum(dtype=np.uint64)": lambda a: int(a.sum(dtype=np.uint64)),
    "np.add.reduce(a, dtype=np.uint64)": lambda a: int(np.add.reduce(a, dtype=np.uint64)),
    "np.einsum('i->', a, dtype=np.uint64)": lambda a: int(np.einsum("i->", a, dtype=np.uint64)),
    "a.sum(dtype=np.uint32) (exact < 16 MiB)": lambda a: int(a.sum(dtype=np.uint32)),
    "a.reshape(-1, 256).sum(axis=1, dtype=u16)": lambda a: int(
        a.reshape(-1, 256).sum(axis=1, dtype=np.uint16).sum(dtype=np.uint64)),
    "bytesum.byte_sum: a.reshape(256, -1) column sums in u16": byte_sum,
    "the same into a preallocated out=": lambda a: int(
        np.add.reduce(a.reshape(256, -1), axis=0, dtype=np.uint16, out=col).sum(dtype=np.uint64)),
    "a.reshape(-1, 1024).sum(axis=1, dtype=u32)": lambda a: int(
        a.reshape(-1, 1024).sum(axis=1, dtype=np.uint32).sum(dtype=np.uint64)),
    "SWAR u64 lanes, row sums": swar(1),
    "SWAR u64 lanes, column sums": swar(0),
    "u16 words minus 255 x high bytes": u16_words,
    "np.bincount(a) @ arange(256)": lambda a: int(np.bincount(a, minlength=256) @ np.arange(256)),
    "a as float32, BLAS dot with ones": lambda a: int(
        np.dot(a.astype(np.float32).reshape(-1, 1024), np.ones(1024, np.float32)).sum(
            dtype=np.float64)),
}

rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 7
times = {}
for name, way in WAYS.items():
    got = way(a)
    if got != exact:
        print(f"{name}: NOT EXACT ({got} != {exact})")
    else:
        times[name] = []
for _ in range(rounds):
    for name in times:
        way = WAYS[name]
        times[name].append(timeit.timeit(lambda: way(a), number=200) / 200 * 1e6)
print(f"sum of every byte of {N} bytes, {rounds} rounds x 200: us per sum (min / median / max)")
for name, ts in sorted(times.items(), key=lambda kv: sorted(kv[1])[len(kv[1]) // 2]):
    ts.sort()
    print(f"  {name:56s} {ts[0]:8.1f} {ts[len(ts) // 2]:8.1f} {ts[-1]:8.1f}")
