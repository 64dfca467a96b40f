//! Duty-cycle tests of the attach protocol (Driver Model §4.2, §4.3, §4.4a, §4.6, §4.8, §5,
//! §11, Appendix B): the driver core driven by hand with a manual clock; every response
//! decoded.

mod driver_common;

use driver_common::*;
use tensorpool_codec::driver::{
    HugepagesPolicy, LeaseRevokeReason, PublishMode, ResponseCode, Role, ShmAttachRequest,
    ShmLeaseKeepalive,
};
use tensorpool_codec::wire::FrameDescriptor;
use tensorpool_codec::{HEADER_LEN, Message};
use tensorpool_shm::{AllowedBaseDirs, RegionUri};

const STREAM: u32 = 10_000;

fn assert_error_nulls(r: &AttachResp) {
    assert_ne!(r.code, ResponseCode::Ok);
    assert_eq!(r.lease_id, None);
    assert_eq!(r.expiry, None);
    assert_eq!(r.stream_id, None);
    assert_eq!(r.epoch, None);
    assert_eq!(r.layout_version, None);
    assert_eq!(r.header_nslots, None);
    assert_eq!(r.header_slot_bytes, None);
    assert_eq!(r.node_id, None, "nodeId must not be set on failure (§4.2)");
    assert!(r.pools.is_empty() && r.header_uri.is_empty());
    assert!(!r.error.is_empty() && r.error.len() <= 1024);
}

fn assert_complete_ok(h: &Harness, r: &AttachResp) {
    assert_eq!(r.code, ResponseCode::Ok, "{r:?}");
    assert!(r.lease_id.is_some() && r.expiry.is_some() && r.node_id.is_some());
    assert_eq!(r.stream_id, Some(STREAM));
    assert_eq!(r.layout_version, Some(1));
    assert_eq!(r.header_nslots, Some(8));
    assert_eq!(r.header_slot_bytes, Some(256));
    assert_eq!(r.epoch, Some(h.core.last_epoch(STREAM)));
    assert_eq!(r.pools.len(), 2);
    let allowed = AllowedBaseDirs::new([h.dir.path()]).unwrap();
    for (i, (pool_id, nslots, stride, uri)) in r.pools.iter().enumerate() {
        assert_eq!(*pool_id, [1, 2][i]);
        assert_eq!(*nslots, 8, "poolNslots == headerNslots");
        assert_eq!(*stride, [256, 1024][i]);
        let u = RegionUri::parse(uri).unwrap();
        allowed.check(u.path()).unwrap();
        assert!(
            uri.ends_with(&format!("/{STREAM}/{}/{pool_id}.pool", r.epoch.unwrap())),
            "{uri}"
        );
    }
    let u = RegionUri::parse(&r.header_uri).unwrap();
    let checked = allowed.check(u.path()).unwrap();
    assert_eq!(
        checked.canonical(),
        u.path(),
        "announced paths are canonical"
    );
    assert!(r.error.is_empty());
}

#[test]
fn producer_attach_keepalive_detach() {
    let mut h = Harness::new();
    let e0 = h.core.last_epoch(STREAM);
    assert_eq!(
        e0, T0,
        "static stream provisioned at startup with epoch max(prev+1, now)"
    );
    h.advance(5);
    let r = h.attach_ok(7, STREAM, Role::Producer);
    assert_complete_ok(&h, &r);
    assert!(
        r.epoch.unwrap() > e0,
        "a producer attaching bumps the epoch (§6)"
    );
    assert_eq!(r.expiry, Some(h.now() + KEEPALIVE_MS * GRACE * MS));
    // keepalives keep it alive well past one grace period
    for _ in 0..10 {
        let outs = h.advance(KEEPALIVE_MS);
        assert!(revocations(&outs).is_empty(), "{outs:?}");
        h.keepalive(&r, 7, Role::Producer);
    }
    assert!(h.core.lease(r.lease_id.unwrap()).is_some());
    let outs = h.detach(&r, 7, Role::Producer);
    assert!(
        matches!(
            &outs[0],
            Out::Detach {
                code: ResponseCode::Ok,
                ..
            }
        ),
        "{outs:?}"
    );
    assert_eq!(
        revocations(&outs),
        vec![(r.lease_id.unwrap(), LeaseRevokeReason::Detached)]
    );
    let ann = announces(&outs);
    assert_eq!(ann.len(), 1);
    assert!(
        ann[0].1 > r.epoch.unwrap(),
        "producer detach bumps the epoch"
    );
    assert_eq!(ann[0].2, 0, "no producer: producerId 0 (§8)");
    let revoked_at = outs
        .iter()
        .position(|o| matches!(o, Out::Revoked { .. }))
        .unwrap();
    let announced_at = outs
        .iter()
        .position(|o| matches!(o, Out::Announce { .. }))
        .unwrap();
    assert!(
        revoked_at < announced_at,
        "ShmLeaseRevoked before the bumped announce"
    );
    assert!(h.core.lease(r.lease_id.unwrap()).is_none());
}

