//! The driver client's rules, with a scripted transport and a manual clock (Driver Model
//! §4.2, §4.4, §4.4a, §4.7a, §4.9, §4.13, Appendix B).

use std::collections::VecDeque;
use std::time::Duration;

use tensorpool::client::{
    ClientConfig, ClientEvent, ClientState, ClientTransport, DriverClient, LeaseLost, ProtocolError,
};
use tensorpool::control::{MessageSink, RecordingSink};
use tensorpool_codec::driver::{
    LeaseRevokeReason, PayloadPool, ResponseCode, Role, ShmAttachRequest, ShmAttachResponse,
    ShmDetachRequest, ShmDriverShutdown, ShmLeaseKeepalive, ShmLeaseRevoked, ShutdownReason,
};
use tensorpool_codec::wire::{ClockDomain, ShmPoolAnnounce};
use tensorpool_codec::{AnyMessage, Bytes, Group, Message};

const MS: u64 = 1_000_000;
const T0: u64 = 1_000_000_000_000;
const STREAM: u32 = 10_000;

#[derive(Default)]
struct Script {
    inbound: VecDeque<Vec<u8>>,
    sent: RecordingSink,
}

impl ClientTransport for Script {
    fn control(&mut self) -> &mut dyn MessageSink {
        &mut self.sent
    }
    fn poll(&mut self, handler: &mut dyn FnMut(&[u8]), _limit: usize) -> usize {
        let n = self.inbound.len();
        while let Some(m) = self.inbound.pop_front() {
            handler(&m);
        }
        n
    }
}

struct T {
    client: DriverClient<Script>,
    now: u64,
    events: Vec<ClientEvent>,
}

fn config(role: Role) -> ClientConfig {
    let mut c = ClientConfig::new(STREAM, role);
    c.attach_timeout = Duration::from_millis(100);
    c.backoff_initial = Duration::from_millis(10);
    c.backoff_max = Duration::from_millis(40);
    c.keepalive_interval = Duration::from_millis(100);
    c.announce_period = Duration::from_millis(100);
    c.driver_timeout = Duration::from_millis(500);
    c
}

impl T {
    fn new(cfg: ClientConfig) -> Self {
        Self {
            client: DriverClient::new(cfg, Script::default()),
            now: T0,
            events: Vec::new(),
        }
    }
    fn cycle(&mut self) {
        self.client.transport_mut().sent.clear();
        let events = &mut self.events;
        self.client.do_work(self.now, &mut |e| events.push(e));
    }
    fn advance(&mut self, ms: u64) {
        for _ in 0..ms {
            self.now += MS;
            let events = &mut self.events;
            self.client.do_work(self.now, &mut |e| events.push(e));
        }
    }
    fn push<'a, M: Message<'a>>(&mut self, m: &M) {
        self.client
            .transport_mut()
            .inbound
            .push_back(m.encode_to_vec().unwrap());
    }
    fn sent(&mut self) -> Vec<AnyMessage<'static>> {
        let sent: Vec<Vec<u8>> = self
            .client
            .transport_mut()
            .sent
            .messages()
            .map(<[u8]>::to_vec)
            .collect();
        sent.into_iter()
            .map(|b| {
                let leaked: &'static [u8] = Box::leak(b.into_boxed_slice());
                AnyMessage::decode(leaked).unwrap()
            })
            .collect()
    }
    /// The last attach request sent.
    fn last_attach(&mut self) -> ShmAttachRequest {
        self.sent()
            .into_iter()
            .rev()
            .find_map(|m| match m {
                AnyMessage::ShmAttachRequest(r) => Some(r),
                _ => None,
            })
            .expect("an attach request")
    }
    fn take_events(&mut self) -> Vec<ClientEvent> {
        std::mem::take(&mut self.events)
    }
}

fn pools(nslots: u32) -> Vec<PayloadPool<'static>> {
    vec![PayloadPool {
        pool_id: 1,
        pool_nslots: nslots,
        stride_bytes: 256,
        region_uri: Bytes::from("shm:file?path=/dev/shm/x/1.pool"),
    }]
}

