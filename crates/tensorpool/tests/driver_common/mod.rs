//! Driver test harness: a [`DriverCore`] driven by hand with a manual clock and a recording
//! sink; every message the driver sends is decoded into an owned [`Out`].
#![allow(dead_code)]

use tempfile::TempDir;
use tensorpool::config::NoEnv;
use tensorpool::control::RecordingSink;
use tensorpool::driver::{DriverConfig, DriverCore, Outputs};
use tensorpool_agent::{Clock, ManualClock};
use tensorpool_codec::driver::{
    HugepagesPolicy, LeaseRevokeReason, PublishMode, ResponseCode, Role, ShmAttachRequest,
    ShmDetachRequest, ShmDriverShutdownRequest, ShmLeaseKeepalive, ShutdownReason,
};
use tensorpool_codec::{AnyMessage, Message};

/// Periods used by the in-process tests (ms).
pub const KEEPALIVE_MS: u64 = 100;
pub const GRACE: u64 = 3;
pub const ANNOUNCE_MS: u64 = 100;
pub const MS: u64 = 1_000_000;
/// The manual clock starts here (epochs are max(prev + 1, now)).
pub const T0: u64 = 1_000_000_000_000;

/// A decoded outbound message.
#[derive(Debug, Clone, PartialEq)]
pub enum Out {
    Attach(AttachResp),
    Detach {
        correlation_id: i64,
        code: ResponseCode,
        message: String,
    },
    Revoked {
        lease_id: u64,
        stream_id: u32,
        client_id: u32,
        role: Role,
        reason: LeaseRevokeReason,
    },
    Announce {
        stream_id: u32,
        epoch: u64,
        producer_id: u32,
        header_uri: String,
        pool_uris: Vec<String>,
    },
    Shutdown {
        reason: ShutdownReason,
        message: String,
    },
    Other(&'static str),
}

/// An owned `ShmAttachResponse`.
#[derive(Debug, Clone, PartialEq)]
pub struct AttachResp {
    pub correlation_id: i64,
    pub code: ResponseCode,
    pub lease_id: Option<u64>,
    pub expiry: Option<u64>,
    pub stream_id: Option<u32>,
    pub epoch: Option<u64>,
    pub layout_version: Option<u32>,
    pub header_nslots: Option<u32>,
    pub header_slot_bytes: Option<u16>,
    pub node_id: Option<u32>,
    pub pools: Vec<(u16, u32, u32, String)>,
    pub header_uri: String,
    pub error: String,
}

fn text(b: &tensorpool_codec::Bytes<'_>) -> String {
    b.as_str().unwrap().to_owned()
}

pub fn decode(buf: &[u8]) -> Out {
    match AnyMessage::decode(buf).expect("driver sent an undecodable message") {
        AnyMessage::ShmAttachResponse(r) => Out::Attach(AttachResp {
            correlation_id: r.correlation_id,
            code: r.code,
            lease_id: r.lease_id,
            expiry: r.lease_expiry_timestamp_ns,
            stream_id: r.stream_id,
            epoch: r.epoch,
            layout_version: r.layout_version,
            header_nslots: r.header_nslots,
            header_slot_bytes: r.header_slot_bytes,
            node_id: r.node_id,
            pools: r
                .payload_pools
                .iter()
                .map(|p| {
                    (
                        p.pool_id,
                        p.pool_nslots,
                        p.stride_bytes,
                        text(&p.region_uri),
                    )
                })
                .collect(),
            header_uri: text(&r.header_region_uri),
            error: text(&r.error_message),
        }),
        AnyMessage::ShmDetachResponse(r) => Out::Detach {
            correlation_id: r.correlation_id,
            code: r.code,
            message: text(&r.error_message),
        },
        AnyMessage::ShmLeaseRevoked(r) => Out::Revoked {
            lease_id: r.lease_id,
            stream_id: r.stream_id,
            client_id: r.client_id,
            role: r.role,
            reason: r.reason,
        },
        AnyMessage::ShmPoolAnnounce(a) => Out::Announce {
            stream_id: a.stream_id,
            epoch: a.epoch,
            producer_id: a.producer_id,
            header_uri: text(&a.header_region_uri),
            pool_uris: a
                .payload_pools
                .iter()
                .map(|p| text(&p.region_uri))
                .collect(),
        },
        AnyMessage::ShmDriverShutdown(s) => Out::Shutdown {
            reason: s.reason,
            message: text(&s.error_message),
        },
        other => Out::Other(other.name()),
    }
}

/// The TOML of a test driver rooted in `base`: static stream 10000 (2 pools, 8 slots) and
/// 10001 (a profile without pools); `policies_extra` goes into `[policies]`, `extra` at the end.
pub fn toml(base: &std::path::Path, policies_extra: &str, extra: &str) -> String {
    format!(
        r#"
[driver]
instance_id = "test-driver"
[shm]
base_dir = "{base}"
[policies]
announce_period_ms = {ANNOUNCE_MS}
lease_keepalive_interval_ms = {KEEPALIVE_MS}
lease_expiry_grace_intervals = {GRACE}
shutdown_timeout_ms = 200
shutdown_token = "s3cret"
prefault_shm = false
{policies_extra}
[profiles.small]
header_nslots = 8
payload_pools = [ {{ pool_id = 1, stride_bytes = 256 }}, {{ pool_id = 2, stride_bytes = 1024 }} ]
[profiles.empty]
header_nslots = 8
payload_pools = []
[streams.cam]
stream_id = 10000
profile = "small"
[streams.nopools]
stream_id = 10001
profile = "empty"
{extra}
"#,
        base = base.display()
    )
}

/// A private base dir under /dev/shm (removed on drop).
pub fn shm_tempdir() -> TempDir {
    let base = std::path::Path::new("/dev/shm");
    if base.is_dir() {
        tempfile::Builder::new()
            .prefix("tp-driver-test-")
            .tempdir_in(base)
            .unwrap()
    } else {
        tempfile::tempdir().unwrap()
    }
}

/// The driver core under test with its clock and sink.
pub struct Harness {
    pub core: DriverCore,
    pub sink: RecordingSink,
    pub clock: ManualClock,
    next_corr: i64,
    pub dir: TempDir,
}

impl Harness {
    pub fn new() -> Self {
        Self::with("", "")
    }

