//! Encoding into a caller's buffer and decoding allocate nothing: a counting global
//! allocator watches the hot-path calls (FrameDescriptor, ShmPoolAnnounce with pools, a
//! header slot, dispatch through AnyMessage).

use tensorpool_codec::wire::*;
use tensorpool_codec::{AnyMessage, EncodedGroup, Group, Message};
use tensorpool_testkit::CountingAllocator;

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn allocations_in(f: impl FnOnce()) -> u64 {
    CountingAllocator::count_thread(f).1.allocations
}

#[test]
fn hot_paths_do_not_allocate() {
    // the counter itself works
    assert!(allocations_in(|| drop(std::hint::black_box(vec![1u8; 10]))) > 0);

    let pools = [
        PayloadPool {
            pool_id: 1,
            pool_nslots: 64,
            stride_bytes: 4096,
            region_uri: "shm:file?path=/dev/shm/a/1.pool".into(),
        },
        PayloadPool {
            pool_id: 2,
            pool_nslots: 64,
            stride_bytes: 65536,
            region_uri: "shm:file?path=/dev/shm/a/2.pool".into(),
        },
    ];
    let pre_encoded = EncodedGroup::new(&pools).expect("pools");
    let tensor = TensorHeader {
        dtype: Dtype::Float32,
        major_order: MajorOrder::Row,
        ndims: 2,
        pad_align: 0,
        progress_unit: ProgressUnit::None,
        progress_stride_bytes: 0,
        dims: [480, 640, 0, 0, 0, 0, 0, 0],
        strides: [0; 8],
        pad: [0; tensor::PAD_LEN],
    };
    let mut buf = [0u8; 512];
    let mut slot_buf = [0u8; slot::LEN];

    let n = allocations_in(|| {
        let fd = FrameDescriptor {
            stream_id: 1,
            epoch: 2,
            seq: 3,
            timestamp_ns: Some(4),
            meta_version: None,
            trace_id: Some(5),
        };
        let len = fd.encode(&mut buf).expect("encode");
        assert_eq!(len, fd.encoded_len());
        assert_eq!(FrameDescriptor::decode(&buf[..len]), Ok(fd));

        for payload_pools in [Group::Slice(&pools[..]), pre_encoded.group()] {
            let announce = ShmPoolAnnounce {
                stream_id: 1,
                producer_id: 2,
                epoch: 3,
                announce_timestamp_ns: 4,
                announce_clock_domain: ClockDomain::Monotonic,
                layout_version: 1,
                header_nslots: 64,
                header_slot_bytes: 256,
                payload_pools,
                header_region_uri: "shm:file?path=/dev/shm/a/header.ring".into(),
            };
            let len = announce.encode(&mut buf).expect("encode");
            let decoded = ShmPoolAnnounce::decode(&buf[..len]).expect("decode");
            assert_eq!(decoded.payload_pools.len(), 2);
            let strides = decoded
                .payload_pools
                .iter()
                .map(|p| p.stride_bytes)
                .fold(0u32, |a, s| a ^ s);
            assert_eq!(strides, 4096 ^ 65536);
            assert_eq!(decoded, announce);
            assert!(matches!(
                AnyMessage::decode(&buf[..len]),
                Ok(AnyMessage::ShmPoolAnnounce(_))
            ));
        }

        let slot_header = SlotHeader {
            seq_commit: 7,
            values_len_bytes: 480 * 640 * 4,
            payload_slot: 3,
            pool_id: 2,
            payload_offset: 0,
            timestamp_ns: 9,
            meta_version: 1,
            pad: [0; 26],
            tensor: tensor.clone(),
        };
        slot_header.encode(&mut slot_buf).expect("slot");
        let mut tail = [0u8; slot::LEN - 8];
        slot_header
            .encode_after_seq_commit(&mut tail)
            .expect("tail");
        assert_eq!(SlotHeader::decode(&slot_buf), Ok(slot_header));
    });
    assert_eq!(n, 0, "allocations on the encode/decode paths");
}