fn ok_response(
    corr: i64,
    lease_id: u64,
    epoch: u64,
    pools: &[PayloadPool<'static>],
    expiry: Option<u64>,
) -> ShmAttachResponse<'static> {
    ShmAttachResponse {
        correlation_id: corr,
        code: ResponseCode::Ok,
        lease_id: Some(lease_id),
        lease_expiry_timestamp_ns: expiry,
        stream_id: Some(STREAM),
        epoch: Some(epoch),
        layout_version: Some(1),
        header_nslots: Some(8),
        header_slot_bytes: Some(256),
        node_id: Some(3),
        payload_pools: Group::Owned(pools.to_vec()),
        header_region_uri: Bytes::from("shm:file?path=/dev/shm/x/header.ring"),
        error_message: Bytes::EMPTY,
    }
}

fn error_response(corr: i64, code: ResponseCode, text: &'static str) -> ShmAttachResponse<'static> {
    ShmAttachResponse {
        correlation_id: corr,
        code,
        lease_id: None,
        lease_expiry_timestamp_ns: None,
        stream_id: None,
        epoch: None,
        layout_version: None,
        header_nslots: None,
        header_slot_bytes: None,
        node_id: None,
        payload_pools: Group::default(),
        header_region_uri: Bytes::EMPTY,
        error_message: Bytes::from(text),
    }
}

fn attached(t: &mut T, lease_id: u64, epoch: u64) -> i64 {
    t.cycle();
    let req = t.last_attach();
    t.push(&ok_response(
        req.correlation_id,
        lease_id,
        epoch,
        &pools(8),
        None,
    ));
    t.cycle();
    assert_eq!(t.client.state(), ClientState::Attached);
    assert!(matches!(
        t.take_events().as_slice(),
        [ClientEvent::Attached(_)]
    ));
    req.correlation_id
}

#[test]
fn auto_client_id_is_non_zero_and_renewed_on_client_id_already_attached() {
    let mut t = T::new(config(Role::Consumer));
    t.cycle();
    let first = t.last_attach();
    assert_ne!(first.client_id, 0, "B.2: chosen before any attach");
    t.push(&error_response(
        first.correlation_id,
        ResponseCode::Rejected,
        "client_id already attached",
    ));
    t.cycle();
    assert_eq!(t.client.state(), ClientState::Backoff);
    t.advance(10);
    let second = t.last_attach();
    assert_ne!(
        second.client_id, first.client_id,
        "a new id after the collision"
    );
    assert_ne!(second.correlation_id, first.correlation_id);
    // an explicit client id is kept
    let mut cfg = config(Role::Consumer);
    cfg.client_id = 77;
    let mut t = T::new(cfg);
    t.cycle();
    let a = t.last_attach();
    t.push(&error_response(
        a.correlation_id,
        ResponseCode::Rejected,
        "client_id already attached",
    ));
    t.cycle();
    t.advance(10);
    assert_eq!(t.last_attach().client_id, 77);
}

#[test]
fn duplicates_after_an_accepted_ok_are_ignored() {
    let mut t = T::new(config(Role::Consumer));
    let corr = attached(&mut t, 5, 1);
    t.push(&error_response(
        corr,
        ResponseCode::Rejected,
        "late duplicate",
    ));
    t.push(&ok_response(corr, 6, 1, &pools(8), None));
    t.cycle();
    assert!(t.take_events().is_empty());
    assert_eq!(
        t.client.lease().unwrap().lease_id,
        5,
        "the accepted OK stands"
    );
    assert_eq!(t.client.counters().duplicates_ignored, 2);
}

#[test]
fn responses_for_other_correlation_ids_are_not_ours() {
    let mut t = T::new(config(Role::Consumer));
    t.cycle();
    let req = t.last_attach();
    t.push(&ok_response(
        req.correlation_id + 1_000,
        5,
        1,
        &pools(8),
        None,
    ));
    t.push(&error_response(
        req.correlation_id - 1,
        ResponseCode::Rejected,
        "someone else's",
    ));
    t.cycle();
    assert_eq!(t.client.state(), ClientState::Attaching);
    assert!(t.take_events().is_empty());
}

#[test]
fn attach_times_out_then_retries_with_growing_backoff() {
    let mut t = T::new(config(Role::Producer));
    t.cycle();
    let first = t.last_attach();
    t.advance(100);
    assert!(t.take_events().contains(&ClientEvent::AttachTimedOut));
    assert_eq!(t.client.state(), ClientState::Backoff);
    t.advance(10);
    let second = t.last_attach();
    assert!(
        second.correlation_id > first.correlation_id,
        "never reused while outstanding"
    );
    // a late OK for the abandoned attach is still taken
    t.push(&ok_response(first.correlation_id, 9, 1, &pools(8), None));
    t.cycle();
    assert_eq!(t.client.lease().unwrap().lease_id, 9);
    // and the current attach's answer is then ignored
    t.push(&error_response(
        second.correlation_id,
        ResponseCode::Rejected,
        "client_id already attached",
    ));
    t.cycle();
    assert_eq!(t.client.state(), ClientState::Attached);
}

#[test]
fn invalid_ok_responses_are_protocol_errors_and_the_lease_is_given_back() {
    type Mutation = Box<dyn Fn(&mut ShmAttachResponse<'static>)>;
    let bad: Vec<(Mutation, &str)> = vec![
        (Box::new(|r| r.epoch = None), "epoch"),
        (Box::new(|r| r.lease_id = None), "leaseId"),
        (
            Box::new(|r| r.header_slot_bytes = Some(128)),
            "headerSlotBytes",
        ),
        (Box::new(|r| r.payload_pools = Group::default()), "empty"),
        (
            Box::new(|r| r.payload_pools = Group::Owned(pools(16))),
            "poolNslots",
        ),
        (
            Box::new(|r| r.header_region_uri = Bytes::from("  ")),
            "headerRegionUri",
        ),
        (
            Box::new(|r| r.header_region_uri = Bytes::from("file:///x")),
            "headerRegionUri",
        ),
        (
            Box::new(|r| {
                r.payload_pools = Group::Owned(vec![PayloadPool {
                    region_uri: Bytes::EMPTY,
                    ..pools(8).remove(0)
                }])
            }),
            "regionUri",
        ),
    ];
    for (mutate, what) in bad {
        let mut t = T::new(config(Role::Consumer));
        t.cycle();
        let req = t.last_attach();
        let mut r = ok_response(req.correlation_id, 5, 1, &pools(8), None);
        mutate(&mut r);
        t.push(&r);
        t.cycle();
        let events = t.take_events();
        assert!(
            matches!(&events[..], [ClientEvent::ProtocolError(e)] if e.to_string().contains(what)),
            "{what}: {events:?}"
        );
        assert_eq!(t.client.state(), ClientState::Backoff);
        if r.lease_id.is_some() {
            let sent = t.sent();
            assert!(
                sent.iter()
                    .any(|m| matches!(m, AnyMessage::ShmDetachRequest(d) if d.lease_id == 5)),
                "{what}: dropped lease given back"
            );
        }
        t.advance(10);
        assert_eq!(t.client.state(), ClientState::Attaching, "reattaches");
    }
}

#[test]
fn uris_outside_the_allowed_base_dirs_are_protocol_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(Role::Consumer);
    cfg.allowed_base_dirs = Some(tensorpool_shm::AllowedBaseDirs::new([dir.path()]).unwrap());
    let mut t = T::new(cfg);
    t.cycle();
    let req = t.last_attach();
    t.push(&ok_response(req.correlation_id, 5, 1, &pools(8), None));
    t.cycle();
    assert!(matches!(
        &t.take_events()[..],
        [ClientEvent::ProtocolError(ProtocolError::Uri { .. })]
    ));
}

#[test]
fn keepalives_on_the_interval_and_before_a_given_expiry() {
    let mut t = T::new(config(Role::Consumer));
    t.cycle();
    let req = t.last_attach();
    // the driver says: expires 60 ms from now (shorter than our 100 ms interval)
    t.push(&ok_response(
        req.correlation_id,
        5,
        1,
        &pools(8),
        Some(T0 + 60 * MS),
    ));
    t.cycle();
    let mut keepalive_times = Vec::new();
    for _ in 0..300 {
        t.now += MS;
        t.client.transport_mut().sent.clear();
        t.cycle();
        if t.sent().iter().any(|m| matches!(m, AnyMessage::ShmLeaseKeepalive(k) if k.lease_id == 5 && k.client_id == req.client_id)) {
            keepalive_times.push((t.now - T0) / MS);
        }
        // the driver announces, so it is not lost
        if t.now.is_multiple_of(50 * MS) {
            let a = announce(1, t.now);
            t.push(&a);
        }
    }
    assert!(
        keepalive_times[0] < 60,
        "first keepalive before the hard deadline: {keepalive_times:?}"
    );
    assert!(
        keepalive_times.windows(2).all(|w| w[1] - w[0] <= 60),
        "{keepalive_times:?}"
    );
    assert_eq!(t.client.state(), ClientState::Attached);
    // without an expiry: exactly on the interval
    let mut t = T::new(config(Role::Consumer));
    attached(&mut t, 5, 1);
    let mut times = Vec::new();
    for _ in 0..350 {
        t.now += MS;
        t.client.transport_mut().sent.clear();
        t.cycle();
        if t.sent()
            .iter()
            .any(|m| matches!(m, AnyMessage::ShmLeaseKeepalive(_)))
        {
            times.push((t.now - T0) / MS);
        }
        if t.now.is_multiple_of(50 * MS) {
            let a = announce(1, t.now);
            t.push(&a);
        }
    }
    assert_eq!(times, vec![100, 200, 300]);
}

fn announce(epoch: u64, now: u64) -> ShmPoolAnnounce<'static> {
    ShmPoolAnnounce {
        stream_id: STREAM,
        producer_id: 0,
        epoch,
        announce_timestamp_ns: now,
        announce_clock_domain: ClockDomain::Monotonic,
        layout_version: 1,
        header_nslots: 8,
        header_slot_bytes: 256,
        payload_pools: Group::Owned(pools(8)),
        header_region_uri: Bytes::from("shm:file?path=/dev/shm/x/header.ring"),
    }
}

