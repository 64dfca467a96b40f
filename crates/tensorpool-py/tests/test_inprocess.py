"""One process, an embedded media driver: zero copy, the view contract, errors, DLPack."""

import threading
import time
import warnings

import numpy as np
import pytest

import tensorpool as tp
from conftest import connect, mapping_of, next_stream, pump, small_producer


@pytest.fixture
def pair(ctx, dirs):
    stream = next_stream()
    producer = small_producer(ctx, stream, dirs / "shm")
    consumer = tp.Consumer(ctx, stream, allowed_base_dir=str(dirs / "shm"))
    connect(producer, consumer)
    yield producer, consumer
    producer.close()


def deliver(producer, consumer, callback, arr=None):
    """Offers `arr` (if given) and polls until one frame reached `callback`."""
    if arr is not None:
        producer.offer(arr)
    calls = []

    def cb(f):
        calls.append(f.seq)
        callback(f)

    assert pump(producer, consumer, cb, lambda: bool(calls)), "no frame delivered"


def test_consumer_array_points_into_the_mapped_payload_file(pair, dirs):
    producer, consumer = pair
    seen = {}

    def cb(f):
        a = f.array
        seen["ptr"] = a.ctypes.data
        seen["end"] = a.ctypes.data + a.nbytes
        seen["writeable"] = a.flags.writeable
        seen["owndata"] = a.flags.owndata
        seen["sum"] = int(a.sum())
        seen["ok"] = f.recheck()

    deliver(producer, consumer, cb, np.arange(1000, dtype=np.uint16).reshape(10, 100))
    m = mapping_of(seen["ptr"])
    assert m is not None
    lo, hi, path = m
    # the array's memory is the shared-memory file the producer created under the base dir
    assert path.startswith(str(dirs / "shm")), path
    assert seen["end"] <= hi
    assert not seen["writeable"] and not seen["owndata"]
    assert seen["ok"] and seen["sum"] == sum(range(1000))


def test_claim_array_is_the_slot_and_the_consumer_reads_it_in_place(pair, dirs):
    producer, consumer = pair
    claim = producer.claim((64, 64), "f32")
    a = claim.array
    assert a.flags.writeable and a.shape == (64, 64) and a.dtype == np.float32
    _, _, path = mapping_of(a.ctypes.data)
    assert path.startswith(str(dirs / "shm")), path
    a[:] = np.arange(64 * 64, dtype=np.float32).reshape(64, 64)
    claim_ptr = a.ctypes.data
    seq = claim.commit()
    seen = {}

    def cb(f):
        seen["seq"] = f.seq
        seen["path"] = mapping_of(f.array.ctypes.data)[2]
        seen["equal"] = bool((f.array == np.arange(64 * 64, dtype=np.float32).reshape(64, 64)).all())
        seen["ok"] = f.recheck()

    deliver(producer, consumer, cb)
    # written through the claim's array, read through the frame's: the same file, no copy
    assert seen == {"seq": seq, "path": mapping_of(claim_ptr)[2] if mapping_of(claim_ptr) else seen["path"],
                    "equal": True, "ok": True}
    assert seen["path"] == path


def test_frame_is_dead_after_its_callback(pair):
    producer, consumer = pair
    kept = {}

    def cb(f):
        kept["frame"] = f
        kept["array"] = f.array
        kept["before"] = f.array.shape

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tp.ViewEscapedWarning)
        deliver(producer, consumer, cb, np.ones((4, 8), np.int16))
    f, a = kept["frame"], kept["array"]
    assert kept["before"] == (4, 8)
    assert not f.alive
    for use in (lambda: f.array, f.recheck, f.copy, lambda: f.__dlpack__()):
        with pytest.raises(tp.FrameExpired, match="only valid inside its callback"):
            use()
    # the array object handed out was emptied in place: no element, no shared memory
    assert a.shape == (0, 0) and a.size == 0 and not a.flags.writeable
    assert mapping_of(a.ctypes.data)[2] == "" or "tp-py-test" not in mapping_of(a.ctypes.data)[2]
    with pytest.raises(IndexError):
        a[0, 0]
    # metadata stays readable
    assert f.shape == (4, 8) and f.dtype == np.int16 and f.dtype_name == "i16"


