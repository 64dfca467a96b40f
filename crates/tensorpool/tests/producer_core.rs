//! The producer core without Aeron (`ProducerCore`, standalone files under a temporary base
//! dir, `RecordingSinks` and `RecordingLinks` as transport): a hello is answered with
//! per-consumer streams once registered, or declined at once; the announce and QoS timers;
//! claim -> commit sends exactly one descriptor that a consumer's read of the slot proves;
//! back pressure on the descriptor stream is counted and a stall counted once (counter 108);
//! claim/commit cycles allocate nothing; and the `producer_core` fuzz target's logic
//! (`producer_ops`) on generated inputs.

mod producer_ops;

use std::time::Duration;

use proptest::prelude::*;
use tensorpool::frame::{Dtype, TensorSpec};
use tensorpool::producer::{ClaimError, FrameStamp, ProducerCore, RecordingLinks, RecordingSinks};
use tensorpool_aeron::PublishError;
use tensorpool_codec::wire::{
    ConsumerConfig, ConsumerHello, FrameDescriptor, Mode, QosConsumer, QosProducer, ShmPoolAnnounce,
};
use tensorpool_codec::{Bytes, Message};
use tensorpool_shm::{AllowedBaseDirs, ExpectedRegion, HeaderRing, MapOptions, ReadOnly, seqlock};
use tensorpool_testkit::CountingAllocator;

use producer_ops::{STREAM, config, temp_base};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

const MS: u64 = 1_000_000;

fn encode<'m, M: Message<'m>>(m: &M) -> Vec<u8> {
    let mut buf = vec![0u8; m.encoded_len()];
    m.encode(&mut buf).unwrap();
    buf
}