fn revoked(
    lease_id: u64,
    client_id: u32,
    role: Role,
    reason: LeaseRevokeReason,
) -> ShmLeaseRevoked<'static> {
    ShmLeaseRevoked {
        timestamp_ns: 0,
        lease_id,
        stream_id: STREAM,
        client_id,
        role,
        reason,
        error_message: Bytes::from("x"),
    }
}

#[test]
fn own_revocation_reattaches_other_leases_do_not_matter() {
    let mut t = T::new(config(Role::Producer));
    attached(&mut t, 5, 1);
    let me = t.client.client_id();
    t.push(&revoked(
        6,
        me + 1,
        Role::Consumer,
        LeaseRevokeReason::Expired,
    ));
    t.push(&revoked(
        5,
        me + 1,
        Role::Producer,
        LeaseRevokeReason::Expired,
    )); // same id, other client
    t.cycle();
    assert_eq!(t.client.state(), ClientState::Attached);
    t.push(&revoked(5, me, Role::Producer, LeaseRevokeReason::Revoked));
    t.cycle();
    assert!(matches!(
        &t.take_events()[..],
        [ClientEvent::LeaseRevoked {
            reason: LeaseRevokeReason::Revoked,
            ..
        }]
    ));
    assert_eq!(t.client.state(), ClientState::Backoff);
    t.advance(10);
    assert_eq!(t.client.state(), ClientState::Attaching);
}

