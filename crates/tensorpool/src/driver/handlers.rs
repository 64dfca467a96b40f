//! Inbound control messages: one `on_<message>` per request of the driver schema (901), plus
//! the dispatch that gates on schema id, version and template id (PITFALLS #5, Driver Model
//! §4.4a). Responses broadcast by the driver itself come back on the shared control stream
//! and are ignored here (only requests are handled).

use std::fmt;

use tensorpool_codec::driver::{
    self, HugepagesPolicy, LeaseRevokeReason, PublishMode, ResponseCode, Role, ShmAttachRequest,
    ShmDetachRequest, ShmDriverShutdownRequest, ShmLeaseKeepalive,
};
use tensorpool_codec::{DecodeError, HEADER_LEN, Message, MessageHeader, admin};
use tensorpool_shm::{LAYOUT_VERSION, LayoutError};

use super::core::DriverCore;
use super::files::{LiveEpoch, ProvisionError, next_epoch, provision};
use super::leases::Lease;
use super::proxy::{
    Outputs, send_attach_error, send_attach_ok, send_detach_response, send_lease_revoked,
};
use super::state::Lifecycle;
use super::stream_ids::next_free;
use super::streams::{ProducerRef, Stream};
use crate::control::{Gate, gate};

/// Why an attach was refused, rendered into `errorMessage` without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Why {
    Draining,
    ClientIdZero,
    ClientIdAttached,
    Hugepages(HugepagesPolicy, bool),
    LayoutVersion(u32),
    NotProvisioned(u32),
    NoRange,
    RangeExhausted,
    NoPools(u32),
    NodeIdTaken(u32),
    ProducerExists(u32),
    Provision(u32),
    /// No room on the file system for a new epoch of the stream, even after a GC pass.
    NoSpace {
        stream_id: u32,
        needed: u64,
        available: u64,
    },
    Exhausted,
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Why::Draining => f.write_str("driver is shutting down"),
            Why::ClientIdZero => f.write_str("client_id must be non-zero"),
            // exact text of Driver Model Appendix B.2: clients match on it
            Why::ClientIdAttached => f.write_str("client_id already attached"),
            Why::Hugepages(HugepagesPolicy::Standard, _) => {
                f.write_str("standard-page regions unavailable: shm.base_dir is on hugetlbfs")
            }
            Why::Hugepages(p, _) => write!(
                f,
                "hugepage-backed regions unavailable (requireHugepages={p:?}): shm.base_dir is not on hugetlbfs"
            ),
            Why::LayoutVersion(v) => write!(
                f,
                "expectedLayoutVersion {v} does not match the active layout version {LAYOUT_VERSION}"
            ),
            Why::NotProvisioned(s) => write!(
                f,
                "stream {s} is not provisioned (publishMode REQUIRE_EXISTING or dynamic streams disabled)"
            ),
            Why::NoRange => f.write_str(
                "dynamic stream creation needs driver.stream_id_range, which is not configured",
            ),
            Why::RangeExhausted => f.write_str("driver.stream_id_range is exhausted"),
            Why::NoPools(s) => write!(f, "stream {s} has no payload pools (invalid in v1.0)"),
            Why::NodeIdTaken(n) => write!(f, "desiredNodeId {n} is unavailable"),
            Why::ProducerExists(s) => write!(
                f,
                "stream {s} already has a producer (exclusive producer rule)"
            ),
            Why::Provision(s) => write!(
                f,
                "creating the regions of stream {s} failed (see the driver log)"
            ),
            Why::NoSpace {
                stream_id,
                needed,
                available,
            } => write!(
                f,
                "no room for a new epoch of stream {stream_id}: it needs {needed} bytes, {available} are free: {} bytes missing on the file system of shm.base_dir",
                needed.saturating_sub(available)
            ),
            Why::Exhausted => f.write_str("lease or node ids exhausted"),
        }
    }
}

type Reject = (ResponseCode, Why);

fn rejected(why: Why) -> Reject {
    (ResponseCode::Rejected, why)
}

