//! Duty-cycle tests of epochs, announces, liveness, GC, restart and shutdown (Driver Model
//! §3, §4.7a, §4.9, §4.13, §6, §7, §8, §10; PITFALLS #10).

mod driver_common;

use driver_common::*;
use tensorpool_codec::driver::{LeaseRevokeReason, ResponseCode, Role, ShutdownReason};
use tensorpool_shm::superblock::decode as decode_superblock;
use tensorpool_shm::{
    AllowedBaseDirs, ExpectedRegion, HeaderRing, MapOptions, ReadWrite, RegionUri,
};

const STREAM: u32 = 10_000;

fn header_activity(uri: &str) -> u64 {
    let path = RegionUri::parse(uri).unwrap().to_path_buf();
    let bytes = std::fs::read(path).unwrap();
    decode_superblock(bytes[..64].try_into().unwrap())
        .unwrap()
        .activity_timestamp_ns
}

#[test]
fn announces_every_period_and_on_change() {
    let mut h = Harness::new();
    let first = h.advance(10);
    assert_eq!(
        announces(&first).len(),
        1,
        "the stream provisioned at startup is announced at once"
    );
    let outs = h.advance(ANNOUNCE_MS * 3);
    let a = announces(&outs);
    assert_eq!(
        a.len(),
        3,
        "one announce per period for the one live stream: {a:?}"
    );
    assert!(
        a.iter()
            .all(|&(s, e, p)| s == STREAM && e == h.core.last_epoch(STREAM) && p == 0)
    );
    // a change is announced in the same cycle, with the producer's client id (§8)
    let r = h.attach_ok(42, STREAM, Role::Producer);
    let outs = h.send(&tensorpool_codec::driver::ShmLeaseKeepalive {
        lease_id: r.lease_id.unwrap(),
        stream_id: STREAM,
        client_id: 42,
        role: Role::Producer,
        client_timestamp_ns: 0,
    });
    assert!(announces(&outs).is_empty(), "keepalives change nothing");
    let outs = h.advance(ANNOUNCE_MS);
    assert_eq!(announces(&outs), vec![(STREAM, r.epoch.unwrap(), 42)]);
}

#[test]
fn producer_attach_announces_the_new_epoch_at_once() {
    let mut h = Harness::new();
    let req = h.attach_req(42, STREAM, Role::Producer);
    let (r, outs) = h.attach_with(&req);
    assert_eq!(r.code, ResponseCode::Ok);
    assert_eq!(
        announces(&outs),
        vec![(STREAM, r.epoch.unwrap(), 42)],
        "{outs:?}"
    );
    let Some(Out::Announce {
        header_uri,
        pool_uris,
        ..
    }) = outs.iter().find(|o| matches!(o, Out::Announce { .. }))
    else {
        panic!()
    };
    assert_eq!(
        header_uri, &r.header_uri,
        "announce and attach response agree"
    );
    assert_eq!(pool_uris.len(), 2);
}

#[test]
fn expiry_revokes_then_announces_a_bumped_epoch_once() {
    let mut h = Harness::new();
    let p = h.attach_ok(1, STREAM, Role::Producer);
    let c = h.attach_ok(2, STREAM, Role::Consumer);
    let outs = h.advance(KEEPALIVE_MS * GRACE + 10);
    let rev = revocations(&outs);
    assert_eq!(
        rev.iter()
            .filter(|(id, _)| *id == p.lease_id.unwrap())
            .count(),
        1,
        "revoked exactly once"
    );
    assert!(
        rev.contains(&(c.lease_id.unwrap(), LeaseRevokeReason::Expired)),
        "consumer leases too (§4.9)"
    );
    let first_revoke = outs
        .iter()
        .position(|o| matches!(o, Out::Revoked { .. }))
        .unwrap();
    let bumped = outs
        .iter()
        .position(|o| matches!(o, Out::Announce { epoch, .. } if *epoch > p.epoch.unwrap()))
        .expect("an epoch-bumped announce");
    assert!(first_revoke < bumped);
    // nothing more about those leases later
    let later = h.advance(KEEPALIVE_MS * GRACE * 2);
    assert!(revocations(&later).is_empty(), "{later:?}");
}

