//! The consumer core without Aeron (`ConsumerCore`): announce bytes map real files, a committed
//! frame is accepted through a descriptor, a forged one is dropped, the liveness check unmaps
//! a truncated region. The same handlers as `Consumer` (what the `consumer_core` fuzz target
//! drives).

use tensorpool::consumer::{ConsumerConfig, ConsumerCore, DropCause};
use tensorpool::prelude::*;
use tensorpool_codec::wire::{ClockDomain, FrameDescriptor, PayloadPool, ShmPoolAnnounce};
use tensorpool_codec::{Bytes, Message};
use tensorpool_shm::layout::{CreateOptions, EpochSpec, FileModes, ShmLayout};
use tensorpool_shm::tensor::{Dtype as WDtype, MajorOrder, contiguous};
use tensorpool_shm::{
    ExpectedRegion, FrameMeta, HeaderRing, LAYOUT_VERSION, MapOptions, PayloadPool as Pool,
    PoolGeometry, PoolSet, ReadWrite,
};

fn encode<'m, M: Message<'m>>(m: &M) -> Vec<u8> {
    let mut buf = vec![0u8; m.encoded_len()];
    m.encode(&mut buf).unwrap();
    buf
}

#[test]
fn consumer_core_maps_accepts_and_drops_without_aeron() {
    let tmp = tempfile::Builder::new()
        .prefix("tp-core-")
        .tempdir_in("/dev/shm")
        .unwrap();
    let base = tmp.path().join("tp");
    let layout = ShmLayout::for_user(&base, "t", "default", FileModes::default()).unwrap();
    let (stream, epoch, n, stride) = (10_000u32, 77u64, 4u32, 256u32);
    let now = tensorpool::monotonic_ns();
    let spec = EpochSpec {
        layout_version: LAYOUT_VERSION,
        stream_id: stream,
        epoch,
        header_nslots: n,
        pools: vec![PoolGeometry {
            pool_id: 1,
            stride_bytes: stride,
            nslots: n,
        }],
    };
    let opts = CreateOptions {
        prefault: false,
        pid: 1,
        now_ns: now,
    };
    let created = layout.create_epoch(&spec, opts).unwrap();
    let allowed = tensorpool_shm::AllowedBaseDirs::new([&base]).unwrap();
    let mut ring = HeaderRing::<ReadWrite>::open(
        &created.header_uri,
        &allowed,
        &ExpectedRegion::header_ring(LAYOUT_VERSION, epoch, stream, n),
        MapOptions::default(),
    )
    .unwrap();
    let pool = Pool::<ReadWrite>::open(
        &created.pool_uris[0].1,
        &allowed,
        &ExpectedRegion::payload_pool(LAYOUT_VERSION, epoch, stream, 1, n, stride),
        MapOptions::default(),
    )
    .unwrap();
    let mut pools = PoolSet::new(vec![pool], n).unwrap();

    let mut cfg = ConsumerConfig::new(stream);
    cfg.allowed_base_dirs = vec![base.clone()];
    let mut core = ConsumerCore::new(cfg).unwrap();
    let (h, p) = (
        created.header_uri.to_string(),
        created.pool_uris[0].1.to_string(),
    );
    let pools_msg = [PayloadPool {
        pool_id: 1,
        pool_nslots: n,
        stride_bytes: stride,
        region_uri: Bytes::new(p.as_bytes()),
    }];
    let ann = ShmPoolAnnounce {
        stream_id: stream,
        producer_id: 1,
        epoch,
        announce_timestamp_ns: now,
        announce_clock_domain: ClockDomain::Monotonic,
        layout_version: LAYOUT_VERSION,
        header_nslots: n,
        header_slot_bytes: 256,
        payload_pools: pools_msg.as_slice().into(),
        header_region_uri: Bytes::new(h.as_bytes()),
    };
    core.on_announce(&encode(&ann), now, 0);
    assert_eq!(core.state(), ConsumerState::Mapped { epoch });

    let meta = FrameMeta {
        tensor: contiguous(WDtype::Uint8, MajorOrder::Row, &[16]).unwrap(),
        timestamp_ns: now,
        meta_version: 0,
    };
    ring.write_frame(&mut pools, 0, &meta, 16, |b| b.fill(5))
        .unwrap();
    let fd = |seq| FrameDescriptor {
        stream_id: stream,
        epoch,
        seq,
        timestamp_ns: None,
        meta_version: Some(0),
        trace_id: None,
    };
    let got = std::cell::RefCell::new(Vec::new());
    let mut h = |f: &Frame<'_>| {
        let b = f.bytes().to_vec();
        if f.recheck().is_ok() {
            got.borrow_mut().push((f.seq(), b));
        }
    };
    assert_eq!(core.on_descriptor(&encode(&fd(0)), now, &mut h), 1);
    assert_eq!(core.on_descriptor(&encode(&fd(9)), now, &mut h), 0);
    assert_eq!(*got.borrow(), vec![(0, vec![5u8; 16])]);
    assert_eq!(core.last_seq(), Some(0));
    assert_eq!(
        core.drops()
            .get(DropCause::Slot(tensorpool_shm::DropReason::Stale)),
        1
    );

    // Truncated under the mapping: the next read repairs the fault, liveness unmaps.
    std::fs::OpenOptions::new()
        .write(true)
        .open(created.header_uri.path())
        .unwrap()
        .set_len(0)
        .unwrap();
    assert_eq!(core.on_descriptor(&encode(&fd(1)), now, &mut h), 0);
    core.check_liveness(now);
    assert_eq!(core.state(), ConsumerState::Unmapped);
    assert_eq!(core.counters().unmaps_dead, 1);
    drop((ring, pools));
}
