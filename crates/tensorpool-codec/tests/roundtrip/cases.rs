//! Targeted cases: unknown enum values, var-data caps, group limits and extensions,
//! discovery tags, pre-encoded groups, the embedded TensorHeader checks, dispatch.

use tensorpool_codec::bridge::*;
use tensorpool_codec::discovery::*;
use tensorpool_codec::driver::*;
use tensorpool_codec::tracelink::*;
use tensorpool_codec::wire::*;
use tensorpool_codec::{
    AnyMessage, Bytes, DecodeError, EncodeError, Group, HEADER_LEN, Message, MessageHeader,
};

use super::set_header;
fn encoded<'a>(m: &impl Message<'a>) -> Vec<u8> {
    m.encode_to_vec().unwrap()
}

#[test]
fn unknown_enum_values_are_errors() {
    let p = FrameProgress {
        stream_id: 1,
        epoch: 2,
        seq: 3,
        payload_bytes_filled: 4,
        state: FrameProgressState::Started,
    };
    let mut b = encoded(&p);
    *b.last_mut().unwrap() = 9;
    assert_eq!(
        FrameProgress::decode(&b),
        Err(DecodeError::UnknownEnum {
            field: "state",
            value: 9
        })
    );

    let t = TensorHeader {
        dtype: Dtype::Uint8,
        major_order: MajorOrder::Row,
        ndims: 1,
        pad_align: 0,
        progress_unit: ProgressUnit::None,
        progress_stride_bytes: 0,
        dims: [4, 0, 0, 0, 0, 0, 0, 0],
        strides: [0; 8],
        pad: [0; tensor::PAD_LEN],
    };
    let mut b = encoded(&t);
    b[HEADER_LEN + tensor::DTYPE_OFFSET] = 12; // the unassigned dtype
    assert_eq!(
        TensorHeader::decode(&b),
        Err(DecodeError::UnknownEnum {
            field: "dtype",
            value: 12
        })
    );
    let mut b = encoded(&t);
    b[HEADER_LEN + tensor::MAJOR_ORDER_OFFSET + 1] = 0xFF; // -256
    assert_eq!(
        TensorHeader::decode(&b),
        Err(DecodeError::UnknownEnum {
            field: "major_order",
            value: -255
        })
    );

    let r = ShmAttachRequest {
        correlation_id: 1,
        stream_id: 2,
        client_id: 3,
        role: Role::Producer,
        expected_layout_version: 1,
        publish_mode: None,
        require_hugepages: HugepagesPolicy::Unspecified,
        desired_node_id: None,
    };
    let b = encoded(&r);
    assert_eq!(b[HEADER_LEN + 21], 255, "null publishMode");
    let mut bad = b.clone();
    bad[HEADER_LEN + 21] = 3;
    assert_eq!(
        ShmAttachRequest::decode(&bad),
        Err(DecodeError::UnknownEnum {
            field: "publish_mode",
            value: 3
        })
    );
    let mut bad = b.clone();
    bad[HEADER_LEN + 16] = 0;
    assert_eq!(
        ShmAttachRequest::decode(&bad),
        Err(DecodeError::UnknownEnum {
            field: "role",
            value: 0
        })
    );

    // a Bool other than 0/1
    let c = ConsumerConfig {
        stream_id: 1,
        consumer_id: 2,
        use_shm: true,
        mode: Mode::Stream,
        descriptor_stream_id: 0,
        control_stream_id: 0,
        payload_fallback_uri: Bytes::EMPTY,
        descriptor_channel: Bytes::EMPTY,
        control_channel: Bytes::EMPTY,
    };
    let mut b = encoded(&c);
    b[HEADER_LEN + 8] = 2;
    assert_eq!(
        ConsumerConfig::decode(&b),
        Err(DecodeError::UnknownEnum {
            field: "use_shm",
            value: 2
        })
    );

    assert_eq!(
        ResponseCode::try_from(7),
        Err(DecodeError::UnknownEnum {
            field: "ResponseCode",
            value: 7
        })
    );
    assert_eq!(Dtype::try_from(14), Ok(Dtype::Bit));
}