#[test]
fn driver_refreshes_activity_without_a_producer_and_delegates_to_one_that_refreshes() {
    let mut h = Harness::new();
    let c = h.attach_ok(2, STREAM, Role::Consumer);
    h.keepalive(&c, 2, Role::Consumer);
    h.advance(ANNOUNCE_MS);
    assert_eq!(
        header_activity(&c.header_uri),
        h.now(),
        "refreshed at announce cadence"
    );
    h.keepalive(&c, 2, Role::Consumer);

    // a producer that refreshes the timestamp itself takes over ...
    let p = h.attach_ok(1, STREAM, Role::Producer);
    let uri = RegionUri::parse(&p.header_uri).unwrap();
    let allowed = AllowedBaseDirs::new([h.dir.path()]).unwrap();
    let expected = ExpectedRegion::header_ring(1, p.epoch.unwrap(), STREAM, 8);
    let ring =
        HeaderRing::<ReadWrite>::open(&uri, &allowed, &expected, MapOptions::default()).unwrap();
    for _ in 0..6 {
        h.advance(ANNOUNCE_MS / 2);
        h.keepalive(&p, 1, Role::Producer);
        ring.refresh_activity(h.now() - 1);
        h.advance(ANNOUNCE_MS / 2);
        h.keepalive(&p, 1, Role::Producer);
    }
    assert_eq!(
        ring.activity_timestamp_ns(),
        h.now() - ANNOUNCE_MS / 2 * MS - 1,
        "driver no longer writes"
    );
    // ... and when it stops refreshing (while still sending keepalives), it is revoked (§7)
    let mut revoked = Vec::new();
    for _ in 0..8 {
        let outs = h.advance(ANNOUNCE_MS);
        revoked.extend(revocations(&outs));
        if h.core.lease(p.lease_id.unwrap()).is_some() {
            h.keepalive(&p, 1, Role::Producer);
        }
    }
    assert_eq!(
        revoked,
        vec![(p.lease_id.unwrap(), LeaseRevokeReason::Revoked)]
    );
    assert!(h.core.last_epoch(STREAM) > p.epoch.unwrap());
}

#[test]
fn gc_keeps_the_configured_number_of_epochs_and_never_the_live_one() {
    for keep in [1u32, 2, 3] {
        let mut h = Harness::with(
            &format!("epoch_gc_keep = {keep}\nepoch_gc_min_age_ns = 0"),
            "",
        );
        for i in 0..6 {
            let r = h.attach_ok(100 + i, STREAM, Role::Producer);
            h.detach(&r, 100 + i, Role::Producer);
            // retired superblocks go stale after 3 announce periods
            h.advance(ANNOUNCE_MS * 3 + 20);
        }
        let dirs = h.epoch_dirs(STREAM);
        assert_eq!(dirs.len(), keep as usize, "keep={keep}: {dirs:?}");
        assert_eq!(
            *dirs.last().unwrap(),
            h.core.last_epoch(STREAM),
            "the live epoch is kept"
        );
        assert!(h.core.counters().epochs_collected >= 6 - u64::from(keep));
    }
}

#[test]
fn gc_waits_for_min_age_and_for_leases_granted_on_an_epoch() {
    let mut h = Harness::with("epoch_gc_keep = 1\nepoch_gc_min_age_ns = 500000000", "");
    let e0 = h.core.last_epoch(STREAM);
    let c = h.attach_ok(5, STREAM, Role::Consumer);
    let p = h.attach_ok(6, STREAM, Role::Producer);
    for _ in 0..4 {
        h.advance(KEEPALIVE_MS);
        h.keepalive(&p, 6, Role::Producer);
        h.keepalive(&c, 5, Role::Consumer); // before the min age: the lease stays on e0
    }
    assert!(h.epoch_dirs(STREAM).contains(&e0), "younger than min age");
    h.advance(KEEPALIVE_MS);
    h.keepalive(&p, 6, Role::Producer);
    assert!(
        h.epoch_dirs(STREAM).contains(&e0),
        "old enough, but the consumer lease granted on e0 pins it"
    );
    // a keepalive after the min age: the consumer has had time to remap; e0 is released
    for _ in 0..4 {
        h.keepalive(&c, 5, Role::Consumer);
        h.keepalive(&p, 6, Role::Producer);
        h.advance(KEEPALIVE_MS);
    }
    assert_eq!(h.epoch_dirs(STREAM), vec![p.epoch.unwrap()]);
}