#[test]
fn detach_echoes_correlation_id_and_rejects_unknown_leases() {
    let mut h = Harness::new();
    let r = h.attach_ok(7, STREAM, Role::Consumer);
    let bad = tensorpool_codec::driver::ShmDetachRequest {
        correlation_id: -42,
        lease_id: r.lease_id.unwrap(),
        stream_id: STREAM,
        client_id: 8, // not the holder
        role: Role::Consumer,
    };
    let outs = h.send(&bad);
    assert_eq!(
        outs,
        vec![Out::Detach {
            correlation_id: -42,
            code: ResponseCode::Rejected,
            message: format!(
                "no active lease {} for this stream, client and role",
                r.lease_id.unwrap()
            ),
        }]
    );
    let ok = tensorpool_codec::driver::ShmDetachRequest {
        client_id: 7,
        correlation_id: 99,
        ..bad
    };
    let outs = h.send(&ok);
    assert!(matches!(
        outs[0],
        Out::Detach {
            correlation_id: 99,
            code: ResponseCode::Ok,
            ..
        }
    ));
    // detaching again: unknown lease, and no second revocation
    let again = tensorpool_codec::driver::ShmDetachRequest {
        correlation_id: 100,
        ..ok
    };
    let outs = h.send(&again);
    assert!(matches!(
        outs[0],
        Out::Detach {
            correlation_id: 100,
            code: ResponseCode::Rejected,
            ..
        }
    ));
    assert!(revocations(&outs).is_empty());
}

#[test]
fn consumer_attach_keepalive_detach_without_epoch_change() {
    let mut h = Harness::new();
    let e0 = h.core.last_epoch(STREAM);
    let r = h.attach_ok(9, STREAM, Role::Consumer);
    assert_complete_ok(&h, &r);
    assert_eq!(
        r.epoch,
        Some(e0),
        "consumers attach before any producer (PITFALLS #12)"
    );
    h.advance(KEEPALIVE_MS);
    h.keepalive(&r, 9, Role::Consumer);
    let outs = h.detach(&r, 9, Role::Consumer);
    assert_eq!(
        revocations(&outs),
        vec![(r.lease_id.unwrap(), LeaseRevokeReason::Detached)]
    );
    assert_eq!(
        h.core.last_epoch(STREAM),
        e0,
        "a consumer detach does not bump"
    );
}

#[test]
fn second_producer_rejected_until_the_first_expires_or_detaches() {
    let mut h = Harness::new();
    let first = h.attach_ok(1, STREAM, Role::Producer);
    let second = h.attach(2, STREAM, Role::Producer);
    assert_eq!(second.code, ResponseCode::Rejected);
    assert_error_nulls(&second);
    // consumers are unlimited meanwhile
    h.attach_ok(3, STREAM, Role::Consumer);
    h.attach_ok(4, STREAM, Role::Consumer);
    // the first producer goes silent: expiry after keepalive x grace
    let outs = h.advance(KEEPALIVE_MS * GRACE + 20);
    assert_eq!(
        revocations(&outs)
            .iter()
            .filter(|(id, _)| *id == first.lease_id.unwrap())
            .count(),
        1
    );
    let third = h.attach_ok(2, STREAM, Role::Producer);
    assert!(third.epoch > first.epoch, "epoch strictly increases");
    // and after a detach
    h.detach(&third, 2, Role::Producer);
    let fourth = h.attach_ok(5, STREAM, Role::Producer);
    assert!(fourth.epoch > third.epoch);
}

