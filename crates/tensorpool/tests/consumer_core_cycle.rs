//! The consumer core's duty cycle without Aeron (issue 14): byte entry points and a clock in,
//! hello and QoS out through sinks (`ConsumerCore::poll_timers` into `RecordingSink`s, decoded
//! here), `ConsumerConfig` obeyed, a failing sink counted rather than waited on, and a steady
//! cycle (descriptor -> frame -> timers) that allocates nothing.

use tensorpool::consumer::{ConsumerConfig, ConsumerCore, Sinks};
use tensorpool::control::RecordingSink;
use tensorpool::prelude::*;
use tensorpool_aeron::PublishError;
use tensorpool_codec::wire::{
    ClockDomain, ConsumerConfig as ConfigMsg, ConsumerHello, FrameDescriptor, PayloadPool,
    QosConsumer, ShmPoolAnnounce,
};
use tensorpool_codec::{Bytes, Message};
use tensorpool_shm::layout::{CreateOptions, EpochSpec, FileModes, ShmLayout};
use tensorpool_shm::tensor::{Dtype as WDtype, MajorOrder, contiguous};
use tensorpool_shm::{
    ExpectedRegion, FrameMeta, HeaderRing, LAYOUT_VERSION, MapOptions, PayloadPool as Pool,
    PoolGeometry, PoolSet, ReadWrite,
};
use tensorpool_testkit::CountingAllocator;

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

const STREAM: u32 = 10_000;
const EPOCH: u64 = 5;
const N: u32 = 4;
const STRIDE: u32 = 256;
const SEC: u64 = 1_000_000_000;

fn encode<'m, M: Message<'m>>(m: &M) -> Vec<u8> {
    let mut buf = vec![0u8; m.encoded_len()];
    m.encode(&mut buf).unwrap();
    buf
}

/// One epoch of real region files, a writer on them, and the announce naming them.
struct Fixture {
    _tmp: tempfile::TempDir,
    base: std::path::PathBuf,
    ring: HeaderRing<ReadWrite>,
    pools: PoolSet<ReadWrite>,
    header_uri: String,
    pool_uri: String,
}

impl Fixture {
    fn new(now: u64) -> Self {
        let tmp = tempfile::Builder::new()
            .prefix("tp-core-cycle-")
            .tempdir_in("/dev/shm")
            .unwrap();
        let base = tmp.path().join("tp");
        let layout = ShmLayout::for_user(&base, "t", "default", FileModes::default()).unwrap();
        let spec = EpochSpec {
            layout_version: LAYOUT_VERSION,
            stream_id: STREAM,
            epoch: EPOCH,
            header_nslots: N,
            pools: vec![PoolGeometry {
                pool_id: 1,
                stride_bytes: STRIDE,
                nslots: N,
            }],
        };
        let opts = CreateOptions {
            prefault: false,
            pid: 1,
            now_ns: now,
        };
        let created = layout.create_epoch(&spec, opts).unwrap();
        let allowed = tensorpool_shm::AllowedBaseDirs::new([&base]).unwrap();
        let ring = HeaderRing::<ReadWrite>::open(
            &created.header_uri,
            &allowed,
            &ExpectedRegion::header_ring(LAYOUT_VERSION, EPOCH, STREAM, N),
            MapOptions::default(),
        )
        .unwrap();
        let pool = Pool::<ReadWrite>::open(
            &created.pool_uris[0].1,
            &allowed,
            &ExpectedRegion::payload_pool(LAYOUT_VERSION, EPOCH, STREAM, 1, N, STRIDE),
            MapOptions::default(),
        )
        .unwrap();
        Self {
            base,
            ring,
            pools: PoolSet::new(vec![pool], N).unwrap(),
            header_uri: created.header_uri.to_string(),
            pool_uri: created.pool_uris[0].1.to_string(),
            _tmp: tmp,
        }
    }