/// The correlation id of a request whose body could not be decoded: its first 8 bytes
/// (the first field of every correlated request), if the fixed block holds them.
fn raw_correlation_id(buf: &[u8], h: &MessageHeader) -> Option<i64> {
    if h.block_length < 8 {
        return None;
    }
    let b: [u8; 8] = buf.get(HEADER_LEN..HEADER_LEN + 8)?.try_into().ok()?;
    Some(i64::from_le_bytes(b))
}

impl DriverCore {
    /// Handles one inbound control-stream message; returns the work done (0: ignored).
    pub fn on_control(&mut self, buf: &[u8], now_ns: u64, out: &mut Outputs<'_>) -> usize {
        match gate(buf, driver::SCHEMA_ID, driver::SCHEMA_VERSION) {
            Gate::Accept(h) => self.on_driver_message(&h, buf, now_ns, out),
            Gate::NewerVersion(h) => self.on_newer_version(&h, buf, out),
            Gate::OtherSchema => match gate(buf, admin::SCHEMA_ID, admin::SCHEMA_VERSION) {
                Gate::Accept(h) => self.on_admin_message(&h, buf, now_ns, out),
                _ => 0,
            },
            Gate::Truncated(_) => 0,
        }
    }

    fn on_driver_message(
        &mut self,
        h: &MessageHeader,
        buf: &[u8],
        now_ns: u64,
        out: &mut Outputs<'_>,
    ) -> usize {
        match h.template_id {
            ShmAttachRequest::TEMPLATE_ID => match ShmAttachRequest::decode(buf) {
                Ok(req) => self.on_attach_request(&req, now_ns, out),
                Err(e) => self.on_malformed_attach(h, buf, e, out),
            },
            ShmDetachRequest::TEMPLATE_ID => match ShmDetachRequest::decode(buf) {
                Ok(req) => self.on_detach_request(&req, now_ns, out),
                Err(e) => self.on_malformed_detach(h, buf, e, out),
            },
            ShmLeaseKeepalive::TEMPLATE_ID => match ShmLeaseKeepalive::decode(buf) {
                Ok(ka) => self.on_lease_keepalive(&ka, now_ns),
                Err(_) => {
                    self.counters.malformed += 1;
                    0
                }
            },
            ShmDriverShutdownRequest::TEMPLATE_ID => match ShmDriverShutdownRequest::decode(buf) {
                Ok(req) => self.on_shutdown_request(&req, now_ns, out),
                Err(_) => {
                    self.counters.malformed += 1;
                    0
                }
            },
            _ => 0, // responses and notices (ours, broadcast back to us)
        }
    }

    /// A request of a newer driver schema version than ours: `UNSUPPORTED` (§4.4a).
    fn on_newer_version(&mut self, h: &MessageHeader, buf: &[u8], out: &mut Outputs<'_>) -> usize {
        let Some(correlation_id) = raw_correlation_id(buf, h) else {
            return 0;
        };
        let c = &mut self.counters;
        match h.template_id {
            ShmAttachRequest::TEMPLATE_ID => {
                c.attaches_rejected += 1;
                let msg = self.text.set(format_args!(
                    "driver schema version {} is not supported (highest {})",
                    h.version,
                    driver::SCHEMA_VERSION
                ));
                send_attach_error(out, correlation_id, ResponseCode::Unsupported, msg, c);
                1
            }
            ShmDetachRequest::TEMPLATE_ID => {
                let msg = self.text.set(format_args!(
                    "driver schema version {} is not supported",
                    h.version
                ));
                send_detach_response(out, correlation_id, ResponseCode::Unsupported, msg, c);
                1
            }
            _ => 0,
        }
    }

    fn on_malformed_attach(
        &mut self,
        h: &MessageHeader,
        buf: &[u8],
        e: DecodeError,
        out: &mut Outputs<'_>,
    ) -> usize {
        self.counters.malformed += 1;
        let Some(correlation_id) = raw_correlation_id(buf, h) else {
            return 0;
        };
        let code = match e {
            DecodeError::UnknownEnum {
                field: "publish_mode",
                ..
            } => ResponseCode::Unsupported,
            _ => ResponseCode::InvalidParams,
        };
        self.counters.count_reject(code);
        let msg = self
            .text
            .set(format_args!("malformed ShmAttachRequest: {e}"));
        send_attach_error(out, correlation_id, code, msg, &mut self.counters);
        1
    }

