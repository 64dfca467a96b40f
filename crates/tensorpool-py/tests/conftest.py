"""Shared fixtures: a private directory under /dev/shm per test (Aeron dir + SHM base dir),
removed afterwards; the `tp` binary; helpers that wait on conditions with deadlines."""

import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

import tensorpool as tp

REPO = Path(__file__).resolve().parents[3]
_stream = [20000 + (os.getpid() % 1000) * 10]


def next_stream() -> int:
    _stream[0] += 1
    return _stream[0]


@pytest.fixture
def dirs():
    """A private dir under /dev/shm with `aeron` (media driver) and `shm` (base dir)."""
    root = Path(tempfile.mkdtemp(prefix="tp-py-test-", dir="/dev/shm"))
    (root / "shm").mkdir()
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def ctx(dirs):
    """An embedded media driver in the test's private Aeron dir."""
    c = tp.Context.embedded(str(dirs / "aeron"))
    yield c


@pytest.fixture
def tp_bin():
    path = os.environ.get("TP_BIN") or str(REPO / "target" / "debug" / "tp")
    if not os.access(path, os.X_OK):
        pytest.fail(f"the tp binary is not built at {path} (set TP_BIN or run scripts/py-test)")
    return path


def small_producer(ctx, stream, base, **kw):
    args = dict(base_dir=str(base), header_nslots=8, stride_bytes=64 * 1024, prefault=False,
                announce_period=0.05)
    args.update(kw)
    return tp.Producer(ctx, stream, **args)


def pump(producer, consumer, callback, done, timeout=10.0, limit=16):
    """Polls `consumer` (and runs the producer's duty cycle) until `done()` or the deadline."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if producer is not None:
            producer.do_work()
        consumer.poll(callback, limit)
        if done():
            return True
        time.sleep(0.0005)
    return done()


def connect(producer, consumer, stream_probe=None, timeout=10.0):
    """Sends frames until the consumer accepted one (it maps the regions from the first
    announce); returns the last frame it saw."""
    seen = []
    end = time.monotonic() + timeout
    while time.monotonic() < end and not seen:
        producer.offer(__import__("numpy").zeros(8, "u8"))
        pump(producer, consumer, lambda f: seen.append(f.seq), lambda: bool(seen), timeout=0.2)
    assert seen, f"consumer never accepted a frame: state {consumer.state}, {consumer.last_error}"
    return seen[-1]


class Proc:
    """A child process whose merged stdout/stderr lines are collected by a thread."""

    def __init__(self, args, **kw):
        self.p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True, **kw)
        self.lines = []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.p.stdout:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()

    def expect(self, pred, timeout=30.0):
        end = time.monotonic() + timeout
        with self.cond:
            while True:
                for line in self.lines:
                    if pred(line):
                        return line
                left = end - time.monotonic()
                if left <= 0 or self.p.poll() is not None and not any(map(pred, self.lines)):
                    raise AssertionError(f"no expected line; output so far:\n" + "\n".join(self.lines))
                self.cond.wait(min(left, 0.1))

    def wait(self, timeout=30.0):
        try:
            return self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            raise AssertionError("process did not exit; output:\n" + "\n".join(self.lines))

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


def mapping_of(addr):
    """The /proc/self/maps line whose range holds `addr`: (start, end, path)."""
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split()
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            if lo <= addr < hi:
                return lo, hi, (parts[5] if len(parts) > 5 else "")
    return None
