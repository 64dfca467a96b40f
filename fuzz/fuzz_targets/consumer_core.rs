//! The consumer's core (`tensorpool::consumer::ConsumerCore`, no Aeron) under sequences of
//! announces, descriptors, control messages and clock steps, against region files the input
//! also controls: frames committed by a real writer, the files truncated to any length (SIGBUS
//! under the mappings), superblock bytes overwritten, announces naming the real files, other
//! files or garbage, with any epoch and geometry; `ConsumerConfig` messages (SHM or fallback,
//! per-consumer streams or not, an `aeron:` fallback with or without a stream id), raw bytes
//! on the payload fallback stream, and timer cycles whose hello / QoS go to recording sinks.
//! Never a panic; never a fallback frame unless a fallback is served; never an accepted frame whose bytes are not the bytes committed for its
//! sequence; the core's `accepted` counter moves exactly with the frames the handler saw
//! pass the recheck; every message the core sends decodes, for our stream and consumer.
#![no_main]

use std::collections::HashMap;
use std::os::unix::fs::FileExt;

use libfuzzer_sys::fuzz_target;
use tensorpool::consumer::{ConsumerConfig, ConsumerCore, Sinks};
use tensorpool::control::{PublishError, RecordingSink};
use tensorpool::frame::Frame;
use tensorpool_codec::wire::{
    ClockDomain, ConsumerConfig as ConfigMsg, ConsumerHello, FrameDescriptor, Mode, PayloadPool,
    QosConsumer, ShmPoolAnnounce,
};
use tensorpool_codec::{Bytes as WireBytes, Message};
use tensorpool_shm::layout::{CreateOptions, EpochSpec, FileModes, ShmLayout};
use tensorpool_shm::tensor::{Dtype, MajorOrder, contiguous};
use tensorpool_shm::{
    AllowedBaseDirs, ExpectedRegion, FrameMeta, HeaderRing, LAYOUT_VERSION, MapOptions,
    PayloadPool as Pool, PoolGeometry, PoolSet, ReadWrite,
};

const STREAM: u32 = 10_000;
const EPOCH: u64 = 1_000;
const NSLOTS: u32 = 4;
const STRIDE: u32 = 256;

struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn u64(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for _ in 0..8 {
            v = (v << 8) | u64::from(self.u8()?);
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

/// An accepted frame (its recheck passed) carries exactly the bytes committed for its
/// sequence: the fill byte over the bytes the file still holds, zeros past a cut.
/// Returns whether the frame passed its recheck (so the core counts it accepted).
fn verify(committed: &HashMap<u64, (u8, u32, u32)>, f: &Frame<'_>) -> bool {
    let bytes = f.bytes().to_vec();
    if f.recheck().is_err() {
        return false;
    }
    let Some(&(fill, len, valid)) = committed.get(&f.seq()) else {
        panic!("frame {} accepted but never committed", f.seq());
    };
    assert_eq!(bytes.len(), len as usize, "frame {}", f.seq());
    for (i, &b) in bytes.iter().enumerate() {
        let want = if (i as u32) < valid { fill } else { 0 };
        assert_eq!(
            b,
            want,
            "frame {} byte {i}: not the committed bytes",
            f.seq()
        );
    }
    true
}

fuzz_target!(|data: &[u8]| {
    let tmp = tempfile::Builder::new()
        .prefix("tp-fuzz-consumer-")
        .tempdir_in("/dev/shm")
        .expect("tempdir");
    let base = tmp.path().join("tp");
    let layout = ShmLayout::for_user(&base, "fuzz", "default", FileModes::default()).unwrap();
    let spec = EpochSpec {
        layout_version: LAYOUT_VERSION,
        stream_id: STREAM,
        epoch: EPOCH,
        header_nslots: NSLOTS,
        pools: vec![PoolGeometry {
            pool_id: 1,
            stride_bytes: STRIDE,
            nslots: NSLOTS,
        }],
    };
    let mut now = 1_000_000_000u64;
    let created = layout
        .create_epoch(
            &spec,
            CreateOptions {
                prefault: false,
                pid: 1,
                now_ns: now,
            },
        )
        .unwrap();
    let allowed = AllowedBaseDirs::new([&base]).unwrap();
    let mut ring = HeaderRing::<ReadWrite>::open(
        &created.header_uri,
        &allowed,
        &ExpectedRegion::header_ring(LAYOUT_VERSION, EPOCH, STREAM, NSLOTS),
        MapOptions::default(),
    )
    .unwrap();
    let pool = Pool::<ReadWrite>::open(
        &created.pool_uris[0].1,
        &allowed,
        &ExpectedRegion::payload_pool(LAYOUT_VERSION, EPOCH, STREAM, 1, NSLOTS, STRIDE),
        MapOptions::default(),
    )
    .unwrap();
    let mut pools = PoolSet::new(vec![pool], NSLOTS).unwrap();
    let files = [
        created.header_uri.to_path_buf(),
        created.pool_uris[0].1.to_path_buf(),
    ];
    let uris = [
        created.header_uri.to_string(),
        created.pool_uris[0].1.to_string(),
        format!("shm:file?path={}/missing", base.display()),
        "shm:file?path=/etc/passwd".to_owned(),
    ];

    let mut cfg = ConsumerConfig::new(STREAM);
    cfg.consumer_id = 7;
    cfg.supports_progress = true;
    cfg.allowed_base_dirs = vec![base.clone()];
    cfg.remap_backoff = std::time::Duration::from_millis(1);
    let mut core = ConsumerCore::new(cfg).unwrap();

    // What the writer committed for each sequence: fill byte, length, and how many leading
    // bytes still hold it in the file (a pool cut inside a payload leaves zeros where the
    // page survives; where it does not, the region faults, dies, and fails every recheck).
    let mut committed: HashMap<u64, (u8, u32, u32)> = HashMap::new();
    let mut next_seq = 0u64;
    // Frames the handler saw pass the recheck: what `accepted` must count.
    let mut proven = 0u64;
    let (mut control, mut qos) = (RecordingSink::default(), RecordingSink::default());
    let mut input = Input(data);
    while let Some(op) = input.u8() {
        match op % 10 {
            // The writer commits a frame.
            0 => {
                let (Some(fill), Some(len)) = (input.u8(), input.u8()) else {
                    break;
                };
                let len = u32::from(len) % (STRIDE + 1);
                let meta = FrameMeta {
                    tensor: contiguous(Dtype::Uint8, MajorOrder::Row, &[len.max(1) as i32])
                        .unwrap(),
                    timestamp_ns: now,
                    meta_version: 0,
                };
                let len = len.max(1);
                if ring
                    .write_frame(&mut pools, next_seq, &meta, len, |p| p.fill(fill))
                    .is_ok()
                {
                    committed.insert(next_seq, (fill, len, len));
                }
                ring.refresh_activity(now);
                next_seq += 1;
            }
            // An announce: real, other or garbage files, any epoch and geometry.
            1 => {
                let (Some(e), Some(g), Some(u)) = (input.u8(), input.u8(), input.u8()) else {
                    break;
                };
                let epoch = match e % 4 {
                    0 => EPOCH,
                    1 => EPOCH + 1,
                    2 => u64::from(e),
                    _ => u64::MAX >> 1,
                };
                let nslots = if g & 1 == 0 { NSLOTS } else { 1 << (g % 32) };
                let stride = if g & 2 == 0 {
                    STRIDE
                } else {
                    u32::from(g) << 4
                };
                let ts = if g & 4 == 0 {
                    now
                } else {
                    now.wrapping_sub(5_000_000_000)
                };
                let header = &uris[usize::from(u % 4)];
                let pool_uri = &uris[usize::from((u >> 2) % 4)];
                let pools = [PayloadPool {
                    pool_id: 1,
                    pool_nslots: nslots,
                    stride_bytes: stride,
                    region_uri: WireBytes::new(pool_uri.as_bytes()),
                }];
                let msg = ShmPoolAnnounce {
                    stream_id: STREAM,
                    producer_id: 1,
                    epoch,
                    announce_timestamp_ns: ts,
                    announce_clock_domain: ClockDomain::Monotonic,
                    layout_version: LAYOUT_VERSION,
                    header_nslots: nslots,
                    header_slot_bytes: 256,
                    payload_pools: pools.as_slice().into(),
                    header_region_uri: WireBytes::new(header.as_bytes()),
                };
                core.on_announce(&encode(&msg), now, 0);
            }
            // A descriptor: any epoch, any sequence.
            2 => {
                let (Some(e), Some(seq)) = (input.u8(), input.u64()) else {
                    break;
                };
                let epoch = if e & 1 == 0 { EPOCH } else { u64::from(e) };
                let seq = if e & 2 == 0 {
                    seq % (next_seq + 2)
                } else {
                    seq
                };
                let fd = FrameDescriptor {
                    stream_id: STREAM,
                    epoch,
                    seq,
                    timestamp_ns: None,
                    meta_version: Some(0),
                    trace_id: None,
                };
                let mut check = |f: &Frame<'_>| proven += u64::from(verify(&committed, f));
                core.on_descriptor(&encode(&fd), now, &mut check);
            }
            // Raw bytes on the control, descriptor or announce stream.
            3 => {
                let Some(n) = input.u8() else { break };
                let raw = input.take(usize::from(n)).to_vec();
                let mut ignore = |_: &Frame<'_>| {};
                match n % 4 {
                    0 => core.on_control(&raw, &mut ignore),
                    3 => {
                        // Raw bytes on the payload fallback stream (BridgeFrameChunks): a
                        // frame only while a fallback is served.
                        let served = core.fallback_source().is_some();
                        let mut check = |_: &Frame<'_>| assert!(served, "frame without a fallback");
                        core.on_fallback_chunk(&raw, now, &mut check);
                    }
                    1 => {
                        // Raw descriptors may be accepted only for committed bytes too.
                        let mut check = |f: &Frame<'_>| proven += u64::from(verify(&committed, f));
                        core.on_descriptor(&raw, now, &mut check);
                    }
                    _ => core.on_announce(&raw, now, 0),
                }
            }
            // A file truncated (or extended) under the mappings.
            4 => {
                let (Some(which), Some(len)) = (input.u8(), input.u64()) else {
                    break;
                };
                let len = len % (64 + u64::from(NSLOTS) * u64::from(STRIDE) * 2);
                if let Ok(f) = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&files[usize::from(which & 1)])
                {
                    let _ = f.set_len(len);
                }
                if which & 1 == 1 {
                    for (&seq, entry) in committed.iter_mut() {
                        let start = 64 + (seq % u64::from(NSLOTS)) * u64::from(STRIDE);
                        let kept = u32::try_from(len.saturating_sub(start)).unwrap_or(u32::MAX);
                        entry.2 = entry.2.min(kept);
                    }
                }
            }
            // Superblock bytes overwritten.
            5 => {
                let (Some(which), Some(off)) = (input.u8(), input.u8()) else {
                    break;
                };
                // Within the superblock only (payload bytes are the writer's).
                let off = off % 64;
                let patch = input.take(8.min(64 - usize::from(off))).to_vec();
                if let Ok(f) = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&files[usize::from(which & 1)])
                {
                    let _ = f.write_at(&patch, u64::from(off));
                }
            }
            // The clock moves; liveness runs.
            6 => {
                let Some(step) = input.u8() else { break };
                now += u64::from(step) * 50_000_000;
                core.check_liveness(now);
            }
            // A ConsumerConfig: SHM or fallback, per-consumer streams, another consumer's.
            7 => {
                let Some(b) = input.u8() else { break };
                let assigned: &[u8] = if b & 2 == 0 { b"" } else { b"aeron:ipc" };
                let msg = ConfigMsg {
                    stream_id: STREAM,
                    consumer_id: if b & 8 == 0 { 7 } else { 8 },
                    use_shm: b & 1 == 0,
                    mode: if b & 4 == 0 {
                        Mode::Stream
                    } else {
                        Mode::RateLimited
                    },
                    descriptor_stream_id: if b & 2 == 0 { 0 } else { 31_000 },
                    control_stream_id: u32::from(b >> 4),
                    payload_fallback_uri: WireBytes::new(if b & 0x80 == 0 {
                        b"aeron:udp?endpoint=x:1"
                    } else {
                        b"aeron:udp?endpoint=x:1|stream-id=3000"
                    }),
                    descriptor_channel: WireBytes::new(assigned),
                    control_channel: WireBytes::new(assigned),
                };
                core.on_control(&encode(&msg), &mut |_: &Frame<'_>| {});
            }
            // The timers run: what they send goes to recording sinks and must decode.
            8 => {
                let Some(fail) = input.u8() else { break };
                control.clear();
                qos.clear();
                control.fail_with = (fail & 1 == 1).then_some(PublishError::BackPressured);
                let last_seq = core.last_seq().unwrap_or(0);
                core.poll_timers(
                    now,
                    &mut Sinks {
                        control: &mut control,
                        qos: &mut qos,
                    },
                );
                for m in control.messages() {
                    let h = ConsumerHello::decode(m).expect("hello decodes");
                    assert_eq!((h.stream_id, h.consumer_id), (STREAM, 7));
                }
                for m in qos.messages() {
                    let q = QosConsumer::decode(m).expect("QoS decodes");
                    assert_eq!((q.stream_id, q.consumer_id), (STREAM, 7));
                    assert_eq!(q.last_seq_seen, last_seq);
                }
            }
            _ => {
                let _ = (
                    core.state(),
                    core.counters(),
                    core.drops(),
                    core.last_rejection(),
                );
            }
        }
        let c = core.counters();
        assert_eq!(
            c.accepted - c.fallback_frames,
            proven,
            "accepted counts exactly the frames the seqlock proved (and the fallback's)"
        );
    }
    drop(core);
    drop((ring, pools));
});