    pub fn with(policies_extra: &str, extra: &str) -> Self {
        Self::in_dir(shm_tempdir(), policies_extra, extra, T0)
    }

    pub fn in_dir(dir: TempDir, policies_extra: &str, extra: &str, start: u64) -> Self {
        let text = toml(dir.path(), policies_extra, extra);
        Self::from_text(dir, &text, start)
    }

    /// The default test TOML with `edit` applied to it.
    pub fn edited(edit: impl FnOnce(String) -> String) -> Self {
        Self::edited_in(shm_tempdir(), edit)
    }

    /// The default test TOML rooted in `dir`, with `edit` applied to it.
    pub fn edited_in(dir: TempDir, edit: impl FnOnce(String) -> String) -> Self {
        let text = edit(toml(dir.path(), "", ""));
        Self::from_text(dir, &text, T0)
    }

    pub fn from_text(dir: TempDir, text: &str, start: u64) -> Self {
        let cfg = DriverConfig::from_toml(text, &NoEnv).unwrap();
        let clock = ManualClock::new(start);
        let core = DriverCore::new(cfg, clock.nanos()).unwrap();
        Self {
            core,
            sink: RecordingSink::with_capacity(64, 4096),
            clock,
            next_corr: 100,
            dir,
        }
    }

    pub fn now(&self) -> u64 {
        self.clock.nanos()
    }

    pub fn corr(&mut self) -> i64 {
        self.next_corr += 1;
        self.next_corr
    }

    /// Feeds raw bytes and runs one tick; returns what the driver sent.
    pub fn feed(&mut self, buf: &[u8]) -> Vec<Out> {
        self.sink.clear();
        let now = self.now();
        let mut out = Outputs::single(&mut self.sink);
        self.core.on_control(buf, now, &mut out);
        self.core.on_tick(now, &mut out);
        self.core.check_invariants().unwrap();
        self.sink.messages().map(decode).collect()
    }

