//! The driver's control-plane handlers under arbitrary input: raw bytes, and structured
//! mutations of valid attach / keepalive / detach / shutdown requests, interleaved with clock
//! advances. Never panics, and after every step: at most one producer lease per stream,
//! lease ids unique (and never reused across the run), epochs monotonic per stream, the
//! stream bookkeeping equal to the lease table (`DriverCore::check_invariants`).
#![no_main]

use std::collections::{HashMap, HashSet};

use libfuzzer_sys::fuzz_target;
use tensorpool::config::NoEnv;
use tensorpool::control::RecordingSink;
use tensorpool::driver::{DriverConfig, DriverCore, Outputs};
use tensorpool_codec::driver::{
    HugepagesPolicy, PublishMode, ResponseCode, Role, ShmAttachRequest, ShmAttachResponse,
    ShmDetachRequest, ShmDriverShutdownRequest, ShmLeaseKeepalive, ShutdownReason,
};
use tensorpool_codec::{AnyMessage, Message};

const STREAMS: [u32; 5] = [10_000, 10_001, 20_000, 20_001, 4_242];

struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn take(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.0.len());
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head
    }
}

fn config(base: &std::path::Path) -> DriverConfig {
    let text = format!(
        r#"
[driver]
stream_id_range = "20000-20001"
[shm]
base_dir = "{}"
[policies]
allow_dynamic_streams = true
announce_period_ms = 10
lease_keepalive_interval_ms = 10
lease_expiry_grace_intervals = 2
shutdown_timeout_ms = 20
shutdown_token = "tok"
prefault_shm = false
epoch_gc_keep = 1
epoch_gc_min_age_ns = 0
node_id_reuse_cooldown_ms = 5
[profiles.p]
header_nslots = 4
payload_pools = [{{ pool_id = 1, stride_bytes = 64 }}]
[profiles.none]
header_nslots = 4
payload_pools = []
[streams.a]
stream_id = 10000
profile = "p"
[streams.b]
stream_id = 10001
profile = "none"
"#,
        base.display()
    );
    DriverConfig::from_toml(&text, &NoEnv).expect("fuzz config")
}

fn role(b: u8) -> Role {
    if b & 1 == 0 {
        Role::Producer
    } else {
        Role::Consumer
    }
}

/// One structured request from the input (client ids, streams and leases from small sets,
/// so that requests collide).
fn structured(op: u8, input: &mut Bytes<'_>, leases: &[(u64, u32, u32, Role)]) -> Option<Vec<u8>> {
    let a = input.u8()?;
    let b = input.u8()?;
    let client_id = u32::from(a % 6);
    let stream_id = STREAMS[usize::from(b) % STREAMS.len()];
    let lease = leases.get(usize::from(b) % leases.len().max(1)).copied();
    let msg = match op % 4 {
        0 => ShmAttachRequest {
            correlation_id: i64::from(a) << 8 | i64::from(b),
            stream_id,
            client_id,
            role: role(a >> 3),
            expected_layout_version: [0, 1, 2][usize::from(b >> 4) % 3],
            publish_mode: [
                None,
                Some(PublishMode::RequireExisting),
                Some(PublishMode::ExistingOrCreate),
            ][usize::from(a >> 4) % 3],
            require_hugepages: [
                HugepagesPolicy::Unspecified,
                HugepagesPolicy::Standard,
                HugepagesPolicy::Hugepages,
            ][usize::from(b >> 6) % 3],
            desired_node_id: (a & 0x40 != 0).then_some(u32::from(b % 4)),
        }
        .encode_to_vec(),
        1 => {
            let (lease_id, stream_id, client_id, role) =
                lease.unwrap_or((u64::from(a), stream_id, client_id, role(a)));
            // sometimes exact, sometimes off by one field
            let off = a % 4;
            ShmLeaseKeepalive {
                lease_id,
                stream_id: if off == 1 { stream_id ^ 1 } else { stream_id },
                client_id: if off == 2 { client_id + 1 } else { client_id },
                role: if off == 3 {
                    self::role(u8::from(role == Role::Consumer) ^ 1)
                } else {
                    role
                },
                client_timestamp_ns: 0,
            }
            .encode_to_vec()
        }
        2 => {
            let (lease_id, stream_id, client_id, role) =
                lease.unwrap_or((u64::from(a), stream_id, client_id, role(a)));
            ShmDetachRequest {
                correlation_id: i64::from(b),
                lease_id: if a % 5 == 0 { lease_id + 1 } else { lease_id },
                stream_id,
                client_id,
                role,
            }
            .encode_to_vec()
        }
        _ => ShmDriverShutdownRequest {
            correlation_id: 1,
            reason: ShutdownReason::Admin,
            token: if a % 3 == 0 {
                "tok".into()
            } else {
                "nope".into()
            },
            error_message: "".into(),
        }
        .encode_to_vec(),
    };
    let mut buf = msg.ok()?;
    // mutate a few bytes now and then (header fields included)
    let flips = input.u8()? % 4;
    for _ in 0..flips {
        let at = usize::from(input.u8()?) % buf.len();
        buf[at] ^= input.u8()?;
    }
    Some(buf)
}

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::Builder::new()
        .prefix("tp-fuzz-driver-")
        .tempdir_in("/dev/shm")
        .expect("tempdir");
    let mut now = 1_000_000_000u64;
    let mut core = DriverCore::new(config(dir.path()), now).expect("driver core");
    let mut sink = RecordingSink::with_capacity(32, 512);
    let mut input = Bytes(data);
    let mut leases: Vec<(u64, u32, u32, Role)> = Vec::new();
    let mut granted: HashSet<u64> = HashSet::new();
    let mut epochs: HashMap<u32, u64> = HashMap::new();
    while let Some(op) = input.u8() {
        sink.clear();
        let mut out = Outputs::single(&mut sink);
        match op >> 5 {
            0 | 1 => {
                let len = usize::from(input.u8().unwrap_or(0));
                let raw = input.take(len).to_vec();
                core.on_control(&raw, now, &mut out);
            }
            2..=5 => {
                let Some(buf) = structured(op, &mut input, &leases) else {
                    break;
                };
                core.on_control(&buf, now, &mut out);
            }
            _ => now += u64::from(op & 0x1f) * 2_000_000,
        }
        core.on_tick(now, &mut out);
        core.check_invariants().expect("driver invariant");
        for m in sink.messages() {
            let msg = AnyMessage::decode(m).expect("the driver sends decodable messages");
            if let AnyMessage::ShmAttachResponse(r) = &msg
                && r.code == ResponseCode::Ok
            {
                let r: &ShmAttachResponse<'_> = r;
                let id = r.lease_id.expect("OK has a lease id");
                let lease = core.lease(id).expect("an OK lease is active");
                assert!(
                    granted.insert(id) || leases.iter().any(|l| l.0 == id),
                    "lease id {id} reused"
                );
                if !leases.iter().any(|l| l.0 == id) {
                    leases.push((id, lease.stream_id, lease.client_id, lease.role));
                }
            }
        }
        leases.retain(|l| core.lease(l.0).is_some());
        for s in STREAMS {
            let e = core.last_epoch(s);
            let prev = epochs.entry(s).or_insert(0);
            if e != 0 {
                assert!(e >= *prev, "stream {s}: epoch went from {prev} to {e}");
                *prev = e;
            }
        }
        if core.is_stopped() {
            break;
        }
    }
});