    fn on_malformed_detach(
        &mut self,
        h: &MessageHeader,
        buf: &[u8],
        e: DecodeError,
        out: &mut Outputs<'_>,
    ) -> usize {
        self.counters.malformed += 1;
        let Some(correlation_id) = raw_correlation_id(buf, h) else {
            return 0;
        };
        let msg = self
            .text
            .set(format_args!("malformed ShmDetachRequest: {e}"));
        send_detach_response(
            out,
            correlation_id,
            ResponseCode::InvalidParams,
            msg,
            &mut self.counters,
        );
        1
    }

    /// `ShmAttachRequest` (Driver Model §4.2, §4.3, §4.8, §5, §6, §11).
    pub(crate) fn on_attach_request(
        &mut self,
        req: &ShmAttachRequest,
        now_ns: u64,
        out: &mut Outputs<'_>,
    ) -> usize {
        if let Err((code, why)) = self.attach(req, now_ns, out) {
            self.counters.count_reject(code);
            tracing::debug!(correlation_id = req.correlation_id, stream_id = req.stream_id, client_id = req.client_id, ?code, %why, "attach rejected");
            let msg = match why {
                Why::NoSpace { .. } => self.text.set(format_args!("{why}, {}", self.files.mount)),
                _ => self.text.set(format_args!("{why}")),
            };
            send_attach_error(out, req.correlation_id, code, msg, &mut self.counters);
        }
        1
    }

    fn attach(
        &mut self,
        req: &ShmAttachRequest,
        now_ns: u64,
        out: &mut Outputs<'_>,
    ) -> Result<(), Reject> {
        if !self.is_running() {
            return Err(rejected(Why::Draining));
        }
        if req.client_id == 0 {
            return Err((ResponseCode::InvalidParams, Why::ClientIdZero));
        }
        if let Some(l) = self.leases.by_client(req.client_id) {
            // The same request again (a retry, §4.8): answer it again.
            if l.stream_id == req.stream_id
                && l.role == req.role
                && l.correlation_id == req.correlation_id
            {
                let lease = *l;
                return match self
                    .streams
                    .get(lease.stream_id)
                    .and_then(|s| s.live.as_ref())
                {
                    Some(live) => {
                        send_attach_ok(
                            out,
                            req.correlation_id,
                            &lease,
                            live,
                            LAYOUT_VERSION,
                            &mut self.counters,
                        );
                        Ok(())
                    }
                    None => Err(rejected(Why::ClientIdAttached)),
                };
            }
            return Err(rejected(Why::ClientIdAttached));
        }
        self.check_hugepages(req.require_hugepages)?;
        if req.expected_layout_version != 0 && req.expected_layout_version != LAYOUT_VERSION {
            return Err(rejected(Why::LayoutVersion(req.expected_layout_version)));
        }
        if let Some(d) = req.desired_node_id
            && !self.nodes.can_assign(d, &self.leases, now_ns)
        {
            return Err(rejected(Why::NodeIdTaken(d)));
        }
        let publish_mode = req.publish_mode.unwrap_or(PublishMode::RequireExisting); // PITFALLS #14
        let stream_id = self.resolve_stream(req.stream_id, publish_mode, now_ns)?;
        let granted = self.grant(req, stream_id, now_ns, out);
        if granted.is_err() {
            self.drop_idle_dynamic(stream_id);
        }
        granted
    }