#[test]
fn lease_expires_after_interval_times_grace() {
    let mut h = Harness::new();
    let r = h.attach_ok(1, STREAM, Role::Consumer);
    let outs = h.advance(KEEPALIVE_MS * GRACE - 10);
    assert!(revocations(&outs).is_empty());
    let outs = h.advance(20);
    assert_eq!(
        revocations(&outs),
        vec![(r.lease_id.unwrap(), LeaseRevokeReason::Expired)]
    );
}

#[test]
fn keepalive_needs_an_exact_match() {
    let mut h = Harness::new();
    let r = h.attach_ok(1, STREAM, Role::Consumer);
    for _ in 0..5 {
        h.advance(KEEPALIVE_MS);
        // wrong client, wrong role, wrong stream: none extends the lease
        let base = ShmLeaseKeepalive {
            lease_id: r.lease_id.unwrap(),
            stream_id: STREAM,
            client_id: 2,
            role: Role::Consumer,
            client_timestamp_ns: 0,
        };
        h.send(&base);
        h.send(&ShmLeaseKeepalive {
            client_id: 1,
            role: Role::Producer,
            ..base
        });
        h.send(&ShmLeaseKeepalive {
            client_id: 1,
            stream_id: 1,
            ..base
        });
    }
    assert!(
        h.core.lease(r.lease_id.unwrap()).is_none(),
        "expired despite mismatched keepalives"
    );
    assert_eq!(h.core.counters().keepalives, 0);
}

#[test]
fn rejection_codes() {
    let mut h = Harness::with("", "");
    let cases: Vec<(ShmAttachRequest, ResponseCode, &str)> = {
        let base = h.attach_req(50, STREAM, Role::Consumer);
        vec![
            (
                ShmAttachRequest {
                    expected_layout_version: 2,
                    ..base.clone()
                },
                ResponseCode::Rejected,
                "expectedLayoutVersion 2",
            ),
            (
                ShmAttachRequest {
                    require_hugepages: HugepagesPolicy::Hugepages,
                    ..base.clone()
                },
                ResponseCode::Rejected,
                "hugepage",
            ),
            (
                ShmAttachRequest {
                    stream_id: 4242,
                    ..base.clone()
                },
                ResponseCode::Rejected,
                "not provisioned",
            ),
            (
                ShmAttachRequest {
                    stream_id: 4242,
                    publish_mode: None,
                    ..base.clone()
                },
                ResponseCode::Rejected,
                "not provisioned",
            ),
            (
                ShmAttachRequest {
                    stream_id: 10_001,
                    ..base.clone()
                },
                ResponseCode::InvalidParams,
                "no payload pools",
            ),
            (
                ShmAttachRequest {
                    client_id: 0,
                    ..base.clone()
                },
                ResponseCode::InvalidParams,
                "client_id must be non-zero",
            ),
        ]
    };
    for (i, (mut req, code, text)) in cases.into_iter().enumerate() {
        req.correlation_id = 1_000 + i as i64;
        let (r, _) = h.attach_with(&req);
        assert_eq!(r.code, code, "{req:?}: {r:?}");
        assert!(r.error.contains(text), "{:?} lacks {text:?}", r.error);
        assert_error_nulls(&r);
    }
    // STANDARD pages are what a tmpfs base provides
    let mut ok = h.attach_req(51, STREAM, Role::Consumer);
    ok.require_hugepages = HugepagesPolicy::Standard;
    assert_eq!(h.attach_with(&ok).0.code, ResponseCode::Ok);
}

#[test]
fn unspecified_hugepages_follows_shm_require_hugepages() {
    let mut h = Harness::edited(|t| t.replace("[shm]\n", "[shm]\nrequire_hugepages = true\n"));
    let mut req = h.attach_req(5, STREAM, Role::Consumer);
    req.publish_mode = None;
    req.expected_layout_version = 1;
    let r = h.attach_with(&req).0;
    assert_eq!(r.code, ResponseCode::Rejected);
    assert!(r.error.contains("hugepage"), "{}", r.error);
}

