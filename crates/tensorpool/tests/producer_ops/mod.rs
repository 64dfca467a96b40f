//! Drives a standalone `ProducerCore` (no Aeron) with a sequence of operations decoded from
//! bytes, and checks its invariants after every step. Shared by the `producer_core` fuzz
//! target (`fuzz/fuzz_targets/producer_core.rs` includes this file) and the proptest in
//! `tests/producer_core.rs`, so the same logic runs in the default test run.
//!
//! Operations: consumer hellos (channels, stream ids, modes, hints from small sets so that
//! they collide), `QosConsumer`, raw bytes on the control and QoS handlers, claims with
//! arbitrary specs and lengths that are committed or aborted (with progress or not), clock
//! steps forwards, far forwards and backwards, refusals toggled on the descriptor and control
//! sinks, metadata and meta blobs, epoch bumps. Invariants: never a panic; every descriptor
//! the core emits (shared or per-consumer stream) names the frame just committed, in the
//! current epoch, and a consumer's read of that slot through `tensorpool-shm`
//! (`HeaderRing::read_frame`, seqlock and recheck) proves it with the committed bytes;
//! committed sequences strictly increase within an epoch; no descriptor without a commit;
//! one descriptor per commit on a shared sink that takes it; close removes the files.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use tensorpool::frame::{Dtype, TensorSpec};
use tensorpool::producer::{
    PoolConfig, ProducerConfig, ProducerCore, RecordingLinks, RecordingSinks,
};
use tensorpool_codec::wire::{ConsumerHello, FrameDescriptor, Mode, QosConsumer, ShmPoolAnnounce};
use tensorpool_codec::{Bytes, Message, peek_header};
use tensorpool_shm::{
    AllowedBaseDirs, ExpectedRegion, HeaderRing, MapOptions, PayloadPool, PoolSet, ReadOnly,
    RegionUri,
};

/// The data source of every run.
pub const STREAM: u32 = 10_000;
const NSLOTS: u32 = 4;
const PERIOD_MS: u64 = 10;

struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn u32(&mut self) -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..4 {
            v = (v << 8) | u32::from(self.u8()?);
        }
        Some(v)
    }
    fn take(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.0.len());
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head
    }
}

fn encode<'m, M: Message<'m>>(m: &M) -> Vec<u8> {
    let mut buf = vec![0u8; m.encoded_len()];
    m.encode(&mut buf).expect("encode");
    buf
}

/// A consumer's read-only view of one epoch, mapped from the announce.
struct Reader {
    epoch: u64,
    ring: HeaderRing<ReadOnly>,
    pools: PoolSet<ReadOnly>,
}

impl Reader {
    fn from_announce(a: &ShmPoolAnnounce<'_>, allowed: &AllowedBaseDirs) -> Reader {
        let uri = |b: &[u8]| RegionUri::parse(std::str::from_utf8(b).expect("utf-8 uri")).unwrap();
        let map = MapOptions::default();
        let ring = HeaderRing::<ReadOnly>::open(
            &uri(a.header_region_uri.as_bytes()),
            allowed,
            &ExpectedRegion::header_ring(a.layout_version, a.epoch, a.stream_id, a.header_nslots),
            map,
        )
        .expect("the announced header ring maps");
        let mut pools = Vec::new();
        for p in a.payload_pools.iter() {
            let expected = ExpectedRegion::payload_pool(
                a.layout_version,
                a.epoch,
                a.stream_id,
                p.pool_id,
                p.pool_nslots,
                p.stride_bytes,
            );
            pools.push(
                PayloadPool::<ReadOnly>::open(
                    &uri(p.region_uri.as_bytes()),
                    allowed,
                    &expected,
                    map,
                )
                .expect("the announced pool maps"),
            );
        }
        Reader {
            epoch: a.epoch,
            ring,
            pools: PoolSet::new(pools, a.header_nslots).expect("pool set"),
        }
    }
}

/// The frame just committed: what every descriptor emitted now must name.
#[derive(Debug, Clone, Copy)]
struct Committed {
    epoch: u64,
    seq: u64,
    len: usize,
    fill: u8,
}

/// What the checker knows.
struct Checker {
    allowed: AllowedBaseDirs,
    reader: Option<Reader>,
    /// Last committed sequence of the current epoch.
    last_seq: Option<(u64, u64)>,
    /// Descriptors checked (shared and per-consumer).
    descriptors: u64,
}

