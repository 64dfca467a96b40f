//! Interop with bytes written by the public C implementation (tensor_pool_c fuzz seeds,
//! `shared/vectors/tensor_pool_c`): every SBE vector decodes to the values stated here, and
//! re-encoding an accepted one reproduces its bytes exactly.
//!
//! `shm_uri.bin` and `shm_uri_validate.bin` are region URI strings, tested by the shm layer.
//! The shared directory is found through `TENSORPOOL_SHARED_DIR` (default
//! `<workspace>/../shared`); without it these tests print why and pass.

use std::fmt::Debug;
use std::path::PathBuf;

use tensorpool_codec::bridge::BridgeFrameChunk;
use tensorpool_codec::discovery::{DiscoveryResponse, DiscoveryResult, DiscoveryStatus};
use tensorpool_codec::merge::{
    MergeRuleType, MergeTimeRuleType, SequenceMergeMapAnnounce, SequenceMergeMapRequest,
    TimestampMergeMapAnnounce, TimestampMergeMapRequest, TimestampSource,
};
use tensorpool_codec::tracelink::TraceLinkSet;
use tensorpool_codec::wire::*;
use tensorpool_codec::{AnyMessage, Bytes, DecodeError, Group, Message};

fn vector(name: &str) -> Option<Vec<u8>> {
    let dir = std::env::var_os("TENSORPOOL_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"))
        .join("vectors/tensor_pool_c");
    let path = dir.join(name);
    match std::fs::read(&path) {
        Ok(bytes) => Some(bytes),
        Err(e) if !dir.exists() => {
            println!(
                "skipped: {} not found ({e}); set TENSORPOOL_SHARED_DIR",
                dir.display()
            );
            None
        }
        Err(e) => panic!("{}: {e}", path.display()),
    }
}

/// Decodes `bytes` as `M` (and through `AnyMessage`), checks that re-encoding gives the
/// same bytes, and returns the value for the caller's field checks.
fn accept<'a, M: Message<'a> + PartialEq + Debug>(bytes: &'a [u8]) -> M {
    let m = M::decode(bytes).unwrap_or_else(|e| panic!("{}: {e}", M::NAME));
    assert_eq!(m.encoded_len(), bytes.len(), "{}: encoded_len", M::NAME);
    let mut out = vec![0u8; bytes.len()];
    assert_eq!(m.encode(&mut out), Ok(bytes.len()));
    assert_eq!(out, bytes, "{}: re-encoding differs", M::NAME);
    let any = AnyMessage::decode(bytes).expect("AnyMessage");
    assert_eq!(any.name(), M::NAME);
    m
}

#[test]
fn shm_pool_announce() {
    let Some(b) = vector("shm_pool_announce.bin") else {
        return;
    };
    let m: ShmPoolAnnounce = accept(&b);
    assert_eq!(
        (m.stream_id, m.producer_id, m.epoch, m.announce_timestamp_ns),
        (1000, 1, 1, 0)
    );
    assert_eq!(m.announce_clock_domain, ClockDomain::Monotonic);
    assert_eq!(
        (m.layout_version, m.header_nslots, m.header_slot_bytes),
        (1, 8, 256)
    );
    let pools: Vec<_> = m.payload_pools.iter().collect();
    assert_eq!(pools.len(), 1);
    assert_eq!(
        (
            pools[0].pool_id,
            pools[0].pool_nslots,
            pools[0].stride_bytes
        ),
        (1, 8, 1024)
    );
    assert_eq!(pools[0].region_uri, "shm:///tmp/pool1");
    assert_eq!(m.header_region_uri, "shm:///tmp/header");
}