    fn grant(
        &mut self,
        req: &ShmAttachRequest,
        stream_id: u32,
        now_ns: u64,
        out: &mut Outputs<'_>,
    ) -> Result<(), Reject> {
        let Some(stream) = self.streams.get(stream_id) else {
            return Err(rejected(Why::NotProvisioned(stream_id)));
        };
        if self.cfg.profiles[stream.profile].payload_pools.is_empty() {
            return Err((ResponseCode::InvalidParams, Why::NoPools(stream_id)));
        }
        let needs_files = match req.role {
            Role::Producer if stream.producer.is_some() => {
                return Err(rejected(Why::ProducerExists(stream_id)));
            }
            // §6: a producer attaching to a stream without one bumps the epoch
            Role::Producer => true,
            Role::Consumer => stream.live.is_none(),
        };
        if needs_files {
            self.bump_epoch(stream_id, now_ns)
                .map_err(|why| (ResponseCode::InternalError, why))?;
        }
        let lease_id = self
            .leases
            .next_id()
            .ok_or((ResponseCode::InternalError, Why::Exhausted))?;
        let node_id = self
            .nodes
            .assign(req.desired_node_id, &self.leases, now_ns)
            .ok_or((ResponseCode::InternalError, Why::Exhausted))?;
        let expiry_ns = now_ns.saturating_add(self.lease_duration_ns());
        let Some(stream) = self.streams.get_mut(stream_id) else {
            return Err(rejected(Why::NotProvisioned(stream_id)));
        };
        let Some(live) = stream.live.as_mut() else {
            return Err((ResponseCode::InternalError, Why::Provision(stream_id)));
        };
        let lease = Lease {
            lease_id,
            stream_id,
            client_id: req.client_id,
            role: req.role,
            node_id: Some(node_id),
            epoch: live.epoch,
            attached_ns: now_ns,
            expiry_ns,
            correlation_id: req.correlation_id,
        };
        match req.role {
            Role::Producer => {
                stream.producer = Some(ProducerRef {
                    lease_id,
                    client_id: req.client_id,
                });
                live.producer_refreshes = false;
            }
            Role::Consumer => stream.consumers += 1,
        }
        stream.announce_now = true;
        self.leases.insert(lease);
        self.counters.attaches_granted += 1;
        send_attach_ok(
            out,
            req.correlation_id,
            &lease,
            live,
            LAYOUT_VERSION,
            &mut self.counters,
        );
        tracing::info!(lease_id, stream_id, client_id = req.client_id, role = ?req.role, epoch = lease.epoch, "lease granted");
        Ok(())
    }

    /// Driver Model §4.3 `requireHugepages`: HUGEPAGES needs hugetlbfs, STANDARD needs
    /// standard pages, UNSPECIFIED applies `shm.require_hugepages`.
    fn check_hugepages(&self, policy: HugepagesPolicy) -> Result<(), Reject> {
        let have = self.files.hugepages;
        if hugepages_ok(policy, have, self.cfg.shm.require_hugepages) {
            Ok(())
        } else {
            Err(rejected(Why::Hugepages(policy, have)))
        }
    }

    /// The stream an attach names, created on demand when allowed (§4.2, §11).
    fn resolve_stream(
        &mut self,
        stream_id: u32,
        mode: PublishMode,
        now_ns: u64,
    ) -> Result<u32, Reject> {
        if self.streams.contains(stream_id) {
            return Ok(stream_id);
        }
        if !self.cfg.policies.allow_dynamic_streams || mode != PublishMode::ExistingOrCreate {
            return Err(rejected(Why::NotProvisioned(stream_id)));
        }
        let range = self
            .cfg
            .driver
            .stream_id_range
            .ok_or((ResponseCode::InvalidParams, Why::NoRange))?;
        let id = if range.contains(stream_id) {
            stream_id
        } else {
            let streams = &self.streams;
            next_free(range, &mut self.dynamic_cursor, |id| streams.contains(id))
                .ok_or((ResponseCode::InvalidParams, Why::RangeExhausted))?
        };
        let profile = self
            .cfg
            .profiles
            .iter()
            .position(|p| p.name == self.cfg.policies.default_profile)
            .unwrap_or(0);
        let on_disk = super::files::highest_epoch_on_disk(&self.files.layout.stream_dir(id));
        let removed = self
            .removed_epochs
            .iter()
            .find(|(s, _)| *s == id)
            .map_or(0, |(_, e)| *e);
        self.streams
            .push(Stream::new(id, profile, true, on_disk.max(removed)));
        let _ = now_ns;
        tracing::info!(
            stream_id = id,
            requested = stream_id,
            "dynamic stream created"
        );
        Ok(id)
    }

