//! The consumer's payload fallback without Aeron (Wire Spec §10.1.3, §11, §15.12; Bridge
//! Spec §5): a `ConsumerConfig` with `use_shm = false` and a `payload_fallback_uri` puts the
//! core in FALLBACK; `BridgeFrameChunk`s (cut by the bridge's own sender code,
//! `tensorpool::chunks::send_frame`) go in through `on_fallback_chunk` and complete, checked
//! frames come out to the frame handler. Torn, CRC-bad, foreign and stale chunks give no
//! frame; `bridge://<id>` resolves through `[consumer.bridges.<id>]`; what cannot be served
//! is a clear rejection, in FALLBACK without frames. A counting allocator proves the
//! steady fallback cycle allocates nothing.

use std::time::Duration;

use tensorpool::chunks::{SourceFrame, send_frame};
use tensorpool::consumer::{
    BridgeRoute, ConsumerConfig, ConsumerCore, ConsumerState, resolve_fallback,
};
use tensorpool::control::RecordingSink;
use tensorpool::frame::Frame;
use tensorpool_codec::wire::{ConsumerConfig as ConfigMsg, Mode};
use tensorpool_codec::{Bytes, Message};
use tensorpool_shm::HEADER_SLOT_BYTES;
use tensorpool_shm::tensor::{Dtype, MajorOrder, new_header};
use tensorpool_testkit::CountingAllocator;

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

const STREAM: u32 = 10_000;
const MS: u64 = 1_000_000;
const URI: &str = "aeron:udp?endpoint=127.0.0.1:40123|stream-id=3000";

fn config() -> ConsumerConfig {
    let mut c = ConsumerConfig::new(STREAM);
    c.consumer_id = 42;
    c.allowed_base_dirs = vec![std::env::temp_dir()];
    c.fallback_max_payload_bytes = 64 * 1024;
    c.fallback_assembly_timeout = Duration::from_millis(100);
    c.fallback_bridges = vec![BridgeRoute {
        id: "cam1".into(),
        channel: "aeron:udp?endpoint=127.0.0.1:40200".into(),
        stream_id: 3100,
    }];
    c
}

fn config_msg(use_shm: bool, uri: &str) -> Vec<u8> {
    ConfigMsg {
        stream_id: STREAM,
        consumer_id: 42,
        use_shm,
        mode: Mode::Stream,
        descriptor_stream_id: 0,
        control_stream_id: 0,
        payload_fallback_uri: Bytes::new(uri.as_bytes()),
        descriptor_channel: Bytes::new(b""),
        control_channel: Bytes::new(b""),
    }
    .encode_to_vec()
    .unwrap()
}

fn ordered(uri: &str) -> ConsumerCore {
    let mut core = ConsumerCore::new(config()).unwrap();
    core.on_control(&config_msg(false, uri), &mut |_: &Frame<'_>| {});
    assert_eq!(core.state(), ConsumerState::Fallback);
    core
}

/// The slot header block of frame `seq` with `len` payload bytes.
fn header(seq: u64, len: u32) -> [u8; HEADER_SLOT_BYTES] {
    let t = new_header(Dtype::Uint8, MajorOrder::Row, &[len as i32], &[0]).unwrap();
    let mut h = tensorpool_shm::slot::slot_for_frame(seq, 3, 1, len, &t);
    h.timestamp_ns = 0;
    let mut out = [0u8; HEADER_SLOT_BYTES];
    tensorpool_shm::slot::encode_slot(&h, &mut out).unwrap();
    out
}

fn payload(seq: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u64).wrapping_mul(31).wrapping_add(seq * 7) as u8)
        .collect()
}

/// The chunks the bridge sender publishes for frame `seq` of `stream` (1000-byte chunks,
/// CRC32C on).
fn chunks_of(
    stream: u32,
    epoch: u64,
    seq: u64,
    hdr: &[u8; HEADER_SLOT_BYTES],
    data: &[u8],
) -> Vec<Vec<u8>> {
    let frame = SourceFrame {
        stream_id: stream,
        epoch,
        seq,
        trace_id: 0,
        header: hdr,
        payload: data,
    };
    let mut sink = RecordingSink::with_capacity(256, 1 << 20);
    let mut seen = 0;
    send_frame(
        &frame,
        1000,
        1 << 30,
        true,
        &mut || true,
        &mut sink,
        &mut seen,
    );
    sink.messages().map(<[u8]>::to_vec).collect()
}

