//! Mapped regions end to end: creation, open sequence, rejections, frames, read-only mapping.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use common::*;
use tensorpool_shm::layout::{CreateOptions, EpochSpec, FileModes, ShmLayout, sanitize_user};
use tensorpool_shm::seqlock;
use tensorpool_shm::superblock::{self, SuperblockError, SuperblockField};
use tensorpool_shm::tensor::{self, Dtype, MajorOrder};
use tensorpool_shm::{
    DropReason, FrameMeta, HeaderRing, LAYOUT_VERSION, MapOptions, PathError, PayloadPool,
    PoolError, PoolGeometry, PoolSet, ReadOnly, ReadWrite, RegionError, RegionUri, WriteError,
};

fn meta(dims: &[i32]) -> FrameMeta {
    FrameMeta {
        tensor: tensor::contiguous(Dtype::Uint8, MajorOrder::Row, dims).unwrap(),
        timestamp_ns: 7,
        meta_version: 3,
    }
}

#[test]
fn w_15_21a_3_canonical_layout_and_uris() {
    let s = create_stream(8, &[256, 4096]);
    let dir = s
        .base
        .join("tensorpool-tester/default/10000")
        .join(EPOCH.to_string());
    assert_eq!(s.created.dir, dir);
    assert_eq!(s.created.header_uri.path(), dir.join("header.ring"));
    assert_eq!(
        s.created.pool_uris[0],
        (1, RegionUri::new(dir.join("1.pool"), None).unwrap())
    );
    assert_eq!(s.created.pool_uris[1].1.path(), dir.join("2.pool"));
    assert_eq!(
        s.layout.header_ring_path(STREAM_ID, EPOCH),
        dir.join("header.ring")
    );
    assert_eq!(
        std::fs::metadata(dir.join("header.ring")).unwrap().len(),
        64 + 8 * 256
    );
    assert_eq!(
        std::fs::metadata(dir.join("2.pool")).unwrap().len(),
        64 + 8 * 4096
    );
    // no temporary file left behind by the atomic creation
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
}

#[test]
fn w_15_21a_3_user_name_sanitized() {
    assert_eq!(sanitize_user("alice"), "alice");
    assert_eq!(sanitize_user("../../etc"), "_._.._etc");
    assert_eq!(sanitize_user(".."), "_.");
    assert_eq!(sanitize_user("."), "_");
    assert_eq!(sanitize_user("a/b\0c\nd"), "a_b_c_d");
    assert_eq!(sanitize_user(""), "_");
    assert_eq!(sanitize_user("DOMAIN\\bob smith"), "DOMAIN_bob_smith");
    let l = ShmLayout::for_user("/dev/shm/tp", "../x", "default", FileModes::default()).unwrap();
    assert_eq!(
        l.epoch_dir(1, 2),
        std::path::Path::new("/dev/shm/tp/tensorpool-_._x/default/1/2")
    );
    assert!(ShmLayout::for_user("/dev/shm/tp", "u", "../ns", FileModes::default()).is_err());
    assert!(ShmLayout::for_user("/dev/shm/tp", "u", "", FileModes::default()).is_err());
    assert!(ShmLayout::for_user("relative", "u", "ns", FileModes::default()).is_err());
    // the effective user resolves to something non-empty
    assert!(!tensorpool_shm::layout::effective_user_name().is_empty());
}

#[test]
fn w_15_21a_6_modes_applied_regardless_of_umask() {
    // SAFETY: umask is process-wide; only this test changes it and it restores it.
    let old = unsafe { libc::umask(0o077) };
    let tmp = shm_tempdir();
    let base = tmp.path().join("tp");
    let modes = FileModes::from_permissions_mode("660").unwrap();
    assert_eq!(
        modes,
        FileModes {
            dir_mode: 0o2770,
            file_mode: 0o660
        }
    );
    let layout = ShmLayout::for_user(&base, "tester", "ns", modes).unwrap();
    let spec = EpochSpec {
        layout_version: LAYOUT_VERSION,
        stream_id: 5,
        epoch: 9,
        header_nslots: 4,
        pools: vec![PoolGeometry {
            pool_id: 1,
            stride_bytes: 64,
            nslots: 4,
        }],
    };
    let created = layout
        .create_epoch(
            &spec,
            CreateOptions {
                prefault: false,
                pid: 1,
                now_ns: 1,
            },
        )
        .unwrap();
    // SAFETY: restore the previous umask.
    unsafe { libc::umask(old) };
    let fmode = std::fs::metadata(created.header_uri.path())
        .unwrap()
        .permissions()
        .mode()
        & 0o7777;
    assert_eq!(fmode, 0o660);
    let dmode = std::fs::metadata(&created.dir)
        .unwrap()
        .permissions()
        .mode()
        & 0o7777;
    assert_eq!(dmode, 0o2770);
    assert_eq!(std::fs::metadata(&created.dir).unwrap().uid(), unsafe {
        libc::geteuid()
    });
}