    /// Creates the next epoch's files and makes them live (§6). Errors are logged; an
    /// `mlock` failure is fatal (§17). No room on the file system runs epoch GC once and
    /// retries ([`Self::provision_or_make_room`]).
    pub(crate) fn bump_epoch(&mut self, stream_id: u32, now_ns: u64) -> Result<(), Why> {
        let Some(stream) = self.streams.get(stream_id) else {
            return Err(Why::NotProvisioned(stream_id));
        };
        let profile = stream.profile;
        let result = next_epoch(stream.epoch, now_ns)
            .ok_or(ProvisionError::EpochExhausted)
            .and_then(|epoch| self.provision_or_make_room(stream_id, profile, epoch, now_ns));
        let Some(stream) = self.streams.get_mut(stream_id) else {
            return Err(Why::NotProvisioned(stream_id));
        };
        match result {
            Ok(mut live) => {
                live.last_written_activity = now_ns;
                let previous = stream.live.as_ref().map(|l| l.epoch);
                stream.install(live, now_ns);
                self.counters.epoch_bumps += 1;
                tracing::info!(stream_id, epoch = stream.epoch, ?previous, "epoch bumped");
                Ok(())
            }
            Err(e) => {
                stream.retire_live(now_ns);
                stream.announce_now = false;
                tracing::error!(stream_id, error = %e, "epoch provisioning failed");
                match e {
                    ProvisionError::Mlock(_) => {
                        self.fatal = Some(e.to_string());
                        Err(Why::Provision(stream_id))
                    }
                    ProvisionError::Create(LayoutError::NoSpace {
                        needed, available, ..
                    }) => Err(Why::NoSpace {
                        stream_id,
                        needed,
                        available,
                    }),
                    _ => Err(Why::Provision(stream_id)),
                }
            }
        }
    }

    /// Provisions `epoch` of `stream_id`; when the file system has no room (ENOSPC), runs
    /// epoch GC once ([`Self::collect_garbage_for_room`]) and, if it removed anything, tries
    /// once more. The failed attempt leaves nothing on disk (the shm layer removes the
    /// partial epoch).
    pub(crate) fn provision_or_make_room(
        &mut self,
        stream_id: u32,
        profile: usize,
        epoch: u64,
        now_ns: u64,
    ) -> Result<LiveEpoch, ProvisionError> {
        let first = provision(
            &self.files,
            stream_id,
            &self.cfg.profiles[profile],
            epoch,
            now_ns,
        );
        let Err(ProvisionError::Create(LayoutError::NoSpace { .. })) = &first else {
            return first;
        };
        self.counters.provision_no_space += 1;
        if self.collect_garbage_for_room(stream_id, now_ns) == 0 {
            return first;
        }
        provision(
            &self.files,
            stream_id,
            &self.cfg.profiles[profile],
            epoch,
            now_ns,
        )
    }

    /// Removes a dynamic stream nobody holds any more, with its files.
    pub(crate) fn drop_idle_dynamic(&mut self, stream_id: u32) {
        let idle = self
            .streams
            .get(stream_id)
            .is_some_and(|s| s.dynamic && s.lease_count() == 0);
        if !idle {
            return;
        }
        if let Some(s) = self.streams.remove(stream_id) {
            match self
                .removed_epochs
                .iter_mut()
                .find(|(id, _)| *id == stream_id)
            {
                Some(entry) => entry.1 = entry.1.max(s.epoch),
                None => self.removed_epochs.push((stream_id, s.epoch)),
            }
            for epoch in super::files::epochs_on_disk(&self.files.layout.stream_dir(stream_id)) {
                let _ = self.files.layout.remove_epoch(stream_id, epoch);
            }
            let _ = std::fs::remove_dir(self.files.layout.stream_dir(stream_id));
            tracing::info!(stream_id, last_epoch = s.epoch, "dynamic stream removed");
        }
    }