fn chunks(seq: u64, len: usize) -> Vec<Vec<u8>> {
    chunks_of(STREAM, 1, seq, &header(seq, len as u32), &payload(seq, len))
}

#[derive(Debug, PartialEq, Eq)]
struct Got {
    seq: u64,
    epoch: u64,
    stream: u32,
    bytes: Vec<u8>,
}

fn feed(core: &mut ConsumerCore, msgs: &[Vec<u8>], now: u64) -> Vec<Got> {
    let mut got = Vec::new();
    for m in msgs {
        core.on_fallback_chunk(m, now, &mut |f: &Frame<'_>| {
            let bytes = f.bytes().to_vec();
            assert!(f.recheck().is_ok(), "a private copy always rechecks Ok");
            got.push(Got {
                seq: f.seq(),
                epoch: f.epoch(),
                stream: f.stream_id(),
                bytes,
            });
        });
    }
    got
}

#[test]
fn w_15_12_fallback_chunks_in_frames_out_with_the_right_bytes() {
    let mut core = ordered(URI);
    assert_eq!(core.fallback_source(), Some((URI, 3000)));
    let f = core.fallback().unwrap();
    assert!(f.ordered && f.supported);
    assert_eq!(f.target, Some((URI.to_owned(), 3000)));
    for seq in 1..=3u64 {
        let mut msgs = chunks(seq, 2500);
        assert_eq!(msgs.len(), 3);
        msgs.reverse(); // out of order (Bridge Spec §5.2)
        let got = feed(&mut core, &msgs, seq * MS);
        assert_eq!(
            got,
            [Got {
                seq,
                epoch: 1,
                stream: STREAM,
                bytes: payload(seq, 2500)
            }]
        );
    }
    let c = core.counters();
    assert_eq!(
        (c.accepted, c.fallback_frames, c.fallback_chunks),
        (3, 3, 9)
    );
    assert_eq!(c.bytes, 3 * 2500);
    assert_eq!((c.fallback_chunk_drops, c.fallback_frame_drops), (0, 0));
    assert_eq!(core.state(), ConsumerState::Fallback, "still FALLBACK");
    // a duplicate of a delivered frame is not delivered again
    assert!(feed(&mut core, &chunks(3, 2500), 4 * MS).is_empty());
    // a gap is counted as in SHM
    assert_eq!(feed(&mut core, &chunks(6, 10), 5 * MS).len(), 1);
    assert_eq!(core.drops().gap, 2);
    // use_shm = true again: the fallback ends, chunks are ignored
    core.on_control(&config_msg(true, ""), &mut |_: &Frame<'_>| {});
    assert_eq!(core.fallback_source(), None);
    assert!(feed(&mut core, &chunks(7, 10), 6 * MS).is_empty());
}

#[test]
fn br_5_torn_crc_bad_foreign_and_stale_chunks_give_no_frame() {
    let mut core = ordered(URI);
    // a flipped payload byte: the CRC32C fails, the frame dies, its other chunks too
    let mut msgs = chunks(1, 2500);
    let n = msgs[1].len();
    msgs[1][n - 5] ^= 0x40;
    assert!(feed(&mut core, &msgs, MS).is_empty());
    assert_eq!(core.counters().fallback_crc_errors, 1);
    // a missing chunk: never complete, dropped at the assembly timeout
    let msgs = chunks(2, 2500);
    assert!(feed(&mut core, &msgs[..2], 2 * MS).is_empty());
    let before = core.counters().fallback_frame_drops;
    let mut sink = RecordingSink::with_capacity(16, 1 << 16);
    let mut qos = RecordingSink::with_capacity(16, 1 << 16);
    core.poll_timers(
        500 * MS,
        &mut tensorpool::consumer::Sinks {
            control: &mut sink,
            qos: &mut qos,
        },
    );
    assert!(core.counters().fallback_frame_drops > before, "timed out");
    assert!(feed(&mut core, &msgs[2..], 501 * MS).is_empty(), "too late");
    // another stream's chunks on the same channel: not ours
    let other = chunks_of(STREAM + 1, 1, 3, &header(3, 100), &payload(3, 100));
    assert!(feed(&mut core, &other, 502 * MS).is_empty());
    // a header that does not carry this seq, one whose values_len differs from the payload
    let bad_seq = chunks_of(STREAM, 1, 4, &header(5, 100), &payload(4, 100));
    assert!(feed(&mut core, &bad_seq, 503 * MS).is_empty());
    let bad_len = chunks_of(STREAM, 1, 6, &header(6, 99), &payload(6, 100));
    assert!(feed(&mut core, &bad_len, 504 * MS).is_empty());
    // a frame larger than fallback_max_payload_bytes
    let big = chunks(7, 70 * 1024);
    assert!(feed(&mut core, &big, 505 * MS).is_empty());
    // raw bytes
    assert!(feed(&mut core, &[vec![1, 2, 3], vec![0; 64]], 506 * MS).is_empty());
    assert_eq!(core.counters().accepted, 0);
    // a newer epoch is taken, an older one then dropped (Bridge Spec §8)
    let e2 = chunks_of(STREAM, 2, 1, &header(1, 100), &payload(1, 100));
    assert_eq!(feed(&mut core, &e2, 507 * MS).len(), 1);
    let e1 = chunks_of(STREAM, 1, 9, &header(9, 100), &payload(9, 100));
    assert!(feed(&mut core, &e1, 508 * MS).is_empty());
    // the same seq again in the new epoch is a regression, not a frame
    assert!(
        feed(
            &mut core,
            &chunks_of(STREAM, 2, 1, &header(1, 50), &payload(1, 50)),
            509 * MS
        )
        .is_empty()
    );
    assert_eq!(core.counters().accepted, 1);
}

#[test]
fn w_10_1_3_bridge_ids_resolve_through_consumer_config_and_unknown_ones_are_refused() {
    let mut core = ordered("bridge://cam1");
    assert_eq!(
        core.fallback_source(),
        Some(("aeron:udp?endpoint=127.0.0.1:40200", 3100))
    );
    assert_eq!(feed(&mut core, &chunks(1, 100), MS).len(), 1);

    let mut core = ordered("bridge://cam2");
    assert_eq!(core.fallback_source(), None, "not served");
    assert!(
        core.fallback()
            .is_some_and(|f| f.supported && f.target.is_none())
    );
    let r = core.last_rejection().expect("a rejection");
    assert!(
        r.reason.contains("unknown bridge id \"cam2\""),
        "{}",
        r.reason
    );
    assert!(feed(&mut core, &chunks(1, 100), MS).is_empty(), "no frames");
    assert_eq!(core.state(), ConsumerState::Fallback);

    for (uri, why) in [
        ("ftp://nowhere", "undefined scheme"),
        ("bridge://", "no bridge id"),
        ("aeron:udp?endpoint=127.0.0.1:1", "names no stream-id"),
        (
            "aeron:udp?endpoint=127.0.0.1:1|stream-id=x",
            "not a positive stream id",
        ),
    ] {
        let core = ordered(uri);
        assert_eq!(core.fallback_source(), None, "{uri}");
        let r = core.last_rejection().expect("a rejection");
        assert!(r.reason.contains(why), "{uri}: {}", r.reason);
    }
    // consumer.fallback_stream_id serves an aeron: URI without a stream-id
    let mut cfg = config();
    cfg.fallback_stream_id = 3333;
    assert_eq!(
        resolve_fallback("aeron:udp?endpoint=127.0.0.1:1", &cfg),
        Ok(("aeron:udp?endpoint=127.0.0.1:1".to_owned(), 3333))
    );
    assert_eq!(
        resolve_fallback(URI, &cfg),
        Ok((URI.to_owned(), 3000)),
        "the URI's stream-id wins"
    );
}

#[test]
fn fallback_keys_from_a_file() {
    let env = std::collections::HashMap::new();
    let text = "[consumer]\nfallback_stream_id = 3000\nfallback_max_payload_bytes = 4096\n\
                fallback_integrity_crc32c = true\nfallback_assembly_timeout_ms = 400\n\
                [consumer.bridges.cam1]\nchannel = \"aeron:udp?endpoint=10.0.0.1:4000\"\nstream_id = 3100\n";
    let mut l = tensorpool::config::Loader::from_str(text, "inline", &env).unwrap();
    let c = ConsumerConfig::from_loader(&mut l).unwrap();
    assert_eq!(c.fallback_stream_id, 3000);
    assert_eq!(c.fallback_max_payload_bytes, 4096);
    assert!(c.fallback_integrity_crc32c);
    assert_eq!(c.fallback_assembly_timeout, Duration::from_millis(400));
    assert_eq!(
        c.fallback_bridges,
        [BridgeRoute {
            id: "cam1".into(),
            channel: "aeron:udp?endpoint=10.0.0.1:4000".into(),
            stream_id: 3100
        }]
    );
    assert!(tensorpool::config::unknown_keys_under(&l, "consumer").is_empty());
    let half = "[consumer.bridges.cam1]\nchannel = \"aeron:ipc\"\n";
    let mut l = tensorpool::config::Loader::from_str(half, "inline", &env).unwrap();
    let err = ConsumerConfig::from_loader(&mut l).unwrap_err();
    assert!(
        err.to_string().contains("consumer.bridges.cam1.stream_id"),
        "{err}"
    );
}

#[test]
fn br_5_3_integrity_required_drops_chunks_without_a_crc() {
    let mut cfg = config();
    cfg.fallback_integrity_crc32c = true;
    let mut core = ConsumerCore::new(cfg).unwrap();
    core.on_control(&config_msg(false, URI), &mut |_: &Frame<'_>| {});
    let h = header(1, 100);
    let data = payload(1, 100);
    let frame = SourceFrame {
        stream_id: STREAM,
        epoch: 1,
        seq: 1,
        trace_id: 0,
        header: &h,
        payload: &data,
    };
    let mut sink = RecordingSink::with_capacity(16, 1 << 16);
    let mut seen = 0;
    send_frame(
        &frame,
        1000,
        1 << 30,
        false,
        &mut || true,
        &mut sink,
        &mut seen,
    );
    let msgs: Vec<Vec<u8>> = sink.messages().map(<[u8]>::to_vec).collect();
    assert!(feed(&mut core, &msgs, MS).is_empty());
    assert_eq!(core.counters().fallback_crc_errors, 1);
    assert_eq!(
        feed(&mut core, &chunks(2, 100), 2 * MS).len(),
        1,
        "with a CRC: taken"
    );
}

#[test]
fn arch_2_the_steady_fallback_cycle_allocates_nothing() {
    let mut core = ordered(URI);
    let frames: Vec<Vec<Vec<u8>>> = (1..=200u64).map(|s| chunks(s, 2500)).collect();
    let mut sink = RecordingSink::with_capacity(64, 1 << 16);
    let mut qos = RecordingSink::with_capacity(64, 1 << 16);
    let mut delivered = 0u64;
    let mut run = |core: &mut ConsumerCore, range: std::ops::Range<usize>, delivered: &mut u64| {
        for i in range {
            let now = (i as u64 + 1) * MS;
            for m in frames[i].iter().rev() {
                core.on_fallback_chunk(m, now, &mut |f: &Frame<'_>| {
                    let b = f.bytes();
                    if f.recheck().is_ok() && b.len() == 2500 {
                        *delivered += 1;
                    }
                });
            }
            sink.clear();
            qos.clear();
            core.poll_timers(
                now,
                &mut tensorpool::consumer::Sinks {
                    control: &mut sink,
                    qos: &mut qos,
                },
            );
        }
    };
    run(&mut core, 0..10, &mut delivered);
    let ((), counts) = CountingAllocator::count_thread(|| run(&mut core, 10..200, &mut delivered));
    assert!(counts.is_zero(), "{counts:?}");
    assert_eq!(delivered, 200);
}
