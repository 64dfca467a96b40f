"""The exact sum of every byte of a frame, read in place with NumPy (no copy of the slot).

`byte_sum(frame.array)` is what `scripts/py-bench` computes per frame, the work `tp consume
--sum` does in Rust, and returns the same number. `a.sum(dtype=np.uint64)` gives it too, but
widens every byte to 8 bytes on the way and is several times slower on 640 KiB
(`bytesum_bench.py` measures the ways tried; figures in docs/python.md, Benchmark). This
views the bytes as 256 rows and adds the rows up column by column into uint16 (a column holds
256 bytes: at most 256 x 255 = 65 280 < 2**16, so no column sum wraps), then adds the column
sums (1/256 of the bytes) into a uint64. The rows and columns are a view of the array, not a
copy; the column sums are the only allocation.
"""

import numpy as np

_ROWS = 256  # bytes per column: 256 x 255 < 2**16


def byte_sum(a: np.ndarray) -> int:
    """The sum of every byte of the C-contiguous array `a` (any dtype) as an unsigned integer."""
    b = a.reshape(-1).view(np.uint8)  # a view for a contiguous array: no copy
    n = b.size - b.size % _ROWS
    total = int(b[n:].sum(dtype=np.uint64))  # the tail under 256 bytes
    if n:
        cols = np.add.reduce(b[:n].reshape(_ROWS, -1), axis=0, dtype=np.uint16)
        total += int(cols.sum(dtype=np.uint64))
    return total