impl Checker {
    /// Reads what the core sent since the last call, checks it, and clears the sinks.
    /// `committed`: the frame committed by this step, if any.
    fn harvest(
        &mut self,
        core: &ProducerCore,
        sinks: &mut RecordingSinks,
        links: &RecordingLinks,
        committed: Option<Committed>,
    ) {
        for msg in sinks.announce.messages() {
            let a = ShmPoolAnnounce::decode(msg).expect("the core's announce decodes");
            assert_eq!(a.stream_id, STREAM);
            assert_eq!(Some(a.epoch), core.epoch(), "announce of the current epoch");
            if self.reader.as_ref().is_none_or(|r| r.epoch != a.epoch) {
                self.reader = Some(Reader::from_announce(&a, &self.allowed));
            }
        }
        let shared = sinks.descriptor.len();
        if committed.is_some() && sinks.descriptor.fail_with.is_none() {
            assert_eq!(shared, 1, "one descriptor per commit on the shared stream");
        }
        let mut descriptors: Vec<Vec<u8>> =
            sinks.descriptor.messages().map(<[u8]>::to_vec).collect();
        for link in links.opened() {
            let mut sink = link.sink.lock().unwrap();
            for msg in sink.messages() {
                if peek_header(msg)
                    .is_ok_and(|h| h.template_id == <FrameDescriptor as Message<'_>>::TEMPLATE_ID)
                {
                    descriptors.push(msg.to_vec());
                }
            }
            sink.clear();
        }
        for msg in &descriptors {
            let d = FrameDescriptor::decode(msg).expect("the core's descriptor decodes");
            let c = committed.expect("a descriptor without a commit");
            assert_eq!((d.stream_id, d.epoch, d.seq), (STREAM, c.epoch, c.seq));
            self.prove(&c);
            self.descriptors += 1;
        }
        for msg in sinks
            .control
            .messages()
            .chain(sinks.qos.messages())
            .chain(sinks.metadata.messages())
        {
            peek_header(msg).expect("the core's messages have a header");
        }
        sinks.clear();
    }

    /// A consumer's read of the slot proves the committed frame: the seqlock carries the
    /// sequence, the header validates, the payload holds the committed bytes, the recheck
    /// passes.
    fn prove(&self, c: &Committed) {
        let r = self
            .reader
            .as_ref()
            .filter(|r| r.epoch == c.epoch)
            .expect("the epoch was announced before its frames");
        let view = r.ring.read_frame(&r.pools, c.seq).unwrap_or_else(|e| {
            panic!(
                "descriptor for seq {} the slot does not prove: {e:?}",
                c.seq
            )
        });
        assert_eq!(view.seq(), c.seq);
        assert_eq!(view.payload().len(), c.len);
        assert!(
            view.payload().iter().all(|&b| b == c.fill),
            "committed bytes"
        );
        view.recheck().expect("recheck after reading");
    }
}

const CHANNELS: [&[u8]; 5] = [
    b"",
    b"aeron:ipc",
    b"aeron:udp?endpoint=127.0.0.1:40123",
    b"not-aeron",
    b"aeron:\xff\xfe",
];
const STREAM_IDS: [u32; 4] = [0, 1001, 1002, u32::MAX];
const RATES: [u32; 3] = [0, 1, 100_000];
const REFUSALS: [Option<tensorpool_aeron::PublishError>; 4] = [
    None,
    Some(tensorpool_aeron::PublishError::BackPressured),
    Some(tensorpool_aeron::PublishError::NotConnected),
    Some(tensorpool_aeron::PublishError::Closed),
];

/// The producer's config for a run under `base`.
pub fn config(base: &Path) -> ProducerConfig {
    let period = std::time::Duration::from_millis(PERIOD_MS);
    let mut cfg = ProducerConfig::new(STREAM);
    cfg.shm_base_dir = base.to_path_buf();
    cfg.header_nslots = NSLOTS;
    cfg.pools = vec![
        PoolConfig {
            pool_id: 1,
            stride_bytes: 256,
        },
        PoolConfig {
            pool_id: 2,
            stride_bytes: 4096,
        },
    ];
    cfg.prefault = false;
    cfg.announce_period = period;
    cfg.qos_period = period;
    cfg.data_source_period = period;
    cfg.meta_period = period;
    cfg.consumer_hello_interval = period;
    cfg.max_consumers = 3;
    cfg.meta_blob_chunk_bytes = 64;
    cfg
}

/// A fresh temporary base dir under /dev/shm (removed on drop).
pub fn temp_base() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::Builder::new()
        .prefix("tp-producer-core-")
        .tempdir_in("/dev/shm")
        .expect("tempdir");
    let base = tmp.path().join("tp");
    (tmp, base)
}