#[test]
fn consumer_hello() {
    let Some(b) = vector("consumer_hello.bin") else {
        return;
    };
    let m: ConsumerHello = accept(&b);
    assert_eq!((m.stream_id, m.consumer_id), (1000, 2));
    assert!(m.supports_shm && m.supports_progress);
    assert_eq!(m.mode, Mode::Stream);
    assert_eq!((m.max_rate_hz, m.expected_layout_version), (0, 1));
    // the three progress hints are the schema's null (0xFFFFFFFF)
    assert_eq!(
        (
            m.progress_interval_us,
            m.progress_bytes_delta,
            m.progress_major_delta_units
        ),
        (None, None, None)
    );
    assert_eq!((m.descriptor_stream_id, m.control_stream_id), (1100, 1000));
    assert_eq!(
        (m.descriptor_channel.as_str(), m.control_channel.as_str()),
        (Ok("aeron:ipc"), Ok("aeron:ipc"))
    );
}

#[test]
fn consumer_config() {
    let Some(b) = vector("consumer_config.bin") else {
        return;
    };
    let m: ConsumerConfig = accept(&b);
    assert_eq!(
        (m.stream_id, m.consumer_id, m.use_shm, m.mode),
        (1000, 2, true, Mode::Stream)
    );
    assert_eq!((m.descriptor_stream_id, m.control_stream_id), (1100, 1000));
    assert!(m.payload_fallback_uri.is_empty());
    assert_eq!(
        (
            m.descriptor_channel.as_bytes(),
            m.control_channel.as_bytes()
        ),
        (&b"aeron:ipc"[..], &b"aeron:ipc"[..])
    );
}

#[test]
fn control_response() {
    let Some(b) = vector("control_response.bin") else {
        return;
    };
    let m: ControlResponse = accept(&b);
    assert_eq!((m.correlation_id, m.code), (1, ResponseCode::Ok));
    assert_eq!(m.error_message, "ok");
}

#[test]
fn data_source_announce() {
    let Some(b) = vector("data_source_announce.bin") else {
        return;
    };
    let m: DataSourceAnnounce = accept(&b);
    assert_eq!(
        (m.stream_id, m.producer_id, m.epoch, m.meta_version),
        (1000, 1, 1, 1)
    );
    assert_eq!(
        (m.name.as_str(), m.summary.as_str()),
        (Ok("camera"), Ok("example"))
    );
}

#[test]
fn data_source_meta() {
    let Some(b) = vector("data_source_meta.bin") else {
        return;
    };
    let m: DataSourceMeta = accept(&b);
    assert_eq!((m.stream_id, m.meta_version, m.timestamp_ns), (1000, 1, 0));
    let attrs: Vec<_> = m.attributes.iter().collect();
    assert_eq!(attrs.len(), 1);
    assert_eq!(
        (attrs[0].key.as_str(), attrs[0].format.as_str()),
        (Ok("dtype"), Ok("string"))
    );
    assert_eq!(attrs[0].value, "float32");
    // the group has only var data: blockLength 0 in its header
    assert_eq!(&b[24..28], &[0, 0, 1, 0]);
}

#[test]
fn meta_blobs() {
    let Some(b) = vector("meta_blob_announce.bin") else {
        return;
    };
    let m: MetaBlobAnnounce = accept(&b);
    assert_eq!(
        (
            m.stream_id,
            m.meta_version,
            m.blob_type,
            m.total_len,
            m.checksum
        ),
        (1000, 1, 1, 4, 0x1234)
    );

    let Some(b) = vector("meta_blob_chunk.bin") else {
        return;
    };
    let m: MetaBlobChunk = accept(&b);
    assert_eq!((m.stream_id, m.meta_version, m.chunk_offset), (1000, 1, 0));
    assert_eq!(m.bytes, "abcd");

    let Some(b) = vector("meta_blob_complete.bin") else {
        return;
    };
    let m: MetaBlobComplete = accept(&b);
    assert_eq!((m.stream_id, m.meta_version, m.checksum), (1000, 1, 0x1234));
}

#[test]
fn qos() {
    let Some(b) = vector("qos_consumer.bin") else {
        return;
    };
    let m: QosConsumer = accept(&b);
    assert_eq!(
        (m.stream_id, m.consumer_id, m.epoch, m.last_seq_seen),
        (1000, 2, 1, 40)
    );
    assert_eq!((m.drops_gap, m.drops_late, m.mode), (1, 0, Mode::Stream));

    let Some(b) = vector("qos_producer.bin") else {
        return;
    };
    let m: QosProducer = accept(&b);
    assert_eq!(
        (
            m.stream_id,
            m.producer_id,
            m.epoch,
            m.current_seq,
            m.watermark
        ),
        (1000, 1, 1, 42, Some(128))
    );
}

