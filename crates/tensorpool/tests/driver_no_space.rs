//! No room is an error, not a crash (issue 21 item 1): on a small tmpfs mounted by the test,
//! a new epoch that does not fit runs epoch GC once (keeping one epoch fewer, the new one
//! counting) and retries; when GC frees nothing the attach is answered with an error that
//! names the file system and the bytes missing, and nothing of the failed epoch is left;
//! a driver that cannot provision at start fails with the same text. Needs root (mount).

mod driver_common;

use driver_common::*;
use tensorpool::config::NoEnv;
use tensorpool::driver::{DriverConfig, DriverCore};
use tensorpool_codec::driver::{ResponseCode, Role};
use tensorpool_testkit::SmallTmpfs;

const MIB: u64 = 1 << 20;
const STREAM: u32 = 10_000;

/// Stream 10000 whose epochs take ~2 MiB each (8 slots of 256 KiB).
fn text(base: &std::path::Path) -> String {
    format!(
        r#"
[driver]
instance_id = "nospace"
[shm]
base_dir = "{}"
[policies]
announce_period_ms = {ANNOUNCE_MS}
lease_keepalive_interval_ms = {KEEPALIVE_MS}
lease_expiry_grace_intervals = {GRACE}
prefault_shm = true
epoch_gc_keep = 2
epoch_gc_min_age_ns = 0
[profiles.big]
header_nslots = 8
payload_pools = [ {{ pool_id = 1, stride_bytes = 262144 }} ]
[streams.cam]
stream_id = 10000
profile = "big"
"#,
        base.display()
    )
}

fn tmpfs(bytes: u64) -> Option<(SmallTmpfs, tempfile::TempDir)> {
    match SmallTmpfs::mount(bytes) {
        Ok(fs) => {
            let dir = tempfile::Builder::new()
                .prefix("base-")
                .tempdir_in(fs.path())
                .unwrap();
            Some((fs, dir))
        }
        Err(why) => {
            eprintln!("skipped: {why}");
            None
        }
    }
}

fn ballast(fs: &SmallTmpfs, bytes: u64) -> std::path::PathBuf {
    let p = fs.path().join("ballast");
    std::fs::write(&p, vec![1u8; bytes as usize]).unwrap();
    p
}

#[test]
fn dm_6_no_room_for_a_new_epoch_runs_gc_once_and_the_retry_succeeds() {
    // room for two epochs, not three
    let Some((fs, dir)) = tmpfs(5 * MIB) else {
        return;
    };
    let t = text(dir.path());
    let mut h = Harness::from_text(dir, &t, T0);
    let e0 = h.core.last_epoch(STREAM);
    let p = h.attach_ok(7, STREAM, Role::Producer);
    let e1 = p.epoch.unwrap();
    assert!(e1 > e0);
    // e0 goes stale; the ordinary GC keeps it (keep = 2: e1 live and e0)
    for _ in 0..4 {
        h.advance(ANNOUNCE_MS);
        h.keepalive(&p, 7, Role::Producer);
    }
    assert_eq!(h.epoch_dirs(STREAM), vec![e0, e1]);
    // the producer leaves: the next epoch does not fit beside e0 and e1
    h.detach(&p, 7, Role::Producer);
    let e2 = h.core.last_epoch(STREAM);
    assert!(e2 > e1, "the bump succeeded after GC: {e1} -> {e2}");
    assert_eq!(h.epoch_dirs(STREAM), vec![e1, e2], "e0 collected for room");
    let c = h.core.counters();
    assert_eq!(c.provision_no_space, 1);
    assert!(c.epochs_collected >= 1);
    drop(h);
    drop(fs);
}

#[test]
fn dm_6_no_room_even_after_gc_is_an_attach_error_naming_the_file_system_and_bytes_missing() {
    let Some((fs, dir)) = tmpfs(5 * MIB) else {
        return;
    };
    let t = text(dir.path());
    let mut h = Harness::from_text(dir, &t, T0);
    let e0 = h.core.last_epoch(STREAM);
    // someone else fills the file system: the live e0 fits, no second epoch does
    let b = ballast(&fs, 5 * MIB / 2);
    let r = h.attach(7, STREAM, Role::Producer);
    assert_eq!(r.code, ResponseCode::InternalError, "{r:?}");
    for want in [
        "no room",
        "bytes missing",
        "tmpfs",
        &fs.path().display().to_string(),
    ] {
        assert!(r.error.contains(want), "`{want}` in: {}", r.error);
    }
    assert_eq!(h.core.counters().provision_no_space, 1);
    assert_eq!(
        h.epoch_dirs(STREAM),
        vec![e0],
        "nothing of the failed epoch left"
    );
    // room again: the next attach is granted on a new epoch
    std::fs::remove_file(b).unwrap();
    let p = h.attach_ok(7, STREAM, Role::Producer);
    assert!(p.epoch.unwrap() > e0);
    drop(h);
    drop(fs);
}

#[test]
fn dm_14_a_driver_without_room_at_start_fails_with_the_same_text_and_leaves_nothing() {
    let Some((fs, dir)) = tmpfs(4 * MIB) else {
        return;
    };
    let _b = ballast(&fs, 3 * MIB);
    let cfg = DriverConfig::from_toml(&text(dir.path()), &NoEnv).unwrap();
    let layout = cfg.layout().unwrap();
    let err = DriverCore::new(cfg, T0).expect_err("no room at start");
    let text = err.to_string();
    assert!(
        text.contains("bytes missing") && text.contains("tmpfs"),
        "{text}"
    );
    let left: Vec<_> = std::fs::read_dir(layout.stream_dir(STREAM))
        .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
    drop(dir);
    drop(fs);
}