    /// `ShmLeaseKeepalive`: an exact match of lease, stream, client and role extends the
    /// lease (§4.4); anything else is ignored (keepalives are one-way).
    pub(crate) fn on_lease_keepalive(&mut self, ka: &ShmLeaseKeepalive, now_ns: u64) -> usize {
        let duration = self.lease_duration_ns();
        let min_age = self.cfg.policies.epoch_gc_min_age_ns;
        let Some(lease) = self.leases.get_mut(ka.lease_id).filter(|l| {
            l.stream_id == ka.stream_id && l.client_id == ka.client_id && l.role == ka.role
        }) else {
            self.counters.keepalives_ignored += 1;
            return 0;
        };
        lease.expiry_ns = now_ns.saturating_add(duration);
        self.counters.keepalives += 1;
        // A live client keeping its lease after an epoch change has had the minimum age to
        // remap: its lease no longer pins the old epoch against GC.
        if let Some(s) = self.streams.get(lease.stream_id)
            && let Some(live) = &s.live
            && lease.epoch != live.epoch
            && s.retired
                .iter()
                .any(|r| r.epoch == lease.epoch && now_ns.saturating_sub(r.retired_ns) >= min_age)
        {
            lease.epoch = live.epoch;
        }
        1
    }

    /// `ShmDetachRequest`: exact match ⇒ invalidate + OK; otherwise REJECTED (§4.9).
    pub(crate) fn on_detach_request(
        &mut self,
        req: &ShmDetachRequest,
        now_ns: u64,
        out: &mut Outputs<'_>,
    ) -> usize {
        let matches = self.leases.get(req.lease_id).is_some_and(|l| {
            l.stream_id == req.stream_id && l.client_id == req.client_id && l.role == req.role
        });
        if matches {
            send_detach_response(
                out,
                req.correlation_id,
                ResponseCode::Ok,
                "",
                &mut self.counters,
            );
            self.invalidate(
                req.lease_id,
                LeaseRevokeReason::Detached,
                "detached by its client",
                now_ns,
                out,
            );
        } else {
            let msg = self.text.set(format_args!(
                "no active lease {} for this stream, client and role",
                req.lease_id
            ));
            send_detach_response(
                out,
                req.correlation_id,
                ResponseCode::Rejected,
                msg,
                &mut self.counters,
            );
        }
        1
    }

    /// Ends a lease: `ShmLeaseRevoked` first, then the epoch rules of §6/§7 for a producer
    /// (the bumped announce follows in the same duty cycle). A lease is removed when it is
    /// invalidated, so no lease is ever revoked twice.
    pub(crate) fn invalidate(
        &mut self,
        lease_id: u64,
        reason: LeaseRevokeReason,
        message: &str,
        now_ns: u64,
        out: &mut Outputs<'_>,
    ) {
        let Some(lease) = self.leases.remove(lease_id) else {
            return;
        };
        if let Some(n) = lease.node_id {
            self.nodes.release(n, now_ns);
        }
        send_lease_revoked(out, &lease, reason, message, now_ns, &mut self.counters);
        match reason {
            LeaseRevokeReason::Detached => self.counters.leases_detached += 1,
            LeaseRevokeReason::Expired => self.counters.leases_expired += 1,
            LeaseRevokeReason::Revoked => self.counters.leases_revoked += 1,
        }
        tracing::info!(lease_id, stream_id = lease.stream_id, client_id = lease.client_id, role = ?lease.role, ?reason, "lease ended");
        let running = self.is_running();
        let Some(stream) = self.streams.get_mut(lease.stream_id) else {
            return;
        };
        stream.announce_now = true;
        match lease.role {
            Role::Consumer => stream.consumers = stream.consumers.saturating_sub(1),
            Role::Producer if stream.producer.is_some_and(|p| p.lease_id == lease_id) => {
                stream.producer = None;
                let dynamic_idle = stream.dynamic && stream.lease_count() == 0;
                if !dynamic_idle && running {
                    let _ = self.bump_epoch(lease.stream_id, now_ns);
                } else if !dynamic_idle {
                    // draining: no new files; the next driver start bumps (§10)
                    stream.needs_bump = true;
                }
            }
            Role::Producer => {}
        }
        self.drop_idle_dynamic(lease.stream_id);
    }