#[test]
fn merge_maps() {
    let Some(b) = vector("sequence_map.bin") else {
        return;
    };
    let m: SequenceMergeMapAnnounce = accept(&b);
    assert_eq!(
        (m.out_stream_id, m.epoch, m.stale_timeout_ns),
        (2000, 1, Some(1_000_000))
    );
    let rules: Vec<_> = m.rules.iter().collect();
    assert_eq!(rules.len(), 1);
    assert_eq!(
        (rules[0].input_stream_id, rules[0].rule_type),
        (1001, MergeRuleType::Offset)
    );
    // offset 0 is a value; windowSize carries its null (0xFFFFFFFF)
    assert_eq!((rules[0].offset, rules[0].window_size), (Some(0), None));

    let Some(b) = vector("sequence_request.bin") else {
        return;
    };
    let m: SequenceMergeMapRequest = accept(&b);
    assert_eq!((m.out_stream_id, m.epoch), (2000, 1));

    let Some(b) = vector("timestamp_map.bin") else {
        return;
    };
    let m: TimestampMergeMapAnnounce = accept(&b);
    assert_eq!(
        (m.out_stream_id, m.epoch, m.stale_timeout_ns),
        (2001, 1, Some(1_000_000))
    );
    assert_eq!(
        (m.clock_domain, m.lateness_ns),
        (ClockDomain::Monotonic, Some(0))
    );
    let rules: Vec<_> = m.rules.iter().collect();
    assert_eq!(rules.len(), 1);
    let r = &rules[0];
    assert_eq!(
        (r.input_stream_id, r.rule_type, r.timestamp_source),
        (
            1002,
            MergeTimeRuleType::OffsetNs,
            TimestampSource::FrameDescriptor
        )
    );
    assert_eq!((r.offset_ns, r.window_ns), (Some(0), None));

    let Some(b) = vector("timestamp_request.bin") else {
        return;
    };
    let m: TimestampMergeMapRequest = accept(&b);
    assert_eq!((m.out_stream_id, m.epoch), (2001, 1));
}

#[test]
fn trace_link_set() {
    let Some(b) = vector("trace_link_set.bin") else {
        return;
    };
    let m: TraceLinkSet = accept(&b);
    assert_eq!(
        (m.stream_id, m.epoch, m.seq, m.trace_id),
        (1000, 1, 0, 0x1234)
    );
    let parents: Vec<u64> = m.parents.iter().map(|p| p.trace_id).collect();
    assert_eq!(parents, [0x1111, 0x2222]);
}