#[test]
fn dm_17_permissions_mode_parsing() {
    assert_eq!(
        FileModes::default(),
        FileModes {
            dir_mode: 0o700,
            file_mode: 0o600
        }
    );
    assert_eq!(
        FileModes::from_permissions_mode("600").unwrap(),
        FileModes {
            dir_mode: 0o700,
            file_mode: 0o600
        }
    );
    assert_eq!(
        FileModes::from_permissions_mode("0640").unwrap(),
        FileModes {
            dir_mode: 0o2750,
            file_mode: 0o640
        }
    );
    assert_eq!(
        FileModes::from_permissions_mode("0o600").unwrap().file_mode,
        0o600
    );
    for bad in ["", "68", "rw-", "12345", "0x600"] {
        assert!(FileModes::from_permissions_mode(bad).is_err(), "{bad}");
    }
    assert!(
        FileModes::from_permissions_mode("666").is_err(),
        "world-writable refused"
    );
    assert!(
        FileModes::from_permissions_mode("4600").is_err(),
        "setuid refused"
    );
}

#[test]
fn w_15_21a_7_remove_epoch_dir() {
    let s = create_stream(4, &[64]);
    s.layout.remove_epoch(STREAM_ID, EPOCH).unwrap();
    assert!(!s.created.dir.exists());
    s.layout.remove_epoch(STREAM_ID, EPOCH).unwrap(); // idempotent
    // a symlink in place of an epoch dir is refused, not followed
    let target = s.tmp.path().join("victim");
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("keep"), b"x").unwrap();
    std::os::unix::fs::symlink(&target, s.layout.epoch_dir(STREAM_ID, 77)).unwrap();
    assert!(s.layout.remove_epoch(STREAM_ID, 77).is_err());
    assert!(target.join("keep").exists());
}

#[test]
fn w_15_14_atomic_creation_refuses_to_replace() {
    let s = create_stream(4, &[64]);
    let again = s.layout.create_epoch(
        &s.spec,
        CreateOptions {
            prefault: false,
            pid: 1,
            now_ns: 43,
        },
    );
    assert!(
        matches!(again, Err(tensorpool_shm::LayoutError::AlreadyExists(_))),
        "{again:?}"
    );
    // the file-level rename refuses to replace as well
    let e = s.ring_expected();
    let r = tensorpool_shm::layout::create_region_file(
        &s.header_path(),
        &e,
        0o600,
        CreateOptions {
            prefault: false,
            pid: 1,
            now_ns: 44,
        },
    );
    assert!(
        matches!(r, Err(tensorpool_shm::LayoutError::AlreadyExists(_))),
        "{r:?}"
    );
    // the original files are intact and still valid
    let _ring: HeaderRing<ReadOnly> = s.ring();
}

#[test]
fn w_15_21_open_maps_and_reports_superblock() {
    let s = create_stream(8, &[256]);
    let ring: HeaderRing<ReadOnly> = s.ring();
    assert_eq!(ring.nslots(), 8);
    assert_eq!(ring.epoch(), EPOCH);
    let sb = ring.superblock();
    assert_eq!((sb.slot_bytes, sb.stride_bytes, sb.pool_id), (256, 0, 0));
    assert_eq!(sb.pid, u64::from(std::process::id()));
    let pools: PoolSet<ReadOnly> = s.pools();
    assert_eq!(
        pools.pools()[0].superblock().slot_bytes,
        256,
        "pools written with slot_bytes = stride (PITFALLS #9)"
    );
}