#[test]
fn restart_bumps_epochs_above_everything_on_disk() {
    let dir = shm_tempdir();
    let path = dir.path().to_path_buf();
    let mut h = Harness::in_dir(dir, "", "", T0);
    let p = h.attach_ok(1, STREAM, Role::Producer);
    let before = h.core.last_epoch(STREAM);
    assert_eq!(before, p.epoch.unwrap());
    let Harness { dir, core, .. } = h;
    drop(core); // the driver dies; its files stay
    // a monotonic clock that went back (host reboot): epochs still rise (§10)
    let h2 = Harness::in_dir(dir, "", "", T0 / 2);
    let after = h2.core.last_epoch(STREAM);
    assert_eq!(after, before + 1);
    assert!(
        h2.core.leases().next().is_none(),
        "leases do not survive a restart"
    );
    let live = h2.core.stream(STREAM).unwrap().header_uri.unwrap();
    assert!(
        live.contains(&format!("/{after}/")),
        "only the new epoch is served: {live}"
    );
    assert!(path.exists());
}

#[test]
fn gc_on_startup_collects_epochs_of_an_earlier_process() {
    let dir = shm_tempdir();
    let mut h = Harness::in_dir(dir, "epoch_gc_min_age_ns = 0", "", T0);
    for i in 0..3 {
        let r = h.attach_ok(10 + i, STREAM, Role::Producer);
        h.detach(&r, 10 + i, Role::Producer);
    }
    let Harness { dir, core, .. } = h;
    drop(core);
    let mut h2 = Harness::in_dir(
        dir,
        "epoch_gc_min_age_ns = 0\nepoch_gc_on_startup = true\nepoch_gc_keep = 1",
        "",
        T0 * 2,
    );
    h2.advance(10);
    assert_eq!(h2.epoch_dirs(STREAM), vec![h2.core.last_epoch(STREAM)]);
}

/// A provisioner killed while creating an epoch (the C camera example's 8 GiB
/// `.1.pool.tmp-*` file): GC removes its temporary files once its pid is gone, also from a
/// kept epoch, and an epoch directory that never got its header ring neither counts among
/// the kept ones nor stays; a living provisioner's temporary file is left alone.
#[test]
fn gc_removes_the_temporary_files_and_partial_epochs_of_dead_provisioners() {
    let dir = shm_tempdir();
    let mut h = Harness::in_dir(dir, "epoch_gc_min_age_ns = 0", "", T0);
    let r = h.attach_ok(10, STREAM, Role::Producer);
    h.detach(&r, 10, Role::Producer);
    let kept = h.core.last_epoch(STREAM);
    let Harness { dir, core, .. } = h;
    let layout = core.config().layout().unwrap();
    drop(core);
    // pid 4194305 is above every pid_max: never alive
    let dead_in_kept = layout
        .epoch_dir(STREAM, kept)
        .join(".1.pool.tmp-4194305-1-0");
    std::fs::write(&dead_in_kept, [0u8; 4096]).unwrap();
    let partial = layout.epoch_dir(STREAM, kept + 1);
    std::fs::create_dir(&partial).unwrap();
    std::fs::write(partial.join(".header.ring.tmp-4194305-1-1"), [0u8; 64]).unwrap();
    let living = layout.epoch_dir(STREAM, kept + 2);
    std::fs::create_dir(&living).unwrap();
    let ours = living.join(format!(".1.pool.tmp-{}-1-2", std::process::id()));
    std::fs::write(&ours, [0u8; 64]).unwrap();
    let mut h2 = Harness::in_dir(
        dir,
        "epoch_gc_min_age_ns = 0\nepoch_gc_on_startup = true\nepoch_gc_keep = 2",
        "",
        T0 * 2,
    );
    h2.advance(10);
    let live = h2.core.last_epoch(STREAM);
    assert!(
        !dead_in_kept.exists(),
        "a dead provisioner's temporary file"
    );
    assert!(!partial.exists(), "a partial epoch of a dead provisioner");
    assert!(ours.exists(), "a living provisioner's temporary file stays");
    assert_eq!(
        h2.epoch_dirs(STREAM),
        vec![kept, kept + 2, live],
        "keep = 2 counts complete epochs only"
    );
}