/// The C seed generator wrote `errorMessage` *before* the `results` group (it calls
/// `put_errorMessage` first), while the schema, like SBE itself, puts groups before var
/// data. Read by the schema the group header lands on the empty message's length (four zero
/// bytes: blockLength 0 for entries of 39 bytes), so the file is rejected. Moving those four
/// bytes to the end gives the message the C provider sends, which is accepted; it carries
/// the C encoding of the nested groups and of `tags` (group blockLength 0, then length +
/// bytes), which a message built by hand must reproduce.
#[test]
fn discovery_response() {
    let Some(b) = vector("discovery_response.bin") else {
        return;
    };
    assert_eq!(
        DiscoveryResponse::decode(&b),
        Err(DecodeError::GroupBlockLength {
            group: "results",
            min: 39,
            found: 0
        })
    );

    let block_end = 8 + 9;
    assert_eq!(
        &b[block_end..block_end + 4],
        &[0, 0, 0, 0],
        "the misplaced empty errorMessage"
    );
    let mut fixed = b[..block_end].to_vec();
    fixed.extend_from_slice(&b[block_end + 4..]);
    fixed.extend_from_slice(&[0, 0, 0, 0]);

    let m: DiscoveryResponse = accept(&fixed);
    assert_eq!((m.request_id, m.status), (1, DiscoveryStatus::Ok));
    assert!(m.error_message.is_empty());
    let results: Vec<_> = m.results.iter().collect();
    assert_eq!(results.len(), 1);
    let r = &results[0];
    assert_eq!(
        (r.stream_id, r.producer_id, r.epoch, r.layout_version),
        (1000, 1, 1, 1)
    );
    assert_eq!(
        (r.header_nslots, r.header_slot_bytes, r.max_dims),
        (8, 256, 8)
    );
    assert_eq!(
        (r.data_source_id, r.driver_control_stream_id),
        (Some(1), 1000)
    );
    let pools: Vec<_> = r.payload_pools.iter().collect();
    assert_eq!(pools.len(), 1);
    assert_eq!(
        (
            pools[0].pool_id,
            pools[0].pool_nslots,
            pools[0].stride_bytes
        ),
        (1, 8, 1024)
    );
    assert_eq!(pools[0].region_uri, "shm:///tmp/pool1");
    let tags: Vec<_> = r.tags.iter().collect();
    assert_eq!(tags, ["tag1"]);
    assert_eq!(r.header_region_uri, "shm:///tmp/header");
    assert_eq!(r.data_source_name, "camera");
    assert_eq!(r.driver_instance_id, "driver-1");
    assert_eq!(r.driver_control_channel, "aeron:ipc");
    // the tags group exactly as the C peer writes it: header (blockLength 0, count 1), then
    // length + bytes
    assert!(
        fixed
            .windows(12)
            .any(|w| w == b"\x00\x00\x01\x00\x04\x00\x00\x00tag1")
    );

    // the same message built by hand (borrowed groups, not the decoded bytes) encodes to
    // the same bytes
    let pool = [PayloadPool {
        pool_id: 1,
        pool_nslots: 8,
        stride_bytes: 1024,
        region_uri: "shm:///tmp/pool1".into(),
    }];
    let tag = [Bytes::from("tag1")];
    let result = [DiscoveryResult {
        stream_id: 1000,
        producer_id: 1,
        epoch: 1,
        layout_version: 1,
        header_nslots: 8,
        header_slot_bytes: 256,
        max_dims: 8,
        data_source_id: Some(1),
        driver_control_stream_id: 1000,
        payload_pools: Group::Slice(&pool),
        tags: Group::Slice(&tag),
        header_region_uri: "shm:///tmp/header".into(),
        data_source_name: "camera".into(),
        driver_instance_id: "driver-1".into(),
        driver_control_channel: "aeron:ipc".into(),
    }];
    let by_hand = DiscoveryResponse {
        request_id: 1,
        status: DiscoveryStatus::Ok,
        results: Group::Slice(&result),
        error_message: Bytes::EMPTY,
    };
    assert_eq!(by_hand, m);
    assert_eq!(by_hand.encode_to_vec().expect("encode"), fixed);
}

