//! After construction the supervisor allocates nothing: with 256 consumers sending hellos
//! (with per-consumer stream requests) and QoS, a producer announcing and sending QoS, a
//! 257th consumer refused, a colliding source, and a whole generation of consumers going
//! stale and being replaced (ids reclaimed and reassigned), a counting global allocator sees
//! 0 allocations.

use tensorpool::config::NoEnv;
use tensorpool::control::RecordingSink;
use tensorpool::supervisor::{SupervisorConfig, SupervisorCore};
use tensorpool_codec::wire::{
    ClockDomain, ConsumerHello, Mode, QosConsumer, QosProducer, ShmPoolAnnounce,
};
use tensorpool_codec::{Bytes, Group, Message};
use tensorpool_testkit::CountingAllocator;

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

const MS: u64 = 1_000_000;
const STREAM: u32 = 10_000;
const CONSUMERS: u32 = 256;

fn encode_hello(consumer_id: u32, buf: &mut [u8; 256]) -> usize {
    ConsumerHello {
        stream_id: STREAM,
        consumer_id,
        supports_shm: true,
        supports_progress: false,
        mode: Mode::Stream,
        max_rate_hz: 0,
        expected_layout_version: 1,
        progress_interval_us: None,
        progress_bytes_delta: None,
        progress_major_delta_units: None,
        descriptor_stream_id: 31_000,
        control_stream_id: 32_000,
        descriptor_channel: Bytes::new(b"aeron:ipc?term-length=64k"),
        control_channel: Bytes::new(b"aeron:ipc?term-length=64k"),
    }
    .encode(buf)
    .unwrap()
}

fn encode_qos(consumer_id: u32, seq: u64, buf: &mut [u8; 256]) -> usize {
    QosConsumer {
        stream_id: STREAM,
        consumer_id,
        epoch: 1,
        last_seq_seen: seq,
        drops_gap: seq / 100,
        drops_late: 0,
        mode: Mode::Stream,
    }
    .encode(buf)
    .unwrap()
}

#[test]
fn steady_state_with_256_consumers_allocates_nothing() {
    let cfg = SupervisorConfig::from_toml(
        "[supervisor]\nper_consumer_enabled = true\nconsumer_capacity = 256\nconsumer_stale_ms = 5000\nproducer_stale_ms = 5000\n[[supervisor.rules]]\nconsumer_id = 3\nforce_mode = 2\nmax_rate_hz = 5\n",
        &NoEnv,
    )
    .unwrap();
    let mut core = SupervisorCore::new(cfg, 0);
    let mut sink = RecordingSink::with_capacity(4, 512);
    let mut buf = [0u8; 256];
    let mut announce = [0u8; 256];
    let announce_len = ShmPoolAnnounce {
        stream_id: STREAM,
        producer_id: 7,
        epoch: 1,
        announce_timestamp_ns: 0,
        announce_clock_domain: ClockDomain::Monotonic,
        layout_version: 1,
        header_nslots: 64,
        header_slot_bytes: 256,
        payload_pools: Group::default(),
        header_region_uri: Bytes::new(b"shm:file?path=/dev/shm/x"),
    }
    .encode(&mut announce)
    .unwrap();
    // one second of a whole population: generation `g` uses ids g*1000 + k
    let mut second = |core: &mut SupervisorCore, sink: &mut RecordingSink, g: u32, s: u64| {
        let now = s * 1_000 * MS;
        core.on_message(&announce[..announce_len], now, sink);
        let n = QosProducer {
            stream_id: STREAM,
            producer_id: 7,
            epoch: 1,
            current_seq: s * 30,
            watermark: None,
        }
        .encode(&mut buf)
        .unwrap();
        core.on_message(&buf[..n], now, sink);
        for k in 0..CONSUMERS {
            let id = g * 1_000 + k;
            sink.clear();
            let n = encode_hello(id, &mut buf);
            core.on_message_from(&buf[..n], u64::from(id) + 1, now, sink);
            // consumer 0's hello id is shared with another source from the first second on:
            // its original source is the displaced one, not answered
            if k != 0 {
                assert_eq!(sink.len(), 1);
            }
            let n = encode_qos(id, s * 30, &mut buf);
            core.on_message_from(&buf[..n], u64::from(id) + 100_000, now, sink);
        }
        // a 257th consumer: refused; a second source on consumer 0's hello id, twice
        sink.clear();
        let n = encode_hello(g * 1_000 + 999, &mut buf);
        core.on_message_from(&buf[..n], 5, now, sink);
        let n = encode_hello(g * 1_000, &mut buf);
        core.on_message_from(&buf[..n], 77_777, now, sink);
        core.on_message_from(&buf[..n], 1 + u64::from(g * 1_000), now, sink);
        core.poll_timers(now);
    };
    // warm-up (every table already preallocated: this only proves the harness)
    for s in 1..=2 {
        second(&mut core, &mut sink, 0, s);
    }
    assert_eq!(core.counters().consumers, 256);
    core.check_invariants().unwrap();
    let (probe, probed) = CountingAllocator::count_thread(|| std::hint::black_box(vec![1u8; 8]));
    drop(probe);
    assert!(probed.allocations > 0, "the allocator counts");

    // The core runs on this thread alone, so this thread is what is counted: the test
    // harness's own thread allocates at times while a test runs (4 allocations of 900 bytes
    // in 13 of 300 runs when counted process-wide).
    CountingAllocator::reset_thread();
    CountingAllocator::arm_thread();
    for s in 3..=22 {
        second(&mut core, &mut sink, 0, s);
    }
    // generation 0 falls silent and goes stale; generation 1 takes its place
    core.poll_timers(40_000 * MS);
    for s in 41..=60 {
        second(&mut core, &mut sink, 1, s);
    }
    CountingAllocator::disarm_thread();
    let counts = CountingAllocator::thread_counts();
    assert!(counts.is_zero(), "allocations in steady state: {counts:?}");
    core.check_invariants().unwrap();
    let k = core.counters();
    assert_eq!(k.consumers, 256);
    assert_eq!(k.consumers_stale, 256);
    assert!(k.consumers_refused >= 40);
    assert_eq!(k.collisions, 2, "one per generation");
    assert_eq!(k.assignments, 2 * 2 * 256);
    assert!(k.forced_mode > 0);
}