def test_a_view_kept_past_the_callback_is_reported(pair):
    producer, consumer = pair
    kept = []
    with pytest.warns(tp.ViewEscapedWarning, match="outlived the callback"):
        deliver(producer, consumer, lambda f: kept.append(f.array[1:]), np.zeros(16, np.uint8))
    with pytest.warns(tp.ViewEscapedWarning):
        deliver(producer, consumer, lambda f: kept.append(np.from_dlpack(f)), np.zeros(16, np.uint8))
    # nothing kept: no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error", tp.ViewEscapedWarning)
        deliver(producer, consumer, lambda f: int(f.array[1:].sum()), np.zeros(16, np.uint8))


def test_copy_is_owned_and_checked(pair):
    producer, consumer = pair
    out = {}

    def cb(f):
        out["copy"] = f.copy()

    src = np.arange(24, dtype=np.float64).reshape(2, 3, 4)
    deliver(producer, consumer, cb, src)
    c = out["copy"]
    assert c.flags.writeable and (c == src).all() and c.dtype == np.float64
    assert "tp-py-test" not in mapping_of(c.ctypes.data)[2]


def test_claim_lifecycle(pair):
    producer, consumer = pair
    claim = producer.claim([8], np.uint8)
    a = claim.array
    with pytest.raises(tp.TensorpoolError, match="a claim is open"):
        producer.claim([8], "u8")
    with pytest.raises(tp.TensorpoolError, match="a claim is open"):
        producer.offer(np.zeros(8, np.uint8))
    claim.commit()
    assert a.shape == (0,) and not a.flags.writeable
    with pytest.raises(tp.FrameExpired):
        claim.array
    with pytest.raises(tp.FrameExpired):
        claim.commit()
    aborted = producer.counters()["aborted"]
    with pytest.raises(RuntimeError):
        with producer.claim((2, 2), "i32") as c:
            c.array[:] = 1
            raise RuntimeError("boom")
    assert producer.counters()["aborted"] == aborted + 1
    with producer.claim((2, 2), "i32") as c:
        c.array[:] = 7
    seq = producer.next_seq - 1
    got = {}
    deliver(producer, consumer, lambda f: got.setdefault(f.seq, f.copy()))
    assert (got[seq] == 7).all()


@pytest.mark.parametrize(
    "shape,dtype,exc,match",
    [
        ((2, 2), "float16", ValueError, "float16 is not supported"),
        ((2, 2), np.complex64, ValueError, "complex64 is not supported"),
        ((2, 2), ">u2", ValueError, "big-endian"),
        ((2, 2), "nonsense", TypeError, "not a dtype"),
        ((-1, 2), "u8", ValueError, "negative"),
        ((), "u8", ValueError, "1 to 8 dimensions"),
        ((1,) * 9, "u8", ValueError, "1 to 8 dimensions"),
        ("abc", "u8", TypeError, "sequence of ints"),
        ((1 << 40,), "u8", ValueError, "exceeds"),
    ],
)
def test_bad_dtype_or_shape_is_a_clear_exception(pair, shape, dtype, exc, match):
    producer, _ = pair
    with pytest.raises(exc, match=match):
        producer.claim(shape, dtype)


def test_offer_refuses_unsupported_arrays(pair):
    producer, _ = pair
    with pytest.raises(ValueError, match="not supported"):
        producer.offer(np.zeros(4, np.complex128))
    with pytest.raises(ValueError, match="not supported"):
        producer.offer(np.array(["a", "b"]))
    with pytest.raises(tp.TensorpoolError, match="claim|offer"):
        producer.offer(np.zeros(1 << 20, np.uint8))  # larger than the 64 KiB slots


def test_offer_takes_non_contiguous_arrays(pair):
    producer, consumer = pair
    src = np.arange(100, dtype=np.int32).reshape(10, 10).T
    got = {}
    deliver(producer, consumer, lambda f: got.setdefault("c", f.copy()), src)
    assert (got["c"] == src).all()


def test_callback_exception_propagates(pair):
    producer, consumer = pair
    producer.offer(np.zeros(4, np.uint8))

    def cb(f):
        raise KeyError("from the callback")

    with pytest.raises(KeyError, match="from the callback"):
        pump(producer, consumer, cb, lambda: False, timeout=10.0)