    fn announce(&self, now: u64) -> Vec<u8> {
        let pools = [PayloadPool {
            pool_id: 1,
            pool_nslots: N,
            stride_bytes: STRIDE,
            region_uri: Bytes::new(self.pool_uri.as_bytes()),
        }];
        encode(&ShmPoolAnnounce {
            stream_id: STREAM,
            producer_id: 1,
            epoch: EPOCH,
            announce_timestamp_ns: now,
            announce_clock_domain: ClockDomain::Monotonic,
            layout_version: LAYOUT_VERSION,
            header_nslots: N,
            header_slot_bytes: 256,
            payload_pools: pools.as_slice().into(),
            header_region_uri: Bytes::new(self.header_uri.as_bytes()),
        })
    }

    fn commit(&mut self, seq: u64, fill: u8, now: u64) {
        let meta = FrameMeta {
            tensor: contiguous(WDtype::Uint8, MajorOrder::Row, &[16]).unwrap(),
            timestamp_ns: now,
            meta_version: 0,
        };
        self.ring
            .write_frame(&mut self.pools, seq, &meta, 16, |b| b.fill(fill))
            .unwrap();
        self.ring.refresh_activity(now);
    }

    fn core(&self) -> ConsumerCore {
        let mut cfg = ConsumerConfig::new(STREAM);
        cfg.consumer_id = 42;
        cfg.allowed_base_dirs = vec![self.base.clone()];
        cfg.hello_interval = std::time::Duration::from_secs(1);
        cfg.qos_interval = std::time::Duration::from_secs(1);
        ConsumerCore::new(cfg).unwrap()
    }
}

fn descriptor(seq: u64) -> [u8; 64] {
    let fd = FrameDescriptor {
        stream_id: STREAM,
        epoch: EPOCH,
        seq,
        timestamp_ns: None,
        meta_version: Some(0),
        trace_id: None,
    };
    let mut buf = [0u8; 64];
    fd.encode(&mut buf).unwrap();
    buf
}