#[test]
fn revocations_with_unknown_reason_or_role_are_rejected() {
    let mut t = T::new(config(Role::Consumer));
    attached(&mut t, 5, 1);
    let me = t.client.client_id();
    let mut bad_reason = revoked(5, me, Role::Consumer, LeaseRevokeReason::Expired)
        .encode_to_vec()
        .unwrap();
    bad_reason[8 + 25] = 9; // reason
    let mut bad_role = revoked(5, me, Role::Consumer, LeaseRevokeReason::Expired)
        .encode_to_vec()
        .unwrap();
    bad_role[8 + 24] = 9; // role
    t.client
        .transport_mut()
        .inbound
        .extend([bad_reason, bad_role]);
    t.cycle();
    assert_eq!(t.client.state(), ClientState::Attached);
    assert_eq!(t.client.counters().rejected_messages, 2);
}

#[test]
fn producer_revocation_waits_for_the_bumped_announce() {
    let mut t = T::new(config(Role::Consumer));
    attached(&mut t, 5, 10);
    t.push(&revoked(
        99,
        1234,
        Role::Producer,
        LeaseRevokeReason::Expired,
    ));
    t.cycle();
    assert!(matches!(
        &t.take_events()[..],
        [ClientEvent::ProducerRevoked { lease_id: 99 }]
    ));
    let a = announce(10, t.now);
    t.push(&a); // same epoch: not the bump
    t.advance(20);
    assert!(t.take_events().is_empty());
    let a = announce(11, t.now);
    t.push(&a);
    t.cycle();
    let events = t.take_events();
    assert!(
        matches!(&events[..], [ClientEvent::EpochChanged(r)] if r.epoch == 11),
        "{events:?}"
    );
    assert_eq!(t.client.lease().unwrap().regions.epoch, 11);
    // without the bump within 3 announce periods: drop and reattach
    t.push(&revoked(
        100,
        1234,
        Role::Producer,
        LeaseRevokeReason::Detached,
    ));
    t.cycle();
    for _ in 0..6 {
        let a = announce(11, t.now);
        t.push(&a);
        t.advance(50);
    }
    let events = t.take_events();
    assert!(
        events.contains(&ClientEvent::LeaseLost(LeaseLost::RemapTimeout)),
        "{events:?}"
    );
}