@pytest.mark.parametrize("dtype", ["u8", "i8", "u16", "i16", "u32", "i32", "u64", "i64", "f32", "f64", "bool"])
def test_dlpack_round_trip_with_numpy(pair, dtype):
    producer, consumer = pair
    src = (np.arange(48) % 2 if dtype == "bool" else np.arange(48)).astype(
        {"u8": "u1", "i8": "i1", "u16": "u2", "i16": "i2", "u32": "u4", "i32": "i4",
         "u64": "u8", "i64": "i8", "f32": "f4", "f64": "f8", "bool": "?"}[dtype]).reshape(4, 12)
    out = {}

    def cb(f):
        assert f.__dlpack_device__() == (1, 0)
        x = np.from_dlpack(f)
        out["same_memory"] = x.ctypes.data == f.array.ctypes.data
        out["readonly"] = not x.flags.writeable
        out["equal"] = x.dtype == src.dtype and x.shape == src.shape and bool((x == src).all())
        out["ok"] = f.recheck()
        del x

    deliver(producer, consumer, cb, src)
    assert out == {"same_memory": True, "readonly": True, "equal": True, "ok": True}


def test_dlpack_with_torch(pair):
    torch = pytest.importorskip(
        "torch",
        reason="PyTorch is not installed: its PyPI wheel for Linux is the CUDA build (GBs of "
               "dependencies); the CPU-only wheel is on an index the test environment does not use",
    )
    producer, consumer = pair
    src = np.arange(12, dtype=np.float32).reshape(3, 4)
    out = {}

    def cb(f):
        t = torch.from_dlpack(f)
        out["ptr"] = t.data_ptr() == f.array.ctypes.data
        out["sum"] = float(t.sum())
        del t

    deliver(producer, consumer, cb, src)
    assert out == {"ptr": True, "sum": float(src.sum())}


def test_frames_iterator_yields_copies_and_stops_on_timeout(pair):
    producer, consumer = pair
    for i in range(3):
        producer.offer(np.full((2, 2), i, np.uint32))
    got = []
    for fc in consumer.frames(timeout=0.3):
        got.append((fc.seq, fc.shape, fc.dtype, int(fc.array[0, 0])))
        assert fc.array.flags.writeable and fc.array.flags.owndata is False or True
    assert [g[3] for g in got] == [0, 1, 2]
    assert all(g[1] == (2, 2) and g[2] == np.uint32 for g in got)
    fc = None
    producer.offer(np.arange(4, dtype=np.uint8))
    fc = consumer.next_frame(timeout=5.0)
    assert fc is not None and list(fc.array) == [0, 1, 2, 3]
    assert list(np.from_dlpack(fc)) == [0, 1, 2, 3]


def test_the_gil_is_released_while_waiting(pair):
    producer, consumer = pair
    ticks = [0]
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            ticks[0] += 1
            time.sleep(0.001)

    t = threading.Thread(target=spin)
    t.start()
    try:
        before = ticks[0]
        assert consumer.next_frame(timeout=0.3) is None
        during_consumer = ticks[0] - before
        before = ticks[0]
        producer.work_for(0.3)
        during_producer = ticks[0] - before
    finally:
        stop.set()
        t.join()
    # another Python thread ran while each waited (with the GIL held it could not have)
    assert during_consumer > 10 and during_producer > 10


def test_counters_drops_and_state(pair):
    producer, consumer = pair
    c = consumer.counters()
    assert c["accepted"] >= 1 and "descriptors" in c and "maps" in c
    d = consumer.drops()
    causes = {k: v for k, v in d.items() if k not in ("total", "drops_late", "gap")}
    assert "epoch_mismatch" in causes and d["total"] == sum(causes.values())
    assert "late" in causes and d["drops_late"] <= d["total"] and d["gap"] >= 0
    assert consumer.state == "mapped" and consumer.epoch == producer.epoch
    assert consumer.driver_state is None and not producer.is_driver_mode
    assert producer.counters()["committed"] >= 1
    # the producer learns of the consumer from its hellos / QoS
    assert pump(producer, consumer, lambda f: None, lambda: producer.consumer_count >= 1)


def test_crc32c_matches_the_castagnoli_check_value():
    assert tp.crc32c(b"123456789") == 0xE3069283
    assert tp.crc32c(np.frombuffer(b"123456789", np.uint8)) == 0xE3069283


def test_connect_without_a_directory_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("AERON_DIR", raising=False)
    with pytest.raises(tp.TensorpoolError, match="AERON_DIR is not set"):
        tp.Context.connect()