#[test]
fn var_data_caps() {
    let chunk = |header: Vec<u8>| BridgeFrameChunk {
        stream_id: 1,
        epoch: 1,
        seq: 1,
        trace_id: None,
        chunk_index: 0,
        chunk_count: 1,
        chunk_offset: 0,
        chunk_length: 0,
        payload_length: 0,
        payload_crc32c: 0,
        header_included: true,
        header_bytes: header.into(),
        payload_bytes: Bytes::EMPTY,
    };
    assert!(chunk(vec![0; 256]).encode_to_vec().is_ok());
    assert_eq!(
        chunk(vec![0; 257]).encode_to_vec(),
        Err(EncodeError::TooLong {
            field: "header_bytes",
            len: 257,
            max: 256
        })
    );
    // a peer's 257-byte header is rejected on decode
    let mut b = chunk(vec![0; 256]).encode_to_vec().unwrap();
    let at = HEADER_LEN + 53;
    b[at..at + 4].copy_from_slice(&257u32.to_le_bytes());
    b.insert(at + 4, 0);
    assert_eq!(
        BridgeFrameChunk::decode(&b),
        Err(DecodeError::VarDataTooLong {
            field: "header_bytes",
            len: 257,
            max: 256
        })
    );
    // a length prefix past 2^30 is rejected before looking for the bytes
    let mut b = encoded(&ControlResponse {
        correlation_id: 0,
        code: ResponseCode::Ok,
        error_message: Bytes::EMPTY,
    });
    let at = HEADER_LEN + 12;
    b[at..at + 4].copy_from_slice(&((1u32 << 30) + 1).to_le_bytes());
    assert_eq!(
        ControlResponse::decode(&b),
        Err(DecodeError::VarDataTooLong {
            field: "error_message",
            len: (1 << 30) + 1,
            max: 1 << 30
        })
    );
    assert_eq!(tensorpool_codec::VAR_DATA_MAX_LEN, 1 << 30);
    assert_eq!(ERROR_MESSAGE_MAX_LEN, 1024);
}

#[test]
fn too_many_group_entries() {
    let parents = vec![Parent { trace_id: 1 }; 65_536];
    let t = TraceLinkSet {
        stream_id: 1,
        epoch: 1,
        seq: 1,
        trace_id: 1,
        parents: Group::Slice(&parents),
    };
    let mut buf = vec![0u8; t.encoded_len()];
    assert_eq!(
        t.encode(&mut buf),
        Err(EncodeError::TooMany {
            group: "parents",
            count: 65_536,
            max: 65_535
        })
    );
    let t = TraceLinkSet {
        parents: Group::Slice(&parents[..65_535]),
        ..t
    };
    assert_eq!(t.encode(&mut buf[..t.encoded_len()]), Ok(t.encoded_len()));
    assert_eq!(
        TraceLinkSet::decode(&buf[..t.encoded_len()])
            .unwrap()
            .parents
            .len(),
        65_535
    );
}

/// Group entries sent with a longer blockLength by a newer peer: the extra bytes of each
/// entry are skipped; a shorter one is an error.
#[test]
fn group_entry_extension() {
    let pools = [
        PayloadPool {
            pool_id: 1,
            pool_nslots: 8,
            stride_bytes: 1024,
            region_uri: "a".into(),
        },
        PayloadPool {
            pool_id: 2,
            pool_nslots: 8,
            stride_bytes: 4096,
            region_uri: "bb".into(),
        },
    ];
    let m = ShmPoolAnnounce {
        stream_id: 1,
        producer_id: 2,
        epoch: 3,
        announce_timestamp_ns: 4,
        announce_clock_domain: ClockDomain::RealtimeSynced,
        layout_version: 1,
        header_nslots: 8,
        header_slot_bytes: 256,
        payload_pools: Group::Slice(&pools),
        header_region_uri: "h".into(),
    };
    let b = encoded(&m);
    let group_at = HEADER_LEN + 35;
    assert_eq!(&b[group_at..group_at + 4], &[10, 0, 2, 0]);
    // rebuild with 12-byte entry blocks
    let mut ext = b[..group_at].to_vec();
    ext.extend_from_slice(&[12, 0, 2, 0]);
    let mut pos = group_at + 4;
    for pool in &pools {
        ext.extend_from_slice(&b[pos..pos + 10]);
        ext.extend_from_slice(&[0xEE, 0xEE]);
        let n = 4 + pool.region_uri.len();
        ext.extend_from_slice(&b[pos + 10..pos + 10 + n]);
        pos += 10 + n;
    }
    ext.extend_from_slice(&b[pos..]);
    let d = ShmPoolAnnounce::decode(&ext).unwrap();
    assert_eq!(d, m);
    // re-encoding a decoded group keeps the sender's bytes as they are
    assert_eq!(encoded(&d), ext);

    let mut short = b.clone();
    short[group_at] = 9;
    assert_eq!(
        ShmPoolAnnounce::decode(&short),
        Err(DecodeError::GroupBlockLength {
            group: "payloadPools",
            min: 10,
            found: 9
        })
    );
}

/// Tags in both peers' encodings: blockLength 0 (what the C peer and SBE.jl write, and what
/// we write) and a fixed 4-byte block holding the length.
#[test]
fn discovery_tags_both_block_lengths() {
    let tags = [Bytes::from("red"), Bytes::from("")];
    let m = DiscoveryRequest {
        request_id: 1,
        client_id: 2,
        response_stream_id: 3,
        stream_id: None,
        producer_id: Some(5),
        data_source_id: None,
        tags: Group::Slice(&tags),
        response_channel: "aeron:ipc".into(),
        data_source_name: Bytes::EMPTY,
    };
    let b = encoded(&m);
    let at = HEADER_LEN + 32;
    assert_eq!(&b[at..at + 4], &[0, 0, 2, 0]);
    assert_eq!(&b[at + 4..at + 11], b"\x03\x00\x00\x00red");
    let mut four = b.clone();
    four[at] = 4;
    assert_eq!(DiscoveryRequest::decode(&four).unwrap(), m);
    let mut bad = b.clone();
    bad[at] = 2;
    assert_eq!(
        DiscoveryRequest::decode(&bad),
        Err(DecodeError::GroupBlockLength {
            group: "tags",
            min: 4,
            found: 2
        })
    );
}