#[test]
fn stale_announces_and_lower_epochs_are_ignored() {
    let mut t = T::new(config(Role::Consumer));
    attached(&mut t, 5, 10);
    t.advance(400);
    let old = announce(12, t.now - 350 * MS); // older than 3 periods
    t.push(&old);
    let lower = announce(9, t.now);
    t.push(&lower);
    t.cycle();
    assert!(t.take_events().is_empty());
    assert_eq!(t.client.counters().stale_announces, 1);
}

#[test]
fn driver_shutdown_and_silence_void_the_lease() {
    let mut t = T::new(config(Role::Consumer));
    attached(&mut t, 5, 1);
    t.push(&ShmDriverShutdown {
        timestamp_ns: 0,
        reason: ShutdownReason::Admin,
        error_message: Bytes::from("bye"),
    });
    t.cycle();
    assert!(matches!(
        &t.take_events()[..],
        [ClientEvent::DriverShutdown {
            reason: ShutdownReason::Admin,
            ..
        }]
    ));
    assert_eq!(t.client.state(), ClientState::Backoff);

    let mut t = T::new(config(Role::Consumer));
    attached(&mut t, 5, 1);
    t.advance(499);
    assert_eq!(t.client.state(), ClientState::Attached);
    t.advance(2);
    assert!(t.take_events().contains(&ClientEvent::DriverLost));
}

#[test]
fn keepalive_send_failure_is_fatal_for_the_lease() {
    let mut t = T::new(config(Role::Consumer));
    attached(&mut t, 5, 1);
    t.client.transport_mut().sent.fail_with = Some(tensorpool_aeron::PublishError::NotConnected);
    t.advance(100);
    assert!(
        t.take_events()
            .contains(&ClientEvent::LeaseLost(LeaseLost::KeepaliveFailed))
    );
}

#[test]
fn newer_schema_versions_are_rejected() {
    let mut t = T::new(config(Role::Consumer));
    t.cycle();
    let req = t.last_attach();
    let mut buf = ok_response(req.correlation_id, 5, 1, &pools(8), None)
        .encode_to_vec()
        .unwrap();
    buf[6] = 2;
    t.client.transport_mut().inbound.push_back(buf);
    t.cycle();
    assert_eq!(t.client.state(), ClientState::Attaching);
    assert_eq!(t.client.counters().rejected_messages, 1);
}

#[test]
fn close_detaches() {
    let mut t = T::new(config(Role::Consumer));
    attached(&mut t, 5, 1);
    t.client.close();
    t.cycle();
    let detach = t.sent().into_iter().find_map(|m| match m {
        AnyMessage::ShmDetachRequest(d) => Some(d),
        _ => None,
    });
    let d: ShmDetachRequest = detach.expect("a detach request");
    assert_eq!(
        (d.lease_id, d.stream_id, d.role),
        (5, STREAM, Role::Consumer)
    );
    t.push(&tensorpool_codec::driver::ShmDetachResponse {
        correlation_id: d.correlation_id,
        code: ResponseCode::Ok,
        error_message: Bytes::EMPTY,
    });
    t.cycle();
    assert_eq!(t.take_events(), vec![ClientEvent::Detached]);
    assert_eq!(t.client.state(), ClientState::Closed);
    let _ = ShmLeaseKeepalive {
        lease_id: 0,
        stream_id: 0,
        client_id: 0,
        role: Role::Consumer,
        client_timestamp_ns: 0,
    };
}
