"""Separate processes: the `tp` binary (Rust) against this module (Python), standalone and
through an SHM driver process, every payload checked with the seq + CRC32C `tp produce`
writes and `tp consume --verify` checks."""

import json
import os
import shutil
import struct
import time

import numpy as np
import pytest

import tensorpool as tp
from conftest import Proc, mapping_of, next_stream, pump, small_producer

HEADER = 12  # seq (u64 LE) + CRC32C (u32 LE) of the bytes after them


def verify(buf: np.ndarray, seq: int) -> bool:
    """Whether `buf` is frame `seq` of `tp produce` (seq and checksum match)."""
    s, c = struct.unpack_from("<QI", buf[:HEADER].tobytes())
    return s == seq and tp.crc32c(buf[HEADER:]) == c


def fill(buf: np.ndarray, seq: int, rng: np.random.Generator) -> None:
    """Writes a payload `tp consume --verify` accepts, in place (the slot itself)."""
    buf[HEADER:] = rng.integers(0, 256, buf.size - HEADER, dtype=np.uint8)
    buf[:HEADER] = np.frombuffer(struct.pack("<QI", seq, tp.crc32c(buf[HEADER:])), np.uint8)


def test_rust_producer_to_python_consumer(ctx, dirs, tp_bin):
    stream = next_stream()
    shm = str(dirs / "shm")
    consumer = tp.Consumer(ctx, stream, allowed_base_dir=shm)
    producer = Proc([tp_bin, "produce", "--standalone", "--aeron-dir", ctx.aeron_dir,
                     "--shm-base-dir", shm, "--stream-id", str(stream), "--size", "8192",
                     "--nslots", "8", "--rate", "200", "--count", "100000", "--linger", "0"])
    good, bad = [], []

    def cb(f):
        a = f.array
        ok = verify(a, f.seq)
        if f.recheck():  # only what was still committed after reading counts
            (good if ok else bad).append(f.seq)

    try:
        assert pump(None, consumer, cb, lambda: len(good) >= 50, timeout=30.0), (
            f"{len(good)} frames verified; consumer {consumer.state} {consumer.last_error}; "
            + "\n".join(producer.lines))
    finally:
        producer.stop()
    assert bad == []
    assert good == sorted(good)


def test_python_producer_to_rust_consumer(ctx, dirs, tp_bin):
    stream = next_stream()
    shm = dirs / "shm"
    producer = small_producer(ctx, stream, shm)
    rng = np.random.default_rng(7)
    consumer = Proc([tp_bin, "consume", "--aeron-dir", ctx.aeron_dir, "--allowed-base-dir",
                     str(shm), "--stream-id", str(stream), "--verify", "--count", "50",
                     "--json"])
    try:
        end = time.monotonic() + 30.0
        while consumer.p.poll() is None and time.monotonic() < end:
            with producer.claim((4096,), "u8") as c:
                fill(c.array, c.seq, rng)  # written in place, no copy
            producer.work_for(0.002)
        rc = consumer.wait(10.0)
    finally:
        consumer.stop()
        producer.close()
    assert rc == 0, "\n".join(consumer.lines)
    summary = json.loads(consumer.lines[-1])
    assert summary["accepted"] >= 50 and summary["corrupt"] == 0, summary


DRIVER_TOML = """
[driver]
instance_id = "py-test"
control_channel = "aeron:ipc?term-length=1m"
announce_stream_id = 1001
[shm]
base_dir = "{base}"
[policies]
announce_period_ms = 50
lease_keepalive_interval_ms = 50
lease_expiry_grace_intervals = 3
shutdown_timeout_ms = 300
epoch_gc_min_age_ns = 0
prefault_shm = false
[profiles.cam]
header_nslots = 8
payload_pools = [{{ pool_id = 1, stride_bytes = 4096 }}]
[streams.cam]
stream_id = {stream}
profile = "cam"
"""


def test_driver_mode_python_producer_and_consumer_with_a_tp_driver(dirs, tp_bin):
    stream = next_stream()
    shm = dirs / "shm"
    config = dirs / "driver.toml"
    config.write_text(DRIVER_TOML.format(base=shm, stream=stream))
    driver = Proc([tp_bin, "driver", "--config", str(config), "--idle", "sleep:1ms"])
    aeron_dir = None
    try:
        line = driver.expect(lambda l: l.startswith("aeron_dir="))
        aeron_dir = line.split("=", 1)[1].strip()
        driver.expect(lambda l: "ready" in l)
        ctx = tp.Context.connect(aeron_dir, timeout=10.0)
        assert not ctx.is_embedded
        endpoints = tp.DriverEndpoints(control_channel="aeron:ipc?term-length=1m",
                                       announce_stream_id=1001, keepalive_interval=0.05,
                                       announce_period=0.05)
        producer = tp.Producer(ctx, stream, base_dir=str(shm), driver=endpoints)
        consumer = tp.Consumer(ctx, stream, allowed_base_dir=str(shm), driver=endpoints)
        assert producer.is_driver_mode and producer.is_active
        rng = np.random.default_rng(1)
        good, bad = [], []

        def cb(f):
            ok = verify(f.array, f.seq)
            if f.recheck():
                (good if ok else bad).append(f.seq)

        end = time.monotonic() + 30.0
        while len(good) < 20 and time.monotonic() < end:
            with producer.claim((1024,), "u8") as c:
                fill(c.array, c.seq, rng)
            pump(producer, consumer, cb, lambda: False, timeout=0.005)
        assert len(good) >= 20 and bad == [], (len(good), bad, consumer.state, consumer.last_error)
        assert consumer.driver_state == "attached"
        # the slot the producer writes is in the driver's files, under its base dir
        with producer.claim((8,), "u8") as c:
            assert mapping_of(c.array.ctypes.data)[2].startswith(str(shm))
        producer.close()
        del producer, consumer, ctx
    finally:
        driver.stop()
        if aeron_dir:
            shutil.rmtree(aeron_dir, ignore_errors=True)