#[test]
fn pre_encoded_group_is_reused() {
    let pools = vec![PayloadPool {
        pool_id: 1,
        pool_nslots: 8,
        stride_bytes: 1024,
        region_uri: String::from("p").into(),
    }];
    let encoded_pools = tensorpool_codec::EncodedGroup::new(&pools).unwrap();
    let from_slice = ShmAttachResponse {
        correlation_id: 1,
        code: ResponseCode::Ok,
        lease_id: Some(2),
        lease_expiry_timestamp_ns: None,
        stream_id: Some(3),
        epoch: Some(4),
        layout_version: Some(1),
        header_nslots: Some(8),
        header_slot_bytes: Some(256),
        node_id: None,
        payload_pools: Group::Slice(&pools),
        header_region_uri: "h".into(),
        error_message: Bytes::EMPTY,
    };
    let from_encoded = ShmAttachResponse {
        payload_pools: encoded_pools.group(),
        ..from_slice.clone()
    };
    assert_eq!(from_encoded, from_slice);
    assert_eq!(encoded(&from_encoded), encoded(&from_slice));
    assert_eq!(Group::Slice(&pools).pre_encode().unwrap().len(), 1);
}

#[test]
fn slot_header_embedded_header_is_checked() {
    let t = TensorHeader {
        dtype: Dtype::Float32,
        major_order: MajorOrder::Column,
        ndims: 2,
        pad_align: 0,
        progress_unit: ProgressUnit::Rows,
        progress_stride_bytes: 64,
        dims: [2, 3, 0, 0, 0, 0, 0, 0],
        strides: [0; 8],
        pad: [0; tensor::PAD_LEN],
    };
    let s = SlotHeader {
        seq_commit: 5,
        values_len_bytes: 24,
        payload_slot: 2,
        pool_id: 1,
        payload_offset: 0,
        timestamp_ns: 9,
        meta_version: 1,
        pad: [0; 26],
        tensor: t,
    };
    let mut good = [0u8; slot::LEN];
    s.encode(&mut good).unwrap();
    let cases: [(usize, u8, &str, u64, u64); 5] = [
        (
            slot::HEADER_BYTES_LEN_OFFSET,
            191,
            "SlotHeader.headerBytes length",
            192,
            191,
        ),
        (
            slot::TENSOR_HEADER_OFFSET,
            185,
            "embedded blockLength",
            184,
            185,
        ),
        (
            slot::TENSOR_HEADER_OFFSET + 2,
            53,
            "embedded templateId",
            52,
            53,
        ),
        (
            slot::TENSOR_HEADER_OFFSET + 4,
            0x85,
            "embedded schemaId",
            900,
            901,
        ),
        (slot::TENSOR_HEADER_OFFSET + 6, 2, "embedded version", 1, 2),
    ];
    for (at, value, what, expected, found) in cases {
        let mut bad = good;
        bad[at] = value;
        assert_eq!(
            SlotHeader::decode(&bad),
            Err(DecodeError::Mismatch {
                what,
                expected,
                found
            })
        );
    }
    let mut tail = [0u8; slot::LEN];
    assert_eq!(
        s.encode_after_seq_commit(&mut tail[..247]),
        Err(EncodeError::BufferTooSmall {
            need: 248,
            have: 247
        })
    );
    assert_eq!(s.encode_after_seq_commit(&mut tail), Ok(248));
    assert_eq!(&tail[..248], &good[8..]);
}

#[test]
fn header_and_dispatch() {
    assert!(matches!(
        tensorpool_codec::peek_header(&[1, 2, 3]),
        Err(DecodeError::Truncated {
            need: 8,
            have: 3,
            ..
        })
    ));
    let fd = FrameDescriptor {
        stream_id: 1,
        epoch: 2,
        seq: 3,
        timestamp_ns: None,
        meta_version: None,
        trace_id: Some(7),
    };
    let b = encoded(&fd);
    let h = tensorpool_codec::peek_header(&b).unwrap();
    assert_eq!(
        h,
        MessageHeader {
            block_length: 40,
            template_id: 4,
            schema_id: 900,
            version: 1
        }
    );
    // template ids repeat across schemas: dispatch uses the schema id first
    let mut other = b.clone();
    set_header(&mut other, |h| h.schema_id = 901);
    assert!(matches!(
        AnyMessage::decode(&other),
        Err(DecodeError::BlockLength { .. }) | Err(DecodeError::Truncated { .. })
    ));
    set_header(&mut other, |h| h.schema_id = 905);
    assert_eq!(
        AnyMessage::decode(&other),
        Err(DecodeError::UnknownMessage {
            schema_id: 905,
            template_id: 4
        })
    );
    assert_eq!(format!("{:?}", Bytes::from(&b"\xffa"[..])), "b\"\\xffa\"");
    assert_eq!(format!("{:?}", Bytes::from("uri")), "\"uri\"");
}