/// What a run did: frames committed, descriptors proven through the slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ran {
    /// Frames committed.
    pub commits: u64,
    /// Descriptors (shared and per-consumer) whose slot a read proved.
    pub descriptors: u64,
}

/// Runs one input. Panics when an invariant breaks.
pub fn run(data: &[u8]) -> Ran {
    let (_tmp, base) = temp_base();
    let mut input = Input(data);
    let setup = input.u8().unwrap_or(0);
    let mut cfg = config(&base);
    cfg.stall_threshold = std::time::Duration::from_millis(u64::from(setup >> 4));
    cfg.per_consumer_streams = setup & 16 == 0;
    let links = RecordingLinks::default()
        .refusing(setup & 1 == 1)
        .ready_after(u32::from((setup >> 1) & 3))
        .failing_registrations(setup & 8 == 8);
    let mut core = ProducerCore::standalone(cfg, Box::new(links.clone())).expect("standalone core");
    let mut sinks = RecordingSinks::default();
    let mut check = Checker {
        allowed: AllowedBaseDirs::new([&base]).expect("base dir"),
        reader: None,
        last_seq: None,
        descriptors: 0,
    };
    let mut now = 1_000_000_000u64;
    core.on_tick(now, &mut sinks.sinks());
    check.harvest(&core, &mut sinks, &links, None);
    let mut commits = 0u64;
    while let Some(op) = input.u8() {
        let mut committed = None;
        match op % 10 {
            // A consumer hello.
            0 => {
                let (Some(a), Some(b), Some(c)) = (input.u8(), input.u8(), input.u8()) else {
                    break;
                };
                let hint = |x: u8| (x & 1 == 1).then_some(u32::from(x) * 10);
                let hello = ConsumerHello {
                    stream_id: if a & 0x80 == 0 { STREAM } else { STREAM + 1 },
                    consumer_id: u32::from(a % 5) + 1,
                    supports_shm: true,
                    supports_progress: b & 1 == 1,
                    mode: if b & 2 == 0 {
                        Mode::Stream
                    } else {
                        Mode::RateLimited
                    },
                    max_rate_hz: RATES[usize::from(b >> 2) % RATES.len()],
                    expected_layout_version: 1,
                    progress_interval_us: hint(c),
                    progress_bytes_delta: hint(c >> 1),
                    progress_major_delta_units: hint(c >> 2),
                    descriptor_stream_id: STREAM_IDS[usize::from(b >> 4) % STREAM_IDS.len()],
                    control_stream_id: STREAM_IDS[usize::from(c >> 4) % STREAM_IDS.len()],
                    descriptor_channel: Bytes::new(CHANNELS[usize::from(a >> 3) % CHANNELS.len()]),
                    control_channel: Bytes::new(CHANNELS[usize::from(c >> 5) % CHANNELS.len()]),
                };
                core.on_control(&encode(&hello), now, &mut sinks.sinks());
            }
            // A consumer's QoS.
            1 => {
                let Some(a) = input.u8() else { break };
                let qos = QosConsumer {
                    stream_id: if a & 0x80 == 0 { STREAM } else { 7 },
                    consumer_id: u32::from(a % 5) + 1,
                    epoch: core.epoch().unwrap_or(0),
                    last_seq_seen: u64::from(a),
                    drops_gap: 0,
                    drops_late: 0,
                    mode: Mode::Stream,
                };
                core.on_qos(&encode(&qos), now);
            }
            // Raw bytes on the control or QoS handler.
            2 => {
                let Some(n) = input.u8() else { break };
                let raw = input.take(usize::from(n)).to_vec();
                match n & 1 {
                    0 => core.on_control(&raw, now, &mut sinks.sinks()),
                    _ => core.on_qos(&raw, now),
                }
            }
            // A claim with an arbitrary spec and length: committed or aborted.
            3 | 4 => {
                let (Some(d), Some(a), Some(b), Some(flags), Some(fill)) =
                    (input.u8(), input.u8(), input.u8(), input.u8(), input.u8())
                else {
                    break;
                };
                let dtype = Dtype::ALL[usize::from(d) % Dtype::ALL.len()];
                let shape = [usize::from(a), usize::from(b)];
                let shape = if flags & 1 == 0 {
                    &shape[..1]
                } else {
                    &shape[..]
                };
                let Ok(mut spec) = TensorSpec::new(dtype, shape) else {
                    continue;
                };
                if flags & 2 == 2
                    && let Ok(s) = spec.clone().progress_rows()
                {
                    spec = s;
                }
                let len = match (flags >> 2) & 3 {
                    0 => spec.len_bytes(),
                    1 => spec.len_bytes() + usize::from(fill),
                    2 => spec.len_bytes().saturating_sub(1),
                    _ => input.u32().map_or(0, |v| v as usize),
                };
                let epoch = core.epoch();
                let seq_before = core.next_seq();
                match core.claim_len(&spec, len, sinks.sinks()) {
                    Err(_) => {}
                    Ok(mut claim) => {
                        let seq = claim.seq();
                        assert_eq!(seq, seq_before, "the claim takes the next sequence");
                        assert_eq!(claim.len(), len);
                        assert_eq!(claim.header_index(), (seq % u64::from(NSLOTS)) as u32);
                        claim.payload_mut().fill(fill);
                        if flags & 16 == 16 {
                            claim.progress(len / 2);
                        }
                        if flags & 32 == 32 && op % 10 == 4 {
                            claim.abort();
                        } else {
                            assert_eq!(claim.commit(), seq);
                            let epoch = epoch.expect("a claim has regions");
                            if let Some((e, last)) = check.last_seq
                                && e == epoch
                            {
                                assert!(
                                    seq > last,
                                    "sequences strictly increase: {last} then {seq}"
                                );
                            }
                            check.last_seq = Some((epoch, seq));
                            commits += 1;
                            committed = Some(Committed {
                                epoch,
                                seq,
                                len,
                                fill,
                            });
                        }
                    }
                }
            }
            // The clock moves: forwards, far forwards, backwards.
            5 => {
                let Some(step) = input.u8() else { break };
                now = match step & 3 {
                    0 | 1 => now.saturating_add(u64::from(step) * 1_000_000),
                    2 => now.saturating_add(u64::from(step) << 32),
                    _ => now.saturating_sub(u64::from(step) * 1_000_000),
                };
                core.on_tick(now, &mut sinks.sinks());
            }
            // Refusals on the shared descriptor and control sinks.
            6 => {
                let Some(r) = input.u8() else { break };
                sinks.descriptor.fail_with = REFUSALS[usize::from(r) % REFUSALS.len()];
                sinks.control.fail_with = REFUSALS[usize::from(r >> 2) % REFUSALS.len()];
            }
            // Metadata and blobs.
            7 => {
                let Some(n) = input.u8() else { break };
                if n & 1 == 0 {
                    let value = input.take(usize::from(n >> 2)).to_vec();
                    let attr = tensorpool::producer::MetaAttribute {
                        key: "k".into(),
                        format: "application/octet-stream".into(),
                        value,
                    };
                    let _ = core.set_meta(&[attr], now);
                } else {
                    let blob = input.take(usize::from(n)).to_vec();
                    core.publish_meta_blob(u32::from(n), blob);
                }
            }
            // A new epoch: its announce goes out at the next tick.
            8 => {
                let old = core.epoch();
                let epoch = core.bump_epoch().expect("bump epoch");
                assert!(Some(epoch) > old, "epochs increase");
                assert_eq!(core.next_seq(), 0, "seq restarts at 0 in a new epoch");
                core.on_tick(now, &mut sinks.sinks());
            }
            _ => {
                let _ = (
                    core.counters(),
                    core.consumer_count(),
                    core.per_consumer_descriptor_streams(),
                    core.progress_active(),
                );
            }
        }
        check.harvest(&core, &mut sinks, &links, committed);
        assert_eq!(core.counters().committed, commits);
    }
    let dir = core.epoch_dir().expect("standalone epoch dir");
    assert!(dir.exists());
    let descriptors = check.descriptors;
    drop(check);
    core.close();
    assert!(!dir.exists(), "close removes the epoch's files");
    Ran {
        commits,
        descriptors,
    }
}