#[test]
fn w_7_1_activity_timestamp_refresh_and_staleness() {
    let s = create_stream(4, &[64]);
    let rw: HeaderRing<ReadWrite> = s.ring();
    let ro: HeaderRing<ReadOnly> = s.ring();
    assert_eq!(ro.activity_timestamp_ns(), 42);
    rw.refresh_activity(1_000_000);
    assert_eq!(ro.activity_timestamp_ns(), 1_000_000);
    assert_eq!(
        ro.read_superblock().unwrap().activity_timestamp_ns,
        1_000_000
    );
    assert!(!superblock::is_activity_stale(
        ro.activity_timestamp_ns(),
        3_000_000,
        3_000_000
    ));
    assert!(superblock::is_activity_stale(
        ro.activity_timestamp_ns(),
        4_000_001,
        3_000_000
    ));
}

fn expect_superblock_err(r: Result<HeaderRing<ReadOnly>, RegionError>) -> SuperblockError {
    match r {
        Err(RegionError::Superblock { source, .. }) => source,
        other => panic!("expected a superblock error, got {other:?}"),
    }
}

fn patch_file(path: &std::path::Path, offset: usize, bytes: &[u8]) {
    let mut data = std::fs::read(path).unwrap();
    data[offset..offset + bytes.len()].copy_from_slice(bytes);
    std::fs::write(path, data).unwrap();
}

#[test]
fn w_7_1_region_with_bad_magic_rejected() {
    let s = create_stream(4, &[64]);
    patch_file(&s.header_path(), 0, b"XXXXXXXX");
    let e = expect_superblock_err(HeaderRing::open(
        &s.created.header_uri,
        &s.allowed,
        &s.ring_expected(),
        MapOptions::default(),
    ));
    assert!(matches!(e, SuperblockError::BadMagic { .. }));
    assert!(
        maps_of(&s.header_path()).is_empty(),
        "nothing stays mapped after a failed open"
    );
}

#[test]
fn w_15_1_region_with_wrong_layout_version_rejected() {
    let s = create_stream(4, &[64]);
    patch_file(&s.header_path(), 8, &2u32.to_le_bytes());
    let e = expect_superblock_err(HeaderRing::open(
        &s.created.header_uri,
        &s.allowed,
        &s.ring_expected(),
        MapOptions::default(),
    ));
    assert_eq!(
        e,
        SuperblockError::Mismatch {
            field: SuperblockField::LayoutVersion,
            expected: 1,
            found: 2
        }
    );
}

#[test]
fn w_15_1_region_not_matching_announce_rejected() {
    let s = create_stream(4, &[64]);
    let mut wrong = s.ring_expected();
    wrong.nslots = 8;
    let e = expect_superblock_err(HeaderRing::open(
        &s.created.header_uri,
        &s.allowed,
        &wrong,
        MapOptions::default(),
    ));
    assert_eq!(
        e,
        SuperblockError::Mismatch {
            field: SuperblockField::Nslots,
            expected: 8,
            found: 4
        }
    );
    let mut wrong = s.ring_expected();
    wrong.epoch += 1;
    let e = expect_superblock_err(HeaderRing::open(
        &s.created.header_uri,
        &s.allowed,
        &wrong,
        MapOptions::default(),
    ));
    assert!(matches!(
        e,
        SuperblockError::Mismatch {
            field: SuperblockField::Epoch,
            ..
        }
    ));
    // the pool file announced as the header ring
    let e = expect_superblock_err(HeaderRing::open(
        &s.created.pool_uris[0].1,
        &s.allowed,
        &s.ring_expected(),
        MapOptions::default(),
    ));
    assert!(matches!(
        e,
        SuperblockError::Mismatch {
            field: SuperblockField::RegionType,
            ..
        }
    ));
    let mut wrong = s.pool_expected(0);
    wrong.stride_bytes = 128;
    let r = PayloadPool::<ReadOnly>::open(
        &s.created.pool_uris[0].1,
        &s.allowed,
        &wrong,
        MapOptions::default(),
    );
    assert!(matches!(
        r,
        Err(RegionError::Superblock {
            source: SuperblockError::Mismatch {
                field: SuperblockField::StrideBytes,
                ..
            },
            ..
        })
    ));
}

#[test]
fn w_7_1_region_with_wrong_sizes_rejected() {
    let s = create_stream(4, &[64]);
    patch_file(&s.header_path(), 32, &128u32.to_le_bytes()); // slot_bytes
    let e = expect_superblock_err(HeaderRing::open(
        &s.created.header_uri,
        &s.allowed,
        &s.ring_expected(),
        MapOptions::default(),
    ));
    assert!(matches!(
        e,
        SuperblockError::BadSize {
            field: SuperblockField::SlotBytes,
            found: 128,
            ..
        }
    ));
}