fn check_tensor_header(t: &TensorHeader) {
    assert_eq!(
        (t.dtype, t.major_order, t.ndims),
        (Dtype::Float32, MajorOrder::Row, 1)
    );
    assert_eq!(
        (t.progress_unit, t.progress_stride_bytes, t.pad_align),
        (ProgressUnit::None, 0, 0)
    );
    assert_eq!(t.dims, [1, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(t.strides, [0; 8]);
    assert!(t.pad.iter().all(|&p| p == 0));
}

#[test]
fn tensor_header() {
    let Some(b) = vector("tensor_header.bin") else {
        return;
    };
    assert_eq!(b.len(), 192);
    let t: TensorHeader = accept(&b);
    check_tensor_header(&t);
}

fn check_slot(b: &[u8]) -> SlotHeader {
    let s = SlotHeader::decode(b).expect("slot");
    let mut out = [0u8; slot::LEN];
    assert_eq!(s.encode(&mut out), Ok(slot::LEN));
    assert_eq!(&out[..], b, "slot re-encoding differs");
    let mut tail = [0u8; slot::LEN - 8];
    assert_eq!(s.encode_after_seq_commit(&mut tail), Ok(slot::LEN - 8));
    assert_eq!(&tail[..], &b[8..]);
    check_tensor_header(&s.tensor);
    assert_eq!(
        (
            s.payload_slot,
            s.pool_id,
            s.payload_offset,
            s.timestamp_ns,
            s.meta_version
        ),
        (0, 1, 0, 0, 0)
    );
    assert_eq!(s.pad, [0; 26]);
    s
}

#[test]
fn slot_header() {
    let Some(b) = vector("slot_header.bin") else {
        return;
    };
    let s = check_slot(&b);
    // committed (low bit) sequence 0; this seed puts 192 in valuesLenBytes
    assert_eq!((s.seq_commit, s.values_len_bytes), (1, 192));
}

#[test]
fn slot_tensor() {
    let Some(b) = vector("slot_tensor.bin") else {
        return;
    };
    let s = check_slot(&b);
    // committed sequence 1: seq_commit = 1 << 1 | 1
    assert_eq!(
        (s.seq_commit, s.seq_commit >> 1, s.values_len_bytes),
        (3, 1, 64)
    );
}

#[test]
fn superblock() {
    let Some(b) = vector("superblock.bin") else {
        return;
    };
    let s = ShmRegionSuperblock::decode(&b).expect("superblock");
    assert_eq!(
        (s.magic, s.layout_version, s.epoch, s.stream_id),
        (superblock::MAGIC, 1, 1, 1000)
    );
    assert_eq!(
        (
            s.region_type,
            s.pool_id,
            s.nslots,
            s.slot_bytes,
            s.stride_bytes
        ),
        (RegionType::HeaderRing, 0, 8, 256, 0)
    );
    assert_eq!(
        (s.pid, s.start_timestamp_ns, s.activity_timestamp_ns),
        (0, 0, 0)
    );
    assert_eq!(&b[..8], b"1MHSLPOT"); // "TPOLSHM1" as a little-endian u64
    let mut out = [0u8; superblock::LEN];
    assert_eq!(s.encode(&mut out), Ok(64));
    assert_eq!(&out[..], &b[..]);
}

/// `progress.bin` is the input of the C `fuzz_progress_validate` harness, not one SBE
/// message: a flags byte (bit 0: committed), then little-endian seq u64, stream id u32,
/// epoch u64, stride u32, values length u32, pool id u16, bytes filled u32, progress state
/// u32, timestamp u64, meta version u32 (51 bytes), then the 192-byte TensorHeader message
/// the harness copies into the slot's headerBytes. We check the TensorHeader, and rebuild
/// the slot and FrameProgress the harness builds from those values.
#[test]
fn progress() {
    let Some(b) = vector("progress.bin") else {
        return;
    };
    assert_eq!(b.len(), 51 + 192);
    let mut pos = 1;
    let mut take = |n: usize| {
        let v = b[pos..pos + n]
            .iter()
            .rev()
            .fold(0u64, |acc, &x| (acc << 8) | u64::from(x));
        pos += n;
        v
    };
    let (seq, stream_id, epoch) = (take(8), take(4) as u32, take(8));
    let (stride, values_len, pool_id) = (take(4), take(4), take(2) as u16);
    let (filled, state, timestamp, meta_version) = (take(4), take(4), take(8), take(4) as u32);
    assert_eq!(b[0] & 1, 1, "committed");
    assert_eq!(
        (seq, stream_id, epoch, stride, values_len, pool_id),
        (1, 1000, 1, 256, 64, 1)
    );
    assert_eq!((filled, state, timestamp, meta_version), (32, 2, 0, 0));

    let header = &b[51..];
    let t: TensorHeader = accept(header);
    check_tensor_header(&t);

    // the harness's progress message (its derivations: stride % 4096 + 64, values % (stride + 1), ...)
    let stride = (stride % 4096) + 64;
    let values_len = values_len % (stride + 1);
    let progress = FrameProgress {
        stream_id,
        epoch,
        seq,
        payload_bytes_filled: filled % (values_len + 1),
        state: FrameProgressState::try_from((state % 4) as u8).expect("state"),
    };
    assert_eq!(progress.state, FrameProgressState::Progress);
    let bytes = progress.encode_to_vec().expect("encode");
    assert_eq!(FrameProgress::decode(&bytes), Ok(progress));

    // and its slot: header index seq & (nslots - 1) with nslots = 2 << (flags & 3)
    let slot_header = SlotHeader {
        seq_commit: (seq << 1) | 1,
        values_len_bytes: values_len as u32,
        payload_slot: (seq & ((2 << (b[0] & 3)) - 1)) as u32,
        pool_id: pool_id | 1,
        payload_offset: 0,
        timestamp_ns: timestamp,
        meta_version,
        pad: [0; 26],
        tensor: t,
    };
    let mut slot_bytes = [0u8; slot::LEN];
    slot_header.encode(&mut slot_bytes).expect("slot");
    assert_eq!(&slot_bytes[slot::TENSOR_HEADER_OFFSET..], header);
    assert_eq!(SlotHeader::decode(&slot_bytes), Ok(slot_header));
}

/// The two URI vectors are strings, not SBE; no schema accepts them as a message.
#[test]
fn uri_vectors_are_not_messages() {
    for name in ["shm_uri.bin", "shm_uri_validate.bin"] {
        let Some(b) = vector(name) else { return };
        assert!(
            matches!(
                AnyMessage::decode(&b),
                Err(DecodeError::UnknownMessage { .. })
            ),
            "{name}"
        );
    }
}

/// Every file in the directory is covered by a test above.
#[test]
fn every_vector_is_covered() {
    let Some(_) = vector("superblock.bin") else {
        return;
    };
    let dir = PathBuf::from(
        std::env::var_os("TENSORPOOL_SHARED_DIR").unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../../shared")
                .into_os_string()
        }),
    )
    .join("vectors/tensor_pool_c");
    let covered = [
        "consumer_config.bin",
        "consumer_hello.bin",
        "control_response.bin",
        "data_source_announce.bin",
        "data_source_meta.bin",
        "discovery_response.bin",
        "meta_blob_announce.bin",
        "meta_blob_chunk.bin",
        "meta_blob_complete.bin",
        "progress.bin",
        "qos_consumer.bin",
        "qos_producer.bin",
        "sequence_map.bin",
        "sequence_request.bin",
        "shm_pool_announce.bin",
        "shm_uri.bin",
        "shm_uri_validate.bin",
        "slot_header.bin",
        "slot_tensor.bin",
        "superblock.bin",
        "tensor_header.bin",
        "timestamp_map.bin",
        "timestamp_request.bin",
        "trace_link_set.bin",
    ];
    for entry in std::fs::read_dir(dir).expect("vector dir") {
        let name = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        if name.ends_with(".bin") {
            assert!(covered.contains(&name.as_str()), "{name} has no test");
        }
    }
}

#[test]
fn bridge_chunk_has_no_vector_but_round_trips() {
    // No C vector exists for schema 902; a hand-built chunk checks the field order instead:
    // traceId (id 12) sits between seq and chunkIndex, payloadCrc32c (id 13) before
    // headerIncluded.
    let m = BridgeFrameChunk {
        stream_id: 1,
        epoch: 2,
        seq: 3,
        trace_id: Some(4),
        chunk_index: 5,
        chunk_count: 6,
        chunk_offset: 7,
        chunk_length: 8,
        payload_length: 9,
        payload_crc32c: 10,
        header_included: true,
        header_bytes: (&[1u8, 2][..]).into(),
        payload_bytes: "xyz".into(),
    };
    let b = m.encode_to_vec().expect("encode");
    assert_eq!(&b[..8], &[53, 0, 1, 0, 0x86, 3, 1, 0]);
    assert_eq!(&b[8 + 20..8 + 28], &4u64.to_le_bytes());
    assert_eq!(&b[8 + 48..8 + 53], &[10, 0, 0, 0, 1]);
    assert_eq!(BridgeFrameChunk::decode(&b), Ok(m));
}