#[test]
fn schema_version_and_malformed_requests() {
    let mut h = Harness::new();
    let req = h.attach_req(60, STREAM, Role::Consumer);
    let mut buf = req.encode_to_vec().unwrap();
    // a newer schema version: UNSUPPORTED, correlation id echoed
    buf[6] = 2;
    let outs = h.feed(&buf);
    let Out::Attach(r) = &outs[0] else {
        panic!("{outs:?}")
    };
    assert_eq!(
        (r.correlation_id, r.code),
        (req.correlation_id, ResponseCode::Unsupported)
    );
    assert_error_nulls(r);
    // an unknown role value: INVALID_PARAMS
    let mut bad_role = req.encode_to_vec().unwrap();
    bad_role[HEADER_LEN + 16] = 9;
    let outs = h.feed(&bad_role);
    let Out::Attach(r) = &outs[0] else {
        panic!("{outs:?}")
    };
    assert_eq!(r.code, ResponseCode::InvalidParams, "{r:?}");
    // an unknown publish mode: UNSUPPORTED (§4.6)
    let mut bad_mode = req.encode_to_vec().unwrap();
    bad_mode[HEADER_LEN + 21] = 7;
    let outs = h.feed(&bad_mode);
    let Out::Attach(r) = &outs[0] else {
        panic!("{outs:?}")
    };
    assert_eq!(r.code, ResponseCode::Unsupported, "{r:?}");
    // truncated body: nothing to correlate, nothing sent
    let full = req.encode_to_vec().unwrap();
    assert!(h.feed(&full[..HEADER_LEN + 4]).is_empty());
    assert!(h.feed(&full[..3]).is_empty());
    // another schema's message with the same template id is not an attach
    let fd = FrameDescriptor {
        stream_id: STREAM,
        epoch: 1,
        seq: 1,
        timestamp_ns: None,
        meta_version: None,
        trace_id: None,
    };
    assert!(h.feed(&fd.encode_to_vec().unwrap()).is_empty());
    let mut other_schema = req.encode_to_vec().unwrap();
    other_schema[4..6].copy_from_slice(&900u16.to_le_bytes());
    assert!(
        h.feed(&other_schema).is_empty(),
        "schema gated before template id"
    );
    assert!(h.core.leases().next().is_none());
}

#[test]
fn one_lease_per_client_id_and_retries_deduplicated_by_correlation_id() {
    let mut h = Harness::new();
    let req = h.attach_req(70, STREAM, Role::Consumer);
    let (first, _) = h.attach_with(&req);
    assert_eq!(first.code, ResponseCode::Ok);
    // the same request again (lost response): the same lease, no second one
    let (again, _) = h.attach_with(&req);
    assert_eq!(again.lease_id, first.lease_id);
    assert_eq!(h.core.leases().count(), 1);
    // a new attach by the same client: REJECTED with the Appendix B.2 text
    let other = h.attach(70, STREAM, Role::Producer);
    assert_eq!(other.code, ResponseCode::Rejected);
    assert_eq!(other.error, "client_id already attached");
    let other = h.attach(70, STREAM, Role::Consumer);
    assert_eq!(other.error, "client_id already attached");
    assert_error_nulls(&other);
}

#[test]
fn lease_ids_are_unique_and_never_reused() {
    let mut h = Harness::new();
    let mut seen = std::collections::HashSet::new();
    for i in 0..200u32 {
        let role = if i % 3 == 0 {
            Role::Producer
        } else {
            Role::Consumer
        };
        let r = h.attach_ok(1_000 + i, STREAM, role);
        assert!(seen.insert(r.lease_id.unwrap()), "lease id reused");
        if i % 2 == 0 {
            h.detach(&r, 1_000 + i, role);
        } else {
            h.advance(KEEPALIVE_MS * GRACE + 10); // expire
        }
    }
}