#[test]
fn w_6_file_too_short_rejected() {
    let s = create_stream(4, &[64]);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(s.header_path())
        .unwrap();
    f.set_len(64 + 3 * 256).unwrap();
    let r = HeaderRing::<ReadOnly>::open(
        &s.created.header_uri,
        &s.allowed,
        &s.ring_expected(),
        MapOptions::default(),
    );
    assert!(
        matches!(
            r,
            Err(RegionError::FileTooShort {
                found: 832,
                required: 1088,
                ..
            })
        ),
        "{r:?}"
    );
    f.set_len(10).unwrap();
    let r = HeaderRing::<ReadOnly>::open(
        &s.created.header_uri,
        &s.allowed,
        &s.ring_expected(),
        MapOptions::default(),
    );
    assert!(
        matches!(
            r,
            Err(RegionError::FileTooShort {
                found: 10,
                required: 64,
                ..
            })
        ),
        "{r:?}"
    );
    assert!(maps_of(&s.header_path()).is_empty());
}

#[test]
fn w_15_22_require_hugepages_on_tmpfs_rejected() {
    let s = create_stream(4, &[64]);
    let uri = RegionUri::new(s.header_path(), Some(true)).unwrap();
    let r =
        HeaderRing::<ReadOnly>::open(&uri, &s.allowed, &s.ring_expected(), MapOptions::default());
    assert!(
        matches!(
            r,
            Err(RegionError::Path(PathError::NotHugepageBacked { .. }))
        ),
        "{r:?}"
    );
}

#[test]
fn w_15_21a_5_region_outside_base_rejected_before_mapping() {
    let s = create_stream(4, &[64]);
    let other = tensorpool_shm::AllowedBaseDirs::new([s
        .tmp
        .path()
        .join("tp/tensorpool-tester/default/999")]);
    assert!(other.is_err(), "base dir must exist");
    std::fs::create_dir(s.tmp.path().join("elsewhere")).unwrap();
    let elsewhere = tensorpool_shm::AllowedBaseDirs::new([s.tmp.path().join("elsewhere")]).unwrap();
    let r = HeaderRing::<ReadOnly>::open(
        &s.created.header_uri,
        &elsewhere,
        &s.ring_expected(),
        MapOptions::default(),
    );
    assert!(matches!(
        r,
        Err(RegionError::Path(PathError::OutsideBaseDirs { .. }))
    ));
}

#[test]
fn w_15_5_pool_nslots_must_equal_header_nslots() {
    let a = create_stream(4, &[64]);
    let b = create_stream(8, &[64]);
    let pool = PayloadPool::<ReadOnly>::open(
        &b.created.pool_uris[0].1,
        &b.allowed,
        &b.pool_expected(0),
        MapOptions::default(),
    )
    .unwrap();
    assert_eq!(
        PoolSet::new(vec![pool], a.spec.header_nslots).unwrap_err(),
        PoolError::NslotsMismatch {
            pool_id: 1,
            pool_nslots: 8,
            header_nslots: 4
        }
    );
}

#[test]
fn w_15_21_consumer_mapping_is_read_only() {
    let s = create_stream(4, &[64]);
    let ring: HeaderRing<ReadOnly> = s.ring();
    let maps = maps_of(&s.header_path());
    assert_eq!(maps.len(), 1, "{maps:?}");
    let fields: Vec<&str> = maps[0].split_whitespace().collect();
    assert_eq!(fields[1], "r--s", "PROT_READ, shared");
    let (start, end) = fields[0].split_once('-').unwrap();
    let start = usize::from_str_radix(start, 16).unwrap();
    let end = usize::from_str_radix(end, 16).unwrap();
    // The descriptor was opened O_RDONLY: not even mprotect can make the mapping writable.
    // SAFETY: the range is a live mapping of ours; the call is expected to fail.
    let rc = unsafe {
        libc::mprotect(
            start as *mut libc::c_void,
            end - start,
            libc::PROT_READ | libc::PROT_WRITE,
        )
    };
    assert_eq!(rc, -1);
    assert_eq!(
        std::io::Error::last_os_error().raw_os_error(),
        Some(libc::EACCES)
    );
    drop(ring);
    assert!(maps_of(&s.header_path()).is_empty(), "unmapped on drop");
}

