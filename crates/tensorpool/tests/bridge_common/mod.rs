//! What the bridge core tests share: a configuration, source frames with valid slot headers,
//! forwarded announces, and a sender -> receiver pipe through `RecordingSink`s.
#![allow(dead_code)]

use tensorpool::bridge::{BridgeConfig, BridgeCore, SourceFrame};
use tensorpool::config::NoEnv;
use tensorpool::control::RecordingSink;
use tensorpool_codec::wire::{ClockDomain, PayloadPool, ShmPoolAnnounce};
use tensorpool_codec::{Bytes, Group, Message};
use tensorpool_shm::HEADER_SLOT_BYTES;
use tensorpool_shm::tensor::{Dtype, MajorOrder, new_header};

pub const MS: u64 = 1_000_000;
pub const SOURCE: u32 = 10_000;
pub const DEST: u32 = 20_000;
/// Stride of the source pool (and the receiver's local capacity).
pub const STRIDE: u32 = 16 * 1024;

/// A bridge configuration with `extra` lines in `[bridge]`.
pub fn config(extra: &str) -> BridgeConfig {
    BridgeConfig::from_toml(
        &format!(
            "[bridge]\ninstance_id = \"t\"\npayload_channel = \"aeron:udp?endpoint=127.0.0.1:40123\"\npayload_stream_id = 3000\ncontrol_channel = \"aeron:udp?endpoint=127.0.0.1:40124\"\ncontrol_stream_id = 3001\n{extra}\n[[mappings]]\nsource_stream_id = {SOURCE}\ndest_stream_id = {DEST}\nprofile = \"default\"\n"
        ),
        &NoEnv,
    )
    .unwrap()
}

/// A core with chunks of `chunk_bytes` (receiver sized for [`STRIDE`]).
pub fn core(extra: &str) -> BridgeCore {
    let mut c = BridgeCore::new(&config(extra));
    c.set_local_capacity(0, DEST, STRIDE);
    c
}

/// The slot header block of frame `seq` with `len` payload bytes in pool `pool_id`.
pub fn header(seq: u64, len: u32, pool_id: u16) -> [u8; HEADER_SLOT_BYTES] {
    let t = new_header(Dtype::Uint8, MajorOrder::Row, &[len as i32], &[0]).unwrap();
    let h = tensorpool_shm::slot::slot_for_frame(seq, 3, pool_id, len, &t);
    let mut out = [0u8; HEADER_SLOT_BYTES];
    tensorpool_shm::slot::encode_slot(&h, &mut out).unwrap();
    out
}

/// Deterministic payload of frame `seq`.
pub fn payload(seq: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u64).wrapping_mul(31).wrapping_add(seq * 7) as u8)
        .collect()
}

/// A forwarded announce of the source stream.
pub fn announce(epoch: u64) -> Vec<u8> {
    let pools = [PayloadPool {
        pool_id: 1,
        pool_nslots: 8,
        stride_bytes: STRIDE,
        region_uri: Bytes::new(b"shm:file?path=/dev/shm/p"),
    }];
    ShmPoolAnnounce {
        stream_id: SOURCE,
        producer_id: 7,
        epoch,
        announce_timestamp_ns: 1,
        announce_clock_domain: ClockDomain::Monotonic,
        layout_version: 1,
        header_nslots: 8,
        header_slot_bytes: 256,
        payload_pools: Group::Slice(&pools),
        header_region_uri: Bytes::new(b"shm:file?path=/dev/shm/h"),
    }
    .encode_to_vec()
    .unwrap()
}

/// Chunks of frame `seq` (epoch 1) with `len` bytes, as the sender publishes them.
pub fn chunks(core: &mut BridgeCore, seq: u64, len: usize, trace: u64) -> Vec<Vec<u8>> {
    chunks_of(core, 1, seq, &payload(seq, len), trace)
}

/// Chunks of a frame with this payload.
pub fn chunks_of(
    core: &mut BridgeCore,
    epoch: u64,
    seq: u64,
    data: &[u8],
    trace: u64,
) -> Vec<Vec<u8>> {
    let h = header(seq, data.len() as u32, 1);
    let frame = SourceFrame {
        stream_id: SOURCE,
        epoch,
        seq,
        trace_id: trace,
        header: &h,
        payload: data,
    };
    let mut sink = RecordingSink::with_capacity(1024, 1 << 20);
    core.send_frame(&frame, &mut || true, &mut sink);
    sink.messages().map(<[u8]>::to_vec).collect()
}

/// One frame the receiver handed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Got {
    pub seq: u64,
    pub trace_id: Option<u64>,
    pub payload: Vec<u8>,
}

/// Feeds `msgs` to the receiver; returns the frames it completed.
pub fn receive(core: &mut BridgeCore, msgs: &[Vec<u8>], now_ns: u64) -> Vec<Got> {
    let mut got = Vec::new();
    for m in msgs {
        core.on_chunk(m, now_ns, &mut |f: &tensorpool::bridge::Assembled<'_>| {
            got.push(Got {
                seq: f.seq,
                trace_id: f.trace_id,
                payload: f.payload.to_vec(),
            });
            true
        });
    }
    got
}

/// A `DataSourceAnnounce` of `stream_id`.
pub fn data_source_announce(stream_id: u32) -> Vec<u8> {
    tensorpool_codec::wire::DataSourceAnnounce {
        stream_id,
        producer_id: 7,
        epoch: 1,
        meta_version: 5,
        name: Bytes::new(b"camera"),
        summary: Bytes::new(b"left"),
    }
    .encode_to_vec()
    .unwrap()
}