#[test]
fn consumer_core_duty_cycle_sends_hello_and_qos_through_sinks_without_aeron() {
    let mut now = tensorpool::monotonic_ns().max(10 * SEC);
    let mut fx = Fixture::new(now);
    let mut core = fx.core();
    let (mut control, mut qos) = (RecordingSink::default(), RecordingSink::default());

    // First cycle: hello at once, QoS (its interval since clock 0 has passed).
    let work = core.poll_timers(
        now,
        &mut Sinks {
            control: &mut control,
            qos: &mut qos,
        },
    );
    assert_eq!(work, 2);
    let hello = control.messages().next().unwrap().to_vec();
    let hello = ConsumerHello::decode(&hello).unwrap();
    assert_eq!((hello.stream_id, hello.consumer_id), (STREAM, 42));
    assert!(hello.supports_shm);
    let q = qos.messages().next().unwrap().to_vec();
    let q = QosConsumer::decode(&q).unwrap();
    assert_eq!((q.stream_id, q.consumer_id, q.epoch), (STREAM, 42, 0));
    assert_eq!(
        (core.counters().hellos_sent, core.counters().qos_sent),
        (1, 1)
    );

    // Nothing is due again before its interval.
    control.clear();
    qos.clear();
    let out = &mut Sinks {
        control: &mut control,
        qos: &mut qos,
    };
    assert_eq!(core.poll_timers(now + SEC / 2, out), 0);
    assert!(control.is_empty() && qos.is_empty());

    // Map, accept a committed frame; the next QoS reports its epoch and sequence.
    core.on_announce(&fx.announce(now), now, 0);
    assert_eq!(core.state(), ConsumerState::Mapped { epoch: EPOCH });
    fx.commit(0, 9, now);
    let mut seen = Vec::new();
    let mut h = |f: &Frame<'_>| seen.push((f.seq(), f.bytes().to_vec()));
    assert_eq!(core.on_descriptor(&descriptor(0), now, &mut h), 1);
    assert_eq!(seen, vec![(0, vec![9u8; 16])]);
    now += SEC;
    let out = &mut Sinks {
        control: &mut control,
        qos: &mut qos,
    };
    assert_eq!(core.poll_timers(now, out), 2);
    let q = qos.messages().next().unwrap().to_vec();
    let q = QosConsumer::decode(&q).unwrap();
    assert_eq!((q.epoch, q.last_seq_seen), (EPOCH, 0));

    // A sink that refuses: nothing is counted as sent, nothing waits.
    let mut refusing = RecordingSink::default();
    refusing.fail_with = Some(PublishError::NotConnected);
    let mut refusing_qos = RecordingSink::default();
    refusing_qos.fail_with = Some(PublishError::BackPressured);
    now += SEC;
    let out = &mut Sinks {
        control: &mut refusing,
        qos: &mut refusing_qos,
    };
    assert_eq!(core.poll_timers(now, out), 2);
    assert_eq!(
        (core.counters().hellos_sent, core.counters().qos_sent),
        (2, 2)
    );

    // ConsumerConfig use_shm = false: the producer orders the fallback; frames stop.
    let cc = encode(&ConfigMsg {
        stream_id: STREAM,
        consumer_id: 42,
        use_shm: false,
        mode: tensorpool_codec::wire::Mode::Stream,
        descriptor_stream_id: 0,
        control_stream_id: 0,
        payload_fallback_uri: Bytes::new(b"aeron:udp?endpoint=x:1"),
        descriptor_channel: Bytes::new(b""),
        control_channel: Bytes::new(b""),
    });
    core.on_control(&cc, &mut |_: &Frame<'_>| {});
    assert_eq!(core.state(), ConsumerState::Fallback);
    assert!(core.fallback().is_some_and(|f| f.ordered && f.supported));
    fx.commit(1, 3, now);
    assert_eq!(
        core.on_descriptor(&descriptor(1), now, &mut |_: &Frame<'_>| {}),
        0
    );
    assert_eq!(core.counters().accepted, 1);
}

#[test]
fn consumer_core_steady_cycle_allocates_nothing() {
    // Negative control: the counter counts.
    let (_, c) = CountingAllocator::count_thread(|| std::hint::black_box(vec![1u8; 8]));
    assert!(c.allocations > 0);

    let mut now = tensorpool::monotonic_ns().max(10 * SEC);
    let mut fx = Fixture::new(now);
    let mut core = fx.core();
    let (mut control, mut qos) = (
        RecordingSink::with_capacity(2, 256),
        RecordingSink::with_capacity(2, 256),
    );
    core.on_announce(&fx.announce(now), now, 0);
    let mut sum = 0u64;
    let mut h = |f: &Frame<'_>| sum += u64::from(f.bytes()[0]);
    // Warm up: the first cycles may size what they keep.
    for seq in 0..8u64 {
        fx.commit(seq, seq as u8, now);
        core.on_descriptor(&descriptor(seq), now, &mut h);
        now += SEC;
        control.clear();
        qos.clear();
        let out = &mut Sinks {
            control: &mut control,
            qos: &mut qos,
        };
        core.poll_timers(now, out);
    }
    let mut total = tensorpool_testkit::Counts::default();
    for seq in 8..64u64 {
        fx.commit(seq, seq as u8, now);
        let d = descriptor(seq);
        now += SEC;
        control.clear();
        qos.clear();
        let (accepted, c) = CountingAllocator::count_thread(|| {
            let a = core.on_descriptor(&d, now, &mut h);
            let out = &mut Sinks {
                control: &mut control,
                qos: &mut qos,
            };
            core.poll_timers(now, out);
            a
        });
        assert_eq!(accepted, 1, "seq {seq}");
        total.allocations += c.allocations;
        total.bytes += c.bytes;
    }
    assert!(
        total.is_zero(),
        "steady consumer core cycles allocated: {total:?}"
    );
    assert_eq!(core.counters().accepted, 64);
    assert!(sum > 0);
}