#[test]
fn shutdown_with_a_wrong_token_changes_nothing() {
    let mut h = Harness::new();
    for token in ["", "wrong", "s3cret-but-longer"] {
        let outs = h.shutdown_request(token, ShutdownReason::Admin);
        assert!(outs.iter().all(|o| !matches!(o, Out::Shutdown { .. })));
    }
    let outs = h.advance(1_000);
    assert!(outs.iter().all(|o| !matches!(o, Out::Shutdown { .. })));
    assert_eq!(h.core.lifecycle(), &tensorpool::driver::Lifecycle::Running);
    assert_eq!(h.attach(1, STREAM, Role::Consumer).code, ResponseCode::Ok);
    assert_eq!(h.core.counters().shutdown_requests_rejected, 3);
}

#[test]
fn shutdown_is_disabled_with_an_empty_configured_token() {
    let mut h =
        Harness::edited(|t| t.replace("shutdown_token = \"s3cret\"", "shutdown_token = \"\""));
    h.advance(10);
    let outs = h.shutdown_request("", ShutdownReason::Admin);
    assert!(outs.is_empty());
    h.advance(500);
    assert_eq!(h.core.lifecycle(), &tensorpool::driver::Lifecycle::Running);
}

#[test]
fn shutdown_with_the_token_drains_announces_and_notifies() {
    let mut h = Harness::new();
    let c = h.attach_ok(3, STREAM, Role::Consumer);
    let outs = h.shutdown_request("s3cret", ShutdownReason::Error);
    assert_eq!(
        announces(&outs).len(),
        1,
        "final announce at once: {outs:?}"
    );
    assert!(matches!(
        h.core.lifecycle(),
        tensorpool::driver::Lifecycle::Draining { .. }
    ));
    // keepalives still work while draining; no new leases
    h.keepalive(&c, 3, Role::Consumer);
    assert_eq!(
        h.attach(4, STREAM, Role::Consumer).code,
        ResponseCode::Rejected
    );
    let early = h.advance(150);
    assert!(
        early.iter().all(|o| !matches!(o, Out::Shutdown { .. })),
        "not before shutdown_timeout_ms"
    );
    assert!(
        announces(&early).is_empty(),
        "the final announce was the last"
    );
    let outs = h.advance(60);
    let shutdown: Vec<_> = outs
        .iter()
        .filter(|o| matches!(o, Out::Shutdown { .. }))
        .collect();
    assert_eq!(
        shutdown,
        vec![&Out::Shutdown {
            reason: ShutdownReason::Error,
            message: "test shutdown".into()
        }],
        "reason mirrors the request"
    );
    assert!(h.core.is_stopped());
}

#[test]
fn shutdown_text_is_bounded_to_1024_bytes() {
    let mut h = Harness::new();
    let long = "x".repeat(5_000);
    h.send(&tensorpool_codec::driver::ShmDriverShutdownRequest {
        correlation_id: 1,
        reason: ShutdownReason::Admin,
        token: "s3cret".into(),
        error_message: long.as_str().into(),
    });
    let outs = h.advance(300);
    let Some(Out::Shutdown { message, .. }) =
        outs.iter().find(|o| matches!(o, Out::Shutdown { .. }))
    else {
        panic!("{outs:?}")
    };
    assert_eq!(message.len(), 1024);
}