#[test]
fn desired_node_ids_are_stable_rejected_when_taken_and_cool_down() {
    let mut h = Harness::with("node_id_reuse_cooldown_ms = 200", "");
    let mut req = h.attach_req(80, STREAM, Role::Consumer);
    req.desired_node_id = Some(77);
    let (r, _) = h.attach_with(&req);
    assert_eq!((r.code, r.node_id), (ResponseCode::Ok, Some(77)));
    let mut taken = h.attach_req(81, STREAM, Role::Consumer);
    taken.desired_node_id = Some(77);
    let (t, _) = h.attach_with(&taken);
    assert_eq!(t.code, ResponseCode::Rejected);
    assert_error_nulls(&t);
    // stable across keepalives
    h.keepalive(&r, 80, Role::Consumer);
    assert_eq!(h.core.lease(r.lease_id.unwrap()).unwrap().node_id, Some(77));
    h.detach(&r, 80, Role::Consumer);
    taken.correlation_id = h.corr();
    assert_eq!(
        h.attach_with(&taken).0.code,
        ResponseCode::Rejected,
        "cooling down"
    );
    h.advance(210);
    taken.correlation_id = h.corr();
    assert_eq!(h.attach_with(&taken).0.node_id, Some(77));
    // without a desired id, ids are assigned and distinct
    let a = h.attach_ok(82, STREAM, Role::Consumer).node_id;
    let b = h.attach_ok(83, STREAM, Role::Consumer).node_id;
    assert!(a.is_some() && b.is_some() && a != b);
}

#[test]
fn dynamic_streams_from_the_range() {
    let mut h = Harness::with(
        "allow_dynamic_streams = true\ndefault_profile = \"small\"",
        "",
    );
    // no range configured: INVALID_PARAMS
    let mut req = h.attach_req(90, 20_000, Role::Producer);
    req.publish_mode = Some(PublishMode::ExistingOrCreate);
    assert_eq!(h.attach_with(&req).0.code, ResponseCode::InvalidParams);

    let mut h = Harness::edited(|t| {
        t.replace("[shm]", "stream_id_range = \"20000-20001\"\n[shm]")
            .replace("[policies]", "[policies]\nallow_dynamic_streams = true")
    });
    let mut req = h.attach_req(91, 20_001, Role::Producer);
    req.publish_mode = Some(PublishMode::ExistingOrCreate);
    let (r, _) = h.attach_with(&req);
    assert_eq!(
        (r.code, r.stream_id),
        (ResponseCode::Ok, Some(20_001)),
        "{r:?}"
    );
    // an id outside the range: one is allocated from it
    let mut req2 = h.attach_req(92, 5, Role::Producer);
    req2.publish_mode = Some(PublishMode::ExistingOrCreate);
    let (r2, _) = h.attach_with(&req2);
    assert_eq!((r2.code, r2.stream_id), (ResponseCode::Ok, Some(20_000)));
    // exhausted
    let mut req3 = h.attach_req(93, 6, Role::Producer);
    req3.publish_mode = Some(PublishMode::ExistingOrCreate);
    assert_eq!(h.attach_with(&req3).0.code, ResponseCode::InvalidParams);
    // REQUIRE_EXISTING never creates
    let req4 = h.attach_req(94, 7, Role::Consumer);
    assert_eq!(h.attach_with(&req4).0.code, ResponseCode::Rejected);
    // the last lease gone, the dynamic stream and its files go too
    h.detach(&r, 91, Role::Producer);
    assert!(h.core.stream(20_001).is_none());
    assert!(h.epoch_dirs(20_001).is_empty());
    // created again under the same id: its epochs continue above the old ones
    let mut again = h.attach_req(95, 20_001, Role::Consumer);
    again.publish_mode = Some(PublishMode::ExistingOrCreate);
    let (r3, _) = h.attach_with(&again);
    assert!(r3.epoch.unwrap() > r.epoch.unwrap(), "{r3:?} after {r:?}");
}

#[test]
fn draining_driver_grants_nothing() {
    let mut h = Harness::new();
    h.shutdown_request("s3cret", tensorpool_codec::driver::ShutdownReason::Admin);
    let r = h.attach(1, STREAM, Role::Consumer);
    assert_eq!(r.code, ResponseCode::Rejected);
    assert!(r.error.contains("shutting down"));
}
