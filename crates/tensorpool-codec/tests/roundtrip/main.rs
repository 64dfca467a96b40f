//! Property tests over every message: round trips (nulls, empty and long var data, 0..N
//! group entries), exact lengths, truncation at every length, extension bytes from a newer
//! sender, version and id checks. Plus targeted tests for unknown enum values and the
//! header-less SHM structures.

mod cases;
mod strategies;

use proptest::collection::vec;
use proptest::prelude::*;
use strategies::*;
use tensorpool_codec::admin::*;
use tensorpool_codec::bridge::*;
use tensorpool_codec::discovery::*;
use tensorpool_codec::driver::*;
use tensorpool_codec::merge::*;
use tensorpool_codec::tracelink::*;
use tensorpool_codec::wire::*;
use tensorpool_codec::{AnyMessage, DecodeError, EncodeError, HEADER_LEN, Message, MessageHeader};

// ---------------------------------------------------------------- the properties

pub(crate) fn set_header(buf: &mut [u8], f: impl FnOnce(&mut MessageHeader)) {
    let mut h = MessageHeader::decode(buf).unwrap();
    f(&mut h);
    h.encode(buf).unwrap();
}

/// Every property for one message value. A macro, not a generic function, so that values
/// decoded from local buffers compare with the `'static` original.
macro_rules! check {
    ($m:expr, $ty:ident) => {{
        let m = $m;
        let len = m.encoded_len();
        let mut buf = vec![0u8; len];
        prop_assert_eq!(m.encode(&mut buf), Ok(len));
        prop_assert_eq!(
            m.encode(&mut vec![0u8; len - 1]),
            Err(EncodeError::BufferTooSmall {
                need: len,
                have: len - 1
            })
        );
        prop_assert_eq!(&$ty::decode(&buf).unwrap(), &m);
        let any = AnyMessage::decode(&buf).unwrap();
        prop_assert_eq!(any.name(), $ty::NAME);
        prop_assert_eq!(any.encoded_len(), len);

        // truncated anywhere: an error, never a panic
        for cut in 0..len {
            prop_assert!($ty::decode(&buf[..cut]).is_err(), "cut at {}", cut);
            prop_assert!(AnyMessage::decode(&buf[..cut]).is_err());
        }

        // a newer sender's longer fixed block: the extension is skipped
        let block_end = HEADER_LEN + usize::from($ty::BLOCK_LENGTH);
        let mut ext = buf[..block_end].to_vec();
        ext.extend_from_slice(&[0xA5; 7]);
        ext.extend_from_slice(&buf[block_end..]);
        set_header(&mut ext, |h| h.block_length += 7);
        prop_assert_eq!(&$ty::decode(&ext).unwrap(), &m);

        // a shorter fixed block is an error
        if $ty::BLOCK_LENGTH > 0 {
            let mut short = buf.clone();
            set_header(&mut short, |h| h.block_length -= 1);
            let rejected = matches!($ty::decode(&short), Err(DecodeError::BlockLength { .. }));
            prop_assert!(rejected);
        }

        // a newer schema version: rejected by decode, read by decode_any_version
        let mut newer = buf.clone();
        set_header(&mut newer, |h| h.version += 1);
        prop_assert_eq!(
            $ty::decode(&newer).unwrap_err(),
            DecodeError::Version { max: 1, found: 2 }
        );
        prop_assert!(AnyMessage::decode(&newer).is_err());
        prop_assert_eq!(&$ty::decode_any_version(&newer).unwrap(), &m);
        prop_assert!(AnyMessage::decode_any_version(&newer).is_ok());

        // other schema, other template
        let mut other = buf.clone();
        set_header(&mut other, |h| h.schema_id = 999);
        prop_assert_eq!(
            $ty::decode(&other).unwrap_err(),
            DecodeError::SchemaId {
                expected: $ty::SCHEMA_ID,
                found: 999
            }
        );
        let mut other = buf.clone();
        set_header(&mut other, |h| h.template_id = 999);
        prop_assert_eq!(
            $ty::decode(&other).unwrap_err(),
            DecodeError::TemplateId {
                expected: $ty::TEMPLATE_ID,
                found: 999
            }
        );
    }};
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test] fn rt_shm_pool_announce(m in shm_pool_announce()) { check!(m, ShmPoolAnnounce) }
    #[test] fn rt_consumer_hello(m in consumer_hello()) { check!(m, ConsumerHello) }
    #[test] fn rt_consumer_config(m in consumer_config()) { check!(m, ConsumerConfig) }
    #[test] fn rt_frame_descriptor(m in frame_descriptor()) { check!(m, FrameDescriptor) }
    #[test] fn rt_frame_progress(m in frame_progress()) { check!(m, FrameProgress) }
    #[test] fn rt_qos_consumer(m in qos_consumer()) { check!(m, QosConsumer) }
    #[test] fn rt_qos_producer(m in qos_producer()) { check!(m, QosProducer) }
    #[test] fn rt_tensor_header(m in tensor_header()) { check!(m, TensorHeader) }
    #[test] fn rt_data_source_announce(m in data_source_announce()) { check!(m, DataSourceAnnounce) }
    #[test] fn rt_data_source_meta(m in data_source_meta()) { check!(m, DataSourceMeta) }
    #[test] fn rt_meta_blob_announce(m in meta_blob_announce()) { check!(m, MetaBlobAnnounce) }
    #[test] fn rt_meta_blob_chunk(m in meta_blob_chunk()) { check!(m, MetaBlobChunk) }
    #[test] fn rt_meta_blob_complete(m in meta_blob_complete()) { check!(m, MetaBlobComplete) }
    #[test] fn rt_control_response(m in control_response()) { check!(m, ControlResponse) }
    #[test] fn rt_attach_request(m in attach_request()) { check!(m, ShmAttachRequest) }
    #[test] fn rt_attach_response(m in attach_response()) { check!(m, ShmAttachResponse) }
    #[test] fn rt_detach_request(m in detach_request()) { check!(m, ShmDetachRequest) }
    #[test] fn rt_detach_response(m in detach_response()) { check!(m, ShmDetachResponse) }
    #[test] fn rt_keepalive(m in keepalive()) { check!(m, ShmLeaseKeepalive) }
    #[test] fn rt_driver_shutdown(m in driver_shutdown()) { check!(m, ShmDriverShutdown) }
    #[test] fn rt_lease_revoked(m in lease_revoked()) { check!(m, ShmLeaseRevoked) }
    #[test] fn rt_shutdown_request(m in shutdown_request()) { check!(m, ShmDriverShutdownRequest) }
    #[test] fn rt_bridge_chunk(m in bridge_chunk()) { check!(m, BridgeFrameChunk) }
    #[test] fn rt_seq_merge_announce(m in seq_merge_announce()) { check!(m, SequenceMergeMapAnnounce) }
    #[test] fn rt_ts_merge_announce(m in ts_merge_announce()) { check!(m, TimestampMergeMapAnnounce) }
    #[test] fn rt_trace_link_set(m in trace_link_set()) { check!(m, TraceLinkSet) }
    #[test] fn rt_discovery_request(m in discovery_request()) { check!(m, DiscoveryRequest) }
    #[test] fn rt_discovery_response(m in discovery_response()) { check!(m, DiscoveryResponse) }
    #[test] fn rt_status_response(m in status_response()) { check!(m, DriverStatusResponse) }
    #[test] fn rt_leases_response(m in leases_response()) { check!(m, DriverLeasesResponse) }
    #[test] fn rt_streams_response(m in streams_response()) { check!(m, DriverStreamsResponse) }

    #[test]
    fn rt_admin_requests(correlation_id in any::<i64>()) {
        check!(DriverStatusRequest { correlation_id }, DriverStatusRequest);
        check!(DriverLeasesRequest { correlation_id }, DriverLeasesRequest);
        check!(DriverStreamsRequest { correlation_id }, DriverStreamsRequest);
    }

    #[test]
    fn rt_merge_requests(out_stream_id in any::<u32>(), epoch in any::<u64>()) {
        check!(SequenceMergeMapRequest { out_stream_id, epoch }, SequenceMergeMapRequest);
        check!(TimestampMergeMapRequest { out_stream_id, epoch }, TimestampMergeMapRequest);
    }

    /// Arbitrary bytes, framed or forced as every message type: errors, never panics; any
    /// success re-encodes and decodes to the same value.
    #[test]
    fn arbitrary_bytes_never_panic(body in vec(any::<u8>(), 0..300), bl in 0u16..120, version in 0u16..3) {
        for &(schema_id, template_id, _) in AnyMessage::KINDS {
            if let Ok(m) = AnyMessage::decode_body(schema_id, template_id, &body, bl, version) {
                let mut out = vec![0u8; m.encoded_len()];
                let n = m.encode(&mut out).unwrap();
                prop_assert_eq!(AnyMessage::decode(&out[..n]).unwrap(), m);
            }
        }
        let _ = AnyMessage::decode(&body);
        let _ = SlotHeader::decode(&body);
        let _ = ShmRegionSuperblock::decode(&body);
    }

    #[test]
    fn rt_superblock(fields in any::<([u32; 5], [u64; 5], u16)>(), region_type in pick(RegionType::ALL)) {
        let ([layout_version, stream_id, nslots, slot_bytes, stride_bytes], [magic, epoch, pid, start, activity], pool_id) = fields;
        let s = ShmRegionSuperblock {
            magic, layout_version, epoch, stream_id, region_type, pool_id, nslots, slot_bytes, stride_bytes, pid,
            start_timestamp_ns: start, activity_timestamp_ns: activity,
        };
        let mut buf = [0u8; superblock::LEN];
        prop_assert_eq!(s.encode(&mut buf), Ok(64));
        prop_assert_eq!(ShmRegionSuperblock::decode(&buf), Ok(s.clone()));
        for cut in 0..64 {
            prop_assert!(ShmRegionSuperblock::decode(&buf[..cut]).is_err());
        }
        prop_assert!(s.encode(&mut [0u8; 63]).is_err());
    }

    #[test]
    fn rt_slot_header(t in tensor_header(), f in any::<(u64, [u32; 4], u16, u64, [u8; 26])>()) {
        let (seq_commit, [values_len_bytes, payload_slot, payload_offset, meta_version], pool_id, timestamp_ns, pad) = f;
        let s = SlotHeader {
            seq_commit, values_len_bytes, payload_slot, pool_id, payload_offset, timestamp_ns, meta_version, pad, tensor: t,
        };
        let mut buf = [0u8; slot::LEN];
        prop_assert_eq!(s.encode(&mut buf), Ok(slot::LEN));
        prop_assert_eq!(SlotHeader::decode(&buf), Ok(s.clone()));
        prop_assert_eq!(&buf[slot::TENSOR_HEADER_OFFSET..], &s.tensor.encode_to_vec().unwrap()[..]);
        for cut in 0..slot::LEN {
            prop_assert!(SlotHeader::decode(&buf[..cut]).is_err());
        }
    }
}