    pub fn send<'a, M: Message<'a>>(&mut self, m: &M) -> Vec<Out> {
        let buf = m.encode_to_vec().unwrap();
        self.feed(&buf)
    }

    /// Advances the clock by `ms` in 10 ms steps, ticking; returns everything sent.
    pub fn advance(&mut self, ms: u64) -> Vec<Out> {
        let mut all = Vec::new();
        for _ in 0..ms.div_ceil(10) {
            self.clock.advance(10 * MS);
            self.sink.clear();
            let now = self.now();
            let mut out = Outputs::single(&mut self.sink);
            self.core.on_tick(now, &mut out);
            self.core.check_invariants().unwrap();
            all.extend(self.sink.messages().map(decode));
        }
        all
    }

    pub fn attach_req(&mut self, client_id: u32, stream_id: u32, role: Role) -> ShmAttachRequest {
        ShmAttachRequest {
            correlation_id: self.corr(),
            stream_id,
            client_id,
            role,
            expected_layout_version: 0,
            publish_mode: Some(PublishMode::RequireExisting),
            require_hugepages: HugepagesPolicy::Unspecified,
            desired_node_id: None,
        }
    }

    /// Sends an attach and returns its response (asserting exactly one, correlation echoed).
    pub fn attach_with(&mut self, req: &ShmAttachRequest) -> (AttachResp, Vec<Out>) {
        let outs = self.send(req);
        let resp: Vec<AttachResp> = outs
            .iter()
            .filter_map(|o| match o {
                Out::Attach(r) => Some(r.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(resp.len(), 1, "exactly one response: {outs:?}");
        assert_eq!(
            resp[0].correlation_id, req.correlation_id,
            "correlationId echoed"
        );
        (resp[0].clone(), outs)
    }

    pub fn attach(&mut self, client_id: u32, stream_id: u32, role: Role) -> AttachResp {
        let req = self.attach_req(client_id, stream_id, role);
        self.attach_with(&req).0
    }

    pub fn attach_ok(&mut self, client_id: u32, stream_id: u32, role: Role) -> AttachResp {
        let r = self.attach(client_id, stream_id, role);
        assert_eq!(r.code, ResponseCode::Ok, "{r:?}");
        r
    }

    pub fn keepalive(&mut self, r: &AttachResp, client_id: u32, role: Role) -> Vec<Out> {
        let now = self.now();
        self.send(&ShmLeaseKeepalive {
            lease_id: r.lease_id.unwrap(),
            stream_id: r.stream_id.unwrap(),
            client_id,
            role,
            client_timestamp_ns: now,
        })
    }

    pub fn detach(&mut self, r: &AttachResp, client_id: u32, role: Role) -> Vec<Out> {
        let correlation_id = self.corr();
        self.send(&ShmDetachRequest {
            correlation_id,
            lease_id: r.lease_id.unwrap(),
            stream_id: r.stream_id.unwrap(),
            client_id,
            role,
        })
    }

    pub fn shutdown_request(&mut self, token: &str, reason: ShutdownReason) -> Vec<Out> {
        let correlation_id = self.corr();
        self.send(&ShmDriverShutdownRequest {
            correlation_id,
            reason,
            token: token.into(),
            error_message: "test shutdown".into(),
        })
    }

    /// Epoch directories on disk for `stream_id`, ascending.
    pub fn epoch_dirs(&self, stream_id: u32) -> Vec<u64> {
        let dir = self.core.config().layout().unwrap().stream_dir(stream_id);
        let mut v: Vec<u64> = std::fs::read_dir(dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        v.sort_unstable();
        v
    }
}

pub fn announces(outs: &[Out]) -> Vec<(u32, u64, u32)> {
    outs.iter()
        .filter_map(|o| match o {
            Out::Announce {
                stream_id,
                epoch,
                producer_id,
                ..
            } => Some((*stream_id, *epoch, *producer_id)),
            _ => None,
        })
        .collect()
}

pub fn revocations(outs: &[Out]) -> Vec<(u64, LeaseRevokeReason)> {
    outs.iter()
        .filter_map(|o| match o {
            Out::Revoked {
                lease_id, reason, ..
            } => Some((*lease_id, *reason)),
            _ => None,
        })
        .collect()
}