#[test]
fn dm_17_mlock_and_prefault_options() {
    let s = create_stream(4, &[64]);
    let opts = MapOptions {
        prefault: true,
        mlock: true,
    };
    match HeaderRing::<ReadOnly>::open(&s.created.header_uri, &s.allowed, &s.ring_expected(), opts)
    {
        Ok(r) => assert_eq!(r.nslots(), 4),
        // An mlock failure (RLIMIT_MEMLOCK) must be reported as an error, never ignored.
        Err(RegionError::Map { source, .. }) => {
            assert!(source.to_string().contains("mlock"), "{source}")
        }
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn w_8_3_write_then_read_frames() {
    let s = create_stream(8, &[256, 4096]);
    let mut wring: HeaderRing<ReadWrite> = s.ring();
    let mut wpools: PoolSet<ReadWrite> = s.pools();
    let rring: HeaderRing<ReadOnly> = s.ring();
    let rpools: PoolSet<ReadOnly> = s.pools();

    let w = wring
        .write_frame(&mut wpools, 3, &meta(&[100]), 100, |p| p.fill(0xAB))
        .unwrap();
    assert_eq!((w.header_index, w.pool_id), (3, 1));
    let w = wring
        .write_frame(&mut wpools, 12, &meta(&[1000]), 1000, |p| p.fill(0xCD))
        .unwrap();
    assert_eq!((w.header_index, w.pool_id), (4, 2));

    let f = rring.read_frame(&rpools, 3).unwrap();
    assert_eq!(f.seq(), 3);
    assert_eq!(f.header().timestamp_ns, 7);
    assert_eq!(f.header().meta_version, 3);
    assert_eq!(f.payload().len(), 100);
    assert!(f.payload().iter().all(|&b| b == 0xAB));
    assert_eq!(f.recheck(), Ok(()));
    let mut out = [0u8; 2000];
    assert_eq!(
        rring
            .read_frame(&rpools, 12)
            .unwrap()
            .copy_payload_to(&mut out),
        Some(Ok(1000))
    );
    assert!(out[..1000].iter().all(|&b| b == 0xCD));

    // slot 3 overwritten by seq 11: the view taken before is now late, the old seq overwritten
    let view = rring.read_frame(&rpools, 3).unwrap();
    wring
        .write_frame(&mut wpools, 11, &meta(&[10]), 10, |p| p.fill(1))
        .unwrap();
    assert_eq!(view.recheck(), Err(DropReason::Late));
    assert_eq!(
        rring.read_frame(&rpools, 3).unwrap_err(),
        DropReason::Overwritten
    );
    assert_eq!(
        rring.read_frame(&rpools, 19).unwrap_err(),
        DropReason::Stale
    );
    assert_eq!(
        rring.read_frame(&rpools, 5).unwrap_err(),
        DropReason::Stale,
        "never-written slot"
    );
    // a slot marked in progress (producer between begin and commit) is not committed
    tensorpool_shm::seqlock::begin(wring.seq_word(6), 14);
    assert_eq!(
        rring.read_frame(&rpools, 14).unwrap_err(),
        DropReason::NotCommitted
    );
}

#[test]
fn w_8_3_two_phase_write_is_invisible_until_commit_and_abort_is_clean() {
    let s = create_stream(8, &[256, 4096]);
    let mut wring: HeaderRing<ReadWrite> = s.ring();
    let mut wpools: PoolSet<ReadWrite> = s.pools();
    let rring: HeaderRing<ReadOnly> = s.ring();
    let rpools: PoolSet<ReadOnly> = s.pools();

    // begin: in progress while the payload is filled in place (e.g. progressive fills)
    let mut writer = wring
        .begin_frame(&mut wpools, 2, &meta(&[100]), 100)
        .unwrap();
    assert_eq!((writer.seq(), writer.target().header_index), (2, 2));
    writer.payload_mut()[..50].fill(0x11);
    assert_eq!(
        rring.read_frame(&rpools, 2).unwrap_err(),
        DropReason::NotCommitted
    );
    writer.payload_mut()[50..].fill(0x22);
    assert_eq!(
        rring.read_frame(&rpools, 2).unwrap_err(),
        DropReason::NotCommitted
    );
    let written = writer.commit();
    assert_eq!((written.header_index, written.pool_id), (2, 1));
    let view = rring.read_frame(&rpools, 2).unwrap();
    assert!(view.payload()[..50].iter().all(|&b| b == 0x11));
    assert!(view.payload()[50..].iter().all(|&b| b == 0x22));
    assert_eq!(view.recheck(), Ok(()));

    // abort (drop without commit): the slot stays in progress, the ring stays usable
    let _aborted = wring.begin_frame(&mut wpools, 3, &meta(&[10]), 10).unwrap();
    assert_eq!(
        rring.read_frame(&rpools, 3).unwrap_err(),
        DropReason::NotCommitted
    );
    wring
        .write_frame(&mut wpools, 11, &meta(&[10]), 10, |p| p.fill(7))
        .unwrap();
    assert!(
        rring
            .read_frame(&rpools, 11)
            .unwrap()
            .payload()
            .iter()
            .all(|&b| b == 7)
    );

    // a rejected frame touches nothing
    assert!(matches!(
        wring.begin_frame(&mut wpools, 4, &meta(&[10_000]), 10_000),
        Err(tensorpool_shm::WriteError::NoPoolFits { .. })
    ));
    assert_eq!(rring.read_frame(&rpools, 4).unwrap_err(), DropReason::Stale);
}

#[test]
fn w_10_2_2_header_written_in_progress_for_progress_readers() {
    let s = create_stream(8, &[256]);
    let mut wring: HeaderRing<ReadWrite> = s.ring();
    let mut wpools: PoolSet<ReadWrite> = s.pools();
    let rring: HeaderRing<ReadOnly> = s.ring();
    let rpools: PoolSet<ReadOnly> = s.pools();
    let mut writer = wring
        .begin_frame(&mut wpools, 5, &meta(&[100]), 100)
        .unwrap();
    assert_eq!(writer.len(), 100);
    // a progress reader sees a valid header for seq 5 while the slot is still in progress
    let index = rring.index_of(5);
    let word = rring.seq_commit(index);
    assert_eq!(
        (seqlock::sequence(word), seqlock::is_committed(word)),
        (5, false)
    );
    let mut bytes = [0u8; tensorpool_shm::HEADER_SLOT_BYTES];
    rring.copy_slot(index, &mut bytes);
    let header = tensorpool_shm::slot::decode_slot(&bytes).unwrap();
    tensorpool_shm::slot::validate_slot(&header, index, rpools.geometry()).unwrap();
    assert_eq!((header.values_len_bytes, header.timestamp_ns), (100, 7));
    assert_eq!(
        rring.read_frame(&rpools, 5).unwrap_err(),
        DropReason::NotCommitted
    );
    // a timestamp set after the early write is what the commit publishes
    writer.set_timestamp_ns(99);
    writer.payload_mut().fill(3);
    writer.commit();
    let view = rring.read_frame(&rpools, 5).unwrap();
    assert_eq!(view.header().timestamp_ns, 99);
    assert_eq!(view.recheck(), Ok(()));
}

#[test]
fn w_9_write_drops_when_no_pool_fits() {
    let s = create_stream(4, &[64, 128]);
    let mut ring: HeaderRing<ReadWrite> = s.ring();
    let mut pools: PoolSet<ReadWrite> = s.pools();
    let r = ring.write_frame(&mut pools, 0, &meta(&[129]), 129, |_| {
        panic!("must not be called")
    });
    assert_eq!(
        r,
        Err(WriteError::NoPoolFits {
            values_len_bytes: 129,
            largest_stride: 128
        })
    );
    assert_eq!(ring.seq_commit(0), 0, "nothing written");
    // an invalid header is refused before touching the slot
    let bad = FrameMeta {
        tensor: tensor::contiguous(Dtype::Float64, MajorOrder::Row, &[10]).unwrap(),
        timestamp_ns: 0,
        meta_version: 0,
    };
    let r = ring.write_frame(&mut pools, 0, &bad, 16, |_| panic!("must not be called"));
    assert_eq!(
        r,
        Err(WriteError::InvalidHeader(
            DropReason::ExtentExceedsValuesLen
        ))
    );
    assert_eq!(
        ring.write_frame(&mut pools, u64::MAX, &meta(&[1]), 1, |_| {}),
        Err(WriteError::SeqOutOfRange(u64::MAX))
    );
}

#[test]
fn w_8_2_empty_payload_frame() {
    let s = create_stream(4, &[64]);
    let mut ring: HeaderRing<ReadWrite> = s.ring();
    let mut pools: PoolSet<ReadWrite> = s.pools();
    ring.write_frame(&mut pools, 2, &meta(&[0]), 0, |p| assert!(p.is_empty()))
        .unwrap();
    let ro: HeaderRing<ReadOnly> = s.ring();
    let rp: PoolSet<ReadOnly> = s.pools();
    let f = ro.read_frame(&rp, 2).unwrap();
    assert!(f.payload().is_empty());
    assert_eq!(f.recheck(), Ok(()));
}

#[test]
fn w_8_3_corrupted_slot_rejected_by_reader() {
    let s = create_stream(4, &[64]);
    let mut ring: HeaderRing<ReadWrite> = s.ring();
    let mut pools: PoolSet<ReadWrite> = s.pools();
    ring.write_frame(&mut pools, 1, &meta(&[8]), 8, |_| {})
        .unwrap();
    // payload_offset (slot byte 18) set non-zero behind the writer's back
    let slot1 = 64 + 256;
    patch_file(&s.header_path(), slot1 + 18, &1u32.to_le_bytes());
    let ro: HeaderRing<ReadOnly> = s.ring();
    let rp: PoolSet<ReadOnly> = s.pools();
    assert_eq!(
        ro.read_frame(&rp, 1).unwrap_err(),
        DropReason::PayloadOffsetNonZero
    );
}

#[test]
fn w_6_file_longer_than_the_region_rejected() {
    let s = create_stream(4, &[64]);
    let exact = 64 + 4 * 256;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(s.header_path())
        .unwrap();
    f.set_len(exact + 1).unwrap();
    let r = s.try_ring();
    assert!(
        matches!(r, Err(RegionError::FileLength { found, expected, .. }) if found == exact + 1 && expected == exact),
        "{r:?}"
    );
    assert!(maps_of(&s.header_path()).is_empty(), "nothing mapped");
    // The pool too: exactly 64 + nslots * stride.
    let pool = s.created.pool_uris[0].1.to_path_buf();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&pool)
        .unwrap()
        .set_len(64 + 4 * 64 + 4096)
        .unwrap();
    let r = PayloadPool::<ReadOnly>::open(
        &s.created.pool_uris[0].1,
        &s.allowed,
        &s.pool_expected(0),
        MapOptions::default(),
    );
    assert!(matches!(r, Err(RegionError::FileLength { .. })), "{r:?}");
    f.set_len(exact).unwrap();
    assert!(s.try_ring().is_ok());
}

#[test]
fn w_15_21a_5_hard_linked_region_rejected() {
    let s = create_stream(4, &[64]);
    let other = s.tmp.path().join("second-name");
    std::fs::hard_link(s.header_path(), &other).unwrap();
    let r = s.try_ring();
    assert!(
        matches!(
            r,
            Err(RegionError::Path(PathError::HardLinked { nlink: 2, .. }))
        ),
        "{r:?}"
    );
    assert!(maps_of(&s.header_path()).is_empty(), "nothing mapped");
    std::fs::remove_file(&other).unwrap();
    assert!(s.try_ring().is_ok());
}

#[test]
fn w_15_14_stale_activity_and_size_cap_refused_before_mapping() {
    use tensorpool_shm::OpenChecks;
    let s = create_stream(4, &[64]);
    // create_stream stamps activity 42 ns.
    let open = |checks| {
        HeaderRing::<ReadOnly>::open_checked(
            &s.created.header_uri,
            &s.allowed,
            &s.ring_expected(),
            MapOptions::default(),
            checks,
        )
    };
    let stale = OpenChecks {
        activity: Some((5_000_000_042, 1_000_000_000)),
        max_len: None,
    };
    let r = open(stale);
    assert!(
        matches!(
            r,
            Err(RegionError::Stale {
                activity_ns: 42,
                ..
            })
        ),
        "{r:?}"
    );
    assert!(maps_of(&s.header_path()).is_empty(), "nothing mapped");
    let fresh = OpenChecks {
        activity: Some((1_000_000_000, 1_000_000_000)),
        max_len: None,
    };
    assert!(open(fresh).is_ok());
    let capped = OpenChecks {
        activity: None,
        max_len: Some(64 + 4 * 256 - 1),
    };
    let r = open(capped);
    assert!(
        matches!(
            r,
            Err(RegionError::TooLarge {
                len: 1088,
                cap: 1087,
                ..
            })
        ),
        "{r:?}"
    );
    assert!(maps_of(&s.header_path()).is_empty(), "nothing mapped");
}