    /// `ShmDriverShutdownRequest` (§4.13): honoured only with the configured, non-empty token.
    pub(crate) fn on_shutdown_request(
        &mut self,
        req: &ShmDriverShutdownRequest,
        now_ns: u64,
        _out: &mut Outputs<'_>,
    ) -> usize {
        let token = self.cfg.policies.shutdown_token.as_bytes();
        if token.is_empty() {
            self.counters.shutdown_requests_rejected += 1;
            tracing::warn!(
                correlation_id = req.correlation_id,
                "shutdown request ignored: policies.shutdown_token is not configured"
            );
            return 0;
        }
        if !constant_time_eq(req.token.as_bytes(), token) {
            self.counters.shutdown_requests_rejected += 1;
            tracing::warn!(
                correlation_id = req.correlation_id,
                "shutdown request ignored: missing or wrong token"
            );
            return 0;
        }
        if !self.is_running() {
            return 0;
        }
        let message = req.error_message.as_str().unwrap_or("").to_owned();
        self.begin_shutdown(req.reason, &message, now_ns);
        1
    }

    /// Enters `Draining` (§4.13): no new leases, a final announce now, `ShmDriverShutdown`
    /// after `policies.shutdown_timeout_ms`. Also used for SIGINT / SIGTERM (reason NORMAL).
    pub fn begin_shutdown(&mut self, reason: driver::ShutdownReason, message: &str, now_ns: u64) {
        if !self.is_running() {
            return;
        }
        let deadline_ns =
            now_ns.saturating_add(u64::from(self.cfg.policies.shutdown_timeout_ms) * 1_000_000);
        tracing::info!(
            ?reason,
            message,
            timeout_ms = self.cfg.policies.shutdown_timeout_ms,
            "driver draining"
        );
        self.lifecycle = Lifecycle::Draining {
            reason,
            message: message.to_owned(),
            deadline_ns,
        };
        for s in self.streams.iter_mut() {
            s.announce_now = true;
        }
    }
}

/// Whether regions that are hugepage-backed (`have`) satisfy `policy` (§4.3).
fn hugepages_ok(policy: HugepagesPolicy, have: bool, default_required: bool) -> bool {
    match policy {
        HugepagesPolicy::Hugepages => have,
        HugepagesPolicy::Standard => !have,
        HugepagesPolicy::Unspecified => !default_required || have,
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, &x) in b.iter().enumerate() {
        diff |= usize::from(x ^ a.get(i).copied().unwrap_or(!x));
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secreT", b"secret"));
        assert!(!constant_time_eq(b"", b"secret"));
        assert!(!constant_time_eq(b"secret-longer", b"secret"));
    }

    #[test]
    fn hugepage_policy_matrix() {
        use HugepagesPolicy::*;
        // (policy, regions on hugetlbfs, shm.require_hugepages) -> satisfiable
        let cases = [
            (Hugepages, true, false, true),
            (Hugepages, false, false, false),
            (Standard, false, true, true),
            (Standard, true, false, false),
            (Unspecified, false, false, true),
            (Unspecified, false, true, false),
            (Unspecified, true, true, true),
            (Unspecified, true, false, true),
        ];
        for (policy, have, default_required, ok) in cases {
            assert_eq!(
                hugepages_ok(policy, have, default_required),
                ok,
                "{policy:?} {have} {default_required}"
            );
        }
    }

    #[test]
    fn reject_texts_are_what_clients_match() {
        assert_eq!(
            Why::ClientIdAttached.to_string(),
            "client_id already attached"
        );
    }
}
