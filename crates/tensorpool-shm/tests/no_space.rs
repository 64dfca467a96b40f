//! A full file system is an error, not a crash (brief; issue 21 item 1): every region file's
//! blocks are reserved with `posix_fallocate` before it is mapped, so an epoch that does not
//! fit fails with `LayoutError::NoSpace` (bytes needed, free, missing, the mount) and leaves
//! nothing behind, with or without prefaulting; nothing is touched through an unbacked page
//! (which would be a SIGBUS on tmpfs). Runs on a small tmpfs mounted by the test (root).

use tensorpool_shm::layout::{CreateOptions, EpochSpec, FileModes, ShmLayout};
use tensorpool_shm::{LayoutError, PoolGeometry};
use tensorpool_testkit::SmallTmpfs;

const MIB: u64 = 1 << 20;

fn spec(epoch: u64, pool_bytes: u32) -> EpochSpec {
    EpochSpec {
        layout_version: 1,
        stream_id: 10_000,
        epoch,
        header_nslots: 8,
        pools: vec![PoolGeometry {
            pool_id: 1,
            stride_bytes: pool_bytes / 8,
            nslots: 8,
        }],
    }
}

fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

#[test]
fn an_epoch_larger_than_the_free_space_is_no_space_and_leaves_nothing() {
    let fs = match SmallTmpfs::mount(4 * MIB) {
        Ok(fs) => fs,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let layout = ShmLayout::for_user(fs.path(), "tester", "default", FileModes::default()).unwrap();
    for (i, prefault) in [false, true].into_iter().enumerate() {
        let opts = CreateOptions {
            prefault,
            pid: u64::from(std::process::id()),
            now_ns: 1,
        };
        let epoch = 10 + i as u64;
        let err = layout
            .create_epoch(&spec(epoch, 8 * MIB as u32), opts)
            .expect_err("8 MiB cannot fit a 4 MiB tmpfs");
        let LayoutError::NoSpace {
            stream_id,
            epoch: e,
            needed,
            available,
            ref mount,
        } = err
        else {
            panic!("prefault={prefault}: expected NoSpace, got {err}");
        };
        assert_eq!((stream_id, e), (10_000, epoch));
        assert!(needed >= 8 * MIB, "{needed}");
        assert!(available <= 4 * MIB, "{available}");
        assert!(mount.contains("tmpfs"), "{mount}");
        let text = err.to_string();
        assert!(
            text.contains("bytes missing") && text.contains(&fs.path().display().to_string()),
            "{text}"
        );
        assert!(
            files_under(fs.path()).is_empty(),
            "prefault={prefault}: nothing left: {:?}",
            files_under(fs.path())
        );
        assert!(!layout.epoch_dir(10_000, epoch).exists());
    }
    // the file system is not left unusable: an epoch that fits is created
    let ok = layout.create_epoch(
        &spec(20, MIB as u32),
        CreateOptions {
            prefault: true,
            pid: u64::from(std::process::id()),
            now_ns: 1,
        },
    );
    assert!(ok.is_ok(), "{ok:?}");
}

#[test]
fn the_space_of_a_created_epoch_is_reserved_not_sparse() {
    let fs = match SmallTmpfs::mount(16 * MIB) {
        Ok(fs) => fs,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let layout = ShmLayout::for_user(fs.path(), "tester", "default", FileModes::default()).unwrap();
    let before = tensorpool_shm::paths::available_bytes(fs.path()).unwrap();
    layout
        .create_epoch(
            &spec(1, 4 * MIB as u32),
            CreateOptions {
                prefault: false,
                pid: u64::from(std::process::id()),
                now_ns: 1,
            },
        )
        .unwrap();
    let after = tensorpool_shm::paths::available_bytes(fs.path()).unwrap();
    assert!(
        before - after >= 4 * MIB,
        "without prefault the pool's blocks are still reserved: {before} -> {after}"
    );
}