fn hello(
    consumer_id: u32,
    descriptor: (&'static str, u32),
    control: (&'static str, u32),
) -> Vec<u8> {
    encode(&ConsumerHello {
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
        descriptor_stream_id: descriptor.1,
        control_stream_id: control.1,
        descriptor_channel: Bytes::new(descriptor.0.as_bytes()),
        control_channel: Bytes::new(control.0.as_bytes()),
    })
}

fn configs(sinks: &RecordingSinks) -> Vec<(u32, String, u32, String, u32)> {
    sinks
        .control
        .messages()
        .map(|m| {
            let c = ConsumerConfig::decode(m).expect("a ConsumerConfig");
            let text = |b: &Bytes<'_>| String::from_utf8(b.as_bytes().to_vec()).unwrap();
            (
                c.consumer_id,
                text(&c.descriptor_channel),
                c.descriptor_stream_id,
                text(&c.control_channel),
                c.control_stream_id,
            )
        })
        .collect()
}

fn spec() -> TensorSpec {
    TensorSpec::new(Dtype::Uint8, &[16, 16]).unwrap()
}

#[test]
fn w_10_1_3_hello_is_answered_once_its_per_consumer_streams_are_registered() {
    let (_tmp, base) = temp_base();
    let links = RecordingLinks::default().ready_after(1);
    let mut core = ProducerCore::standalone(config(&base), Box::new(links.clone())).unwrap();
    let mut sinks = RecordingSinks::default();
    let now = 1_000 * MS;
    core.on_control(
        &hello(7, ("aeron:ipc", 2001), ("aeron:ipc", 2002)),
        now,
        &mut sinks.sinks(),
    );
    assert_eq!(core.consumer_count(), 1);
    assert!(
        sinks.control.is_empty(),
        "no answer while the registrations are in flight"
    );
    let opened = links.opened();
    assert_eq!(opened.len(), 2);
    assert_eq!(
        (opened[0].channel.as_str(), opened[0].stream_id),
        ("aeron:ipc", 2001)
    );
    core.on_tick(now, &mut sinks.sinks()); // first poll: still pending
    assert!(configs(&sinks).is_empty());
    core.on_tick(now + MS, &mut sinks.sinks()); // second poll: registered
    assert_eq!(
        configs(&sinks),
        vec![(7, "aeron:ipc".into(), 2001, "aeron:ipc".into(), 2002)]
    );
    let c = core.counters();
    assert_eq!(
        (c.hellos, c.per_consumer_granted, c.configs_sent),
        (1, 2, 1)
    );
    assert_eq!(core.per_consumer_descriptor_streams(), 1);

    // A frame goes out on the shared stream and on the consumer's own stream.
    sinks.clear();
    let seq = core.offer(&spec(), &[3u8; 256], sinks.sinks()).unwrap();
    assert_eq!(sinks.descriptor.len(), 1);
    let own = opened[0].sink.lock().unwrap();
    let d =
        FrameDescriptor::decode(own.messages().next().expect("per-consumer descriptor")).unwrap();
    assert_eq!((d.seq, Some(d.epoch)), (seq, core.epoch()));
    assert_eq!(core.counters().descriptors_per_consumer, 1);
}

fn supervisor_config(consumer_id: u32, descriptor: (&'static str, u32)) -> Vec<u8> {
    encode(&ConsumerConfig {
        stream_id: STREAM,
        consumer_id,
        use_shm: true,
        mode: Mode::Stream,
        descriptor_stream_id: descriptor.1,
        control_stream_id: 0,
        payload_fallback_uri: Bytes::new(b""),
        descriptor_channel: Bytes::new(descriptor.0.as_bytes()),
        control_channel: Bytes::new(b""),
    })
}

/// A `ConsumerConfig` for our stream that the producer did not send (a supervisor's): the
/// producer opens the per-consumer descriptor stream it assigns and publishes descriptors
/// on it, answers no hello while supervised (not its own assignment, not even a decline),
/// and answers again once the supervisor has been silent for the staleness window.
#[test]
fn w_10_1_3_a_supervisors_assignment_wins_and_the_producer_stops_answering() {
    let (_tmp, base) = temp_base();
    let links = RecordingLinks::default();
    let mut core = ProducerCore::standalone(config(&base), Box::new(links.clone())).unwrap();
    let mut sinks = RecordingSinks::default();
    let now = 1_000 * MS;
    assert!(!core.is_supervised(now));
    core.on_control(
        &supervisor_config(7, ("aeron:ipc", 3001)),
        now,
        &mut sinks.sinks(),
    );
    assert!(core.is_supervised(now));
    let opened = links.opened();
    assert_eq!(opened.len(), 1);
    assert_eq!(
        (opened[0].channel.as_str(), opened[0].stream_id),
        ("aeron:ipc", 3001)
    );
    // The consumer's hello asks for other streams: recorded, not answered, not granted.
    core.on_control(
        &hello(7, ("aeron:ipc", 2001), ("aeron:ipc", 2002)),
        now + MS,
        &mut sinks.sinks(),
    );
    core.on_tick(now + 2 * MS, &mut sinks.sinks());
    core.on_tick(now + 3 * MS, &mut sinks.sinks());
    assert!(
        configs(&sinks).is_empty(),
        "a supervised producer sends no ConsumerConfig"
    );
    assert_eq!(links.opened().len(), 1, "no stream of the producer's own");
    assert_eq!(core.per_consumer_descriptor_streams(), 1);
    let c = core.counters();
    assert_eq!(
        (
            c.supervisor_configs,
            c.hellos_left_to_supervisor,
            c.configs_sent
        ),
        (1, 1, 0)
    );

    // Frames go out on the assigned stream (and the shared one).
    sinks.clear();
    let seq = core.offer(&spec(), &[5u8; 256], sinks.sinks()).unwrap();
    assert_eq!(sinks.descriptor.len(), 1);
    {
        let own = opened[0].sink.lock().unwrap();
        let d =
            FrameDescriptor::decode(own.messages().next().expect("assigned descriptor")).unwrap();
        assert_eq!(d.seq, seq);
    }
    assert_eq!(core.counters().descriptors_per_consumer, 1);

    // The supervisor declines (empty channel + 0): the assigned stream is closed.
    core.on_control(
        &supervisor_config(7, ("", 0)),
        now + 4 * MS,
        &mut sinks.sinks(),
    );
    assert_eq!(core.per_consumer_descriptor_streams(), 0);

    // Silent supervisor past consumer_stale_factor hello intervals: the producer answers.
    let later = now + 4 * MS + 60_000 * MS;
    assert!(!core.is_supervised(later));
    sinks.clear();
    core.on_control(&hello(8, ("", 0), ("", 0)), later, &mut sinks.sinks());
    assert_eq!(configs(&sinks).len(), 1);
}

#[test]
fn w_10_1_3_refused_invalid_or_disabled_streams_are_declined_at_once() {
    let (_tmp, base) = temp_base();
    let links = RecordingLinks::default().refusing(true);
    let mut core = ProducerCore::standalone(config(&base), Box::new(links)).unwrap();
    let mut sinks = RecordingSinks::default();
    let now = 1_000 * MS;
    // Refused by the transport, and a channel that is not an Aeron channel.
    core.on_control(
        &hello(1, ("aeron:ipc", 2001), ("udp://x", 2002)),
        now,
        &mut sinks.sinks(),
    );
    assert_eq!(
        configs(&sinks),
        vec![(1, String::new(), 0, String::new(), 0)]
    );
    assert_eq!(core.counters().per_consumer_declined, 2);

    // Per-consumer streams disabled by configuration.
    let (_tmp2, base2) = temp_base();
    let mut cfg = config(&base2);
    cfg.per_consumer_streams = false;
    let links = RecordingLinks::default();
    let mut core = ProducerCore::standalone(cfg, Box::new(links.clone())).unwrap();
    sinks.clear();
    core.on_control(
        &hello(2, ("aeron:ipc", 2001), ("", 0)),
        now,
        &mut sinks.sinks(),
    );
    assert_eq!(
        configs(&sinks),
        vec![(2, String::new(), 0, String::new(), 0)]
    );
    assert!(links.opened().is_empty(), "nothing opened");
    assert_eq!(core.counters().per_consumer_declined, 1);

    // Another stream's hello is not ours to answer.
    sinks.clear();
    let bytes = hello(3, ("", 0), ("", 0));
    let mut theirs = ConsumerHello::decode(&bytes).unwrap();
    theirs.stream_id = STREAM + 1;
    core.on_control(&encode(&theirs), now, &mut sinks.sinks());
    assert!(sinks.control.is_empty());
    assert_eq!(core.consumer_count(), 1);
}

#[test]
fn producer_core_announce_and_qos_timers_fire_once_per_period() {
    let (_tmp, base) = temp_base();
    let mut core =
        ProducerCore::standalone(config(&base), Box::new(RecordingLinks::default())).unwrap();
    let mut sinks = RecordingSinks::default();
    let t0 = 1_000 * MS;
    core.on_tick(t0, &mut sinks.sinks());
    let a = ShmPoolAnnounce::decode(sinks.announce.messages().next().unwrap()).unwrap();
    assert_eq!((a.stream_id, Some(a.epoch)), (STREAM, core.epoch()));
    assert_eq!(a.announce_timestamp_ns, t0);
    assert_eq!(sinks.qos.len(), 1);
    // Half a period later: nothing due.
    sinks.clear();
    core.on_tick(t0 + 5 * MS, &mut sinks.sinks());
    assert_eq!((sinks.announce.len(), sinks.qos.len()), (0, 0));
    // A frame, then a full period: one announce and one QoS naming the next sequence.
    core.offer(&spec(), &[1u8; 256], sinks.sinks()).unwrap();
    core.on_tick(t0 + 10 * MS, &mut sinks.sinks());
    assert_eq!(sinks.announce.len(), 1);
    let q = QosProducer::decode(sinks.qos.messages().next().unwrap()).unwrap();
    assert_eq!((q.epoch, q.current_seq), (core.epoch().unwrap(), 1));
    let c = core.counters();
    assert_eq!((c.announces_sent, c.qos_sent), (2, 2));
    // A new epoch is announced at the next tick, whatever the period says.
    sinks.clear();
    let epoch = core.bump_epoch().unwrap();
    core.on_tick(t0 + 11 * MS, &mut sinks.sinks());
    let a = ShmPoolAnnounce::decode(sinks.announce.messages().next().unwrap()).unwrap();
    assert_eq!(a.epoch, epoch);
}

#[test]
fn producer_core_commit_sends_one_descriptor_the_slot_proves() {
    let (_tmp, base) = temp_base();
    let mut core =
        ProducerCore::standalone(config(&base), Box::new(RecordingLinks::default())).unwrap();
    let mut sinks = RecordingSinks::default();
    let epoch = core.epoch().unwrap();
    let allowed = AllowedBaseDirs::new([&base]).unwrap();
    let uri = tensorpool_shm::RegionUri::parse(&format!(
        "shm:file?path={}",
        core.header_ring_path().unwrap().display()
    ))
    .unwrap();
    let ring = HeaderRing::<ReadOnly>::open(
        &uri,
        &allowed,
        &ExpectedRegion::header_ring(tensorpool_shm::LAYOUT_VERSION, epoch, STREAM, 4),
        MapOptions::default(),
    )
    .unwrap();
    for expected in 0..6u64 {
        // (the claim borrows the sinks: nothing can be sent before its commit)
        let mut claim = core.claim(&spec(), sinks.sinks()).unwrap();
        assert_eq!(claim.seq(), expected);
        let index = claim.header_index();
        assert_eq!(index, (expected % 4) as u32);
        claim.payload_mut().fill(expected as u8);
        assert!(
            !seqlock::is_committed(ring.seq_commit(index)),
            "in progress until commit"
        );
        assert_eq!(claim.commit(), expected);
        assert_eq!(sinks.descriptor.len(), 1, "exactly one descriptor");
        let d = FrameDescriptor::decode(sinks.descriptor.messages().next().unwrap()).unwrap();
        assert_eq!((d.stream_id, d.epoch, d.seq), (STREAM, epoch, expected));
        assert_eq!(ring.seq_commit(index), seqlock::committed(expected));
        sinks.clear();
    }
    // An aborted claim sends nothing and its sequence is reused.
    let claim = core.claim(&spec(), sinks.sinks()).unwrap();
    assert_eq!(claim.seq(), 6);
    claim.abort();
    assert!(sinks.descriptor.is_empty());
    assert_eq!(core.next_seq(), 6);
    let c = core.counters();
    assert_eq!((c.committed, c.aborted, c.descriptors_sent), (6, 1, 6));
}

/// A re-materializing role (bridge receiver, rate limiter) keeps its source's frame identity:
/// a stamped claim takes a given sequence (forward only), timestamp and meta_version, and the
/// descriptor carries the trace id set on the claim (Bridge Spec §6, §7).
#[test]
fn br_6_7_stamped_seq_jumps_forward_only_and_the_descriptor_carries_the_trace_id() {
    let (_tmp, base) = temp_base();
    let mut core =
        ProducerCore::standalone(config(&base), Box::new(RecordingLinks::default())).unwrap();
    let mut sinks = RecordingSinks::default();
    let stamp = |seq| FrameStamp {
        seq,
        timestamp_ns: 1234,
        meta_version: 9,
    };
    let len = spec().len_bytes();
    let mut claim = core
        .claim_stamped(&spec(), len, stamp(41), sinks.sinks())
        .unwrap();
    assert_eq!(claim.seq(), 41);
    claim.set_trace_id(Some(0xABCD));
    claim.commit();
    let d = FrameDescriptor::decode(sinks.descriptor.messages().next().unwrap()).unwrap();
    assert_eq!((d.seq, d.trace_id), (41, Some(0xABCD)));
    assert_eq!(d.meta_version, Some(9));
    sinks.clear();
    assert!(
        matches!(
            core.claim_stamped(&spec(), len, stamp(7), sinks.sinks()),
            Err(ClaimError::SeqBehind { seq: 7, next: 42 })
        ),
        "never backwards"
    );
    assert!(
        matches!(
            core.claim_stamped(&spec(), len, stamp(1 << 63), sinks.sinks()),
            Err(ClaimError::SeqExhausted)
        ),
        "63-bit sequence space"
    );
    let claim = core.claim(&spec(), sinks.sinks()).unwrap();
    assert_eq!(claim.seq(), 42);
    claim.commit();
    let d = FrameDescriptor::decode(sinks.descriptor.messages().next().unwrap()).unwrap();
    assert_eq!(d.trace_id, None, "no trace id unless set");
}

#[test]
fn producer_core_back_pressure_is_counted_and_a_stall_counted_once() {
    let (_tmp, base) = temp_base();
    let mut cfg = config(&base);
    cfg.stall_threshold = Duration::ZERO;
    let mut core = ProducerCore::standalone(cfg, Box::new(RecordingLinks::default())).unwrap();
    let mut sinks = RecordingSinks::default();
    sinks.descriptor.fail_with = Some(PublishError::BackPressured);
    for _ in 0..3 {
        core.offer(&spec(), &[0u8; 256], sinks.sinks()).unwrap();
    }
    let c = core.counters();
    assert_eq!(c.committed, 3, "frames stay committed under back pressure");
    assert_eq!(c.descriptors_back_pressured, 3);
    assert_eq!(c.descriptor_stalls, 1, "one stall, counted once");
    // The stream takes descriptors again: the stall is over; the next one is a new stall.
    sinks.descriptor.fail_with = None;
    core.offer(&spec(), &[0u8; 256], sinks.sinks()).unwrap();
    sinks.descriptor.fail_with = Some(PublishError::BackPressured);
    core.offer(&spec(), &[0u8; 256], sinks.sinks()).unwrap();
    let c = core.counters();
    assert_eq!((c.descriptors_sent, c.descriptor_stalls), (1, 2));
    // Nobody subscribed is no back pressure and no stall.
    sinks.descriptor.fail_with = Some(PublishError::NotConnected);
    core.offer(&spec(), &[0u8; 256], sinks.sinks()).unwrap();
    let c = core.counters();
    assert_eq!(
        (
            c.descriptors_not_connected,
            c.descriptors_back_pressured,
            c.descriptor_stalls
        ),
        (1, 4, 2)
    );

    // Below the threshold: back pressure counted, no stall.
    let (_tmp2, base2) = temp_base();
    let mut cfg = config(&base2);
    cfg.stall_threshold = Duration::from_secs(3600);
    let mut core = ProducerCore::standalone(cfg, Box::new(RecordingLinks::default())).unwrap();
    sinks.descriptor.fail_with = Some(PublishError::BackPressured);
    core.offer(&spec(), &[0u8; 256], sinks.sinks()).unwrap();
    core.offer(&spec(), &[0u8; 256], sinks.sinks()).unwrap();
    let c = core.counters();
    assert_eq!((c.descriptors_back_pressured, c.descriptor_stalls), (2, 0));
}

#[test]
fn arch_2_producer_core_claim_commit_cycles_allocate_nothing() {
    let (_tmp, base) = temp_base();
    let links = RecordingLinks::default();
    let mut core = ProducerCore::standalone(config(&base), Box::new(links.clone())).unwrap();
    let mut sinks = RecordingSinks::with_capacity(8, 512);
    let mut now = 1_000 * MS;
    // One consumer with its own descriptor stream, so the per-consumer path runs too.
    core.on_control(
        &hello(1, ("aeron:ipc", 2001), ("", 0)),
        now,
        &mut sinks.sinks(),
    );
    core.on_tick(now, &mut sinks.sinks());
    assert_eq!(core.per_consumer_descriptor_streams(), 1);
    let own = links.opened()[0].sink.clone();
    // The consumer's QoS keeps it (and its stream) from going stale.
    let qos = encode(&QosConsumer {
        stream_id: STREAM,
        consumer_id: 1,
        epoch: core.epoch().unwrap(),
        last_seq_seen: 0,
        drops_gap: 0,
        drops_late: 0,
        mode: Mode::Stream,
    });
    let spec = spec();
    let mut cycle = |core: &mut ProducerCore, sinks: &mut RecordingSinks, i: u64| {
        core.on_qos(&qos, now);
        let mut claim = core.claim(&spec, sinks.sinks()).expect("claim");
        claim.payload_mut()[0] = i as u8;
        claim.commit();
        now += MS;
        core.on_tick(now, &mut sinks.sinks());
        sinks.clear();
        own.lock().unwrap().clear();
    };
    for i in 0..100 {
        cycle(&mut core, &mut sinks, i);
    }
    let ((), probe) = CountingAllocator::count_thread(|| drop(std::hint::black_box(vec![1u8; 8])));
    assert_eq!(probe.allocations, 1, "the counter counts");
    let before = core.counters();
    let ((), counts) = CountingAllocator::count_thread(|| {
        for i in 0..10_000 {
            cycle(&mut core, &mut sinks, i);
        }
    });
    assert_eq!(
        (counts.allocations, counts.bytes),
        (0, 0),
        "claim/commit cycles allocated"
    );
    let c = core.counters();
    assert_eq!(c.committed - before.committed, 10_000);
    assert_eq!(c.descriptors_sent - before.descriptors_sent, 10_000);
    assert_eq!(
        c.descriptors_per_consumer - before.descriptors_per_consumer,
        10_000
    );
    assert!(c.announces_sent > before.announces_sent, "timers fired");
}

/// A hand-made input of the fuzz target's operations: hellos granted, frames committed and
/// aborted, a clock step, refusals, an epoch bump and more frames (the proof path runs).
#[test]
fn producer_core_ops_seed_proves_every_descriptor() {
    #[rustfmt::skip]
    let input = [
        0x00, // setup: streams open at once
        0, 0x08, 0x10, 0x00,        // hello consumer 1: descriptor aeron:ipc 1001
        5, 0x00,                    // tick: registration completes, answer sent
        3, 0, 16, 0, 0x00, 0xAA,    // claim uint8[16], commit
        3, 0, 4, 4, 0x01, 0xBB,     // claim uint8[4,4], commit
        4, 0, 8, 0, 0x20, 0xCC,     // claim, abort
        3, 9, 2, 0, 0x00, 0xDD,     // claim float32[2], commit
        6, 0x01,                    // descriptor sink back-pressured
        3, 0, 8, 0, 0x00, 0x11,     // committed, descriptor refused
        6, 0x00,                    // sink takes again
        8,                          // new epoch
        3, 0, 200, 0, 0x04, 0x22,   // claim with 0x22 spare bytes, commit
        1, 0x00,                    // consumer QoS
        7, 0x10, 1, 2, 3, 4,        // metadata
        5, 0x40,                    // tick
        3, 0, 16, 0, 0x00, 0x33,    // commit
    ];
    let ran = producer_ops::run(&input);
    assert_eq!(ran.commits, 6);
    assert!(
        ran.descriptors >= 9,
        "shared and per-consumer descriptors proven: {ran:?}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// The fuzz target's logic on generated inputs: never a panic, every descriptor proven
    /// by the slot, sequences strictly increasing.
    #[test]
    fn producer_core_ops_keep_their_invariants(data in proptest::collection::vec(any::<u8>(), 0..400)) {
        producer_ops::run(&data);
    }
}
