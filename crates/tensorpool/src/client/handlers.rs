//! What the client does with each message it receives (every client sees every driver
//! message on the shared control stream; PITFALLS #13).

use tensorpool_codec::driver::{
    self, ResponseCode, Role, ShmAttachResponse, ShmDetachResponse, ShmDriverShutdown,
    ShmLeaseRevoked,
};
use tensorpool_codec::wire::{self, ClockDomain, ShmPoolAnnounce};
use tensorpool_codec::{HEADER_LEN, Message, MessageHeader};

use super::state::{Held, Inner, Machine};
use super::validate::{validate_announce, validate_attach};
use super::{CLIENT_ID_ALREADY_ATTACHED, ClientConfig, ClientEvent, LeaseLost};
use crate::control::{Gate, gate};

fn raw_correlation_id(buf: &[u8], h: &MessageHeader) -> Option<i64> {
    if h.block_length < 8 {
        return None;
    }
    Some(i64::from_le_bytes(
        buf.get(HEADER_LEN..HEADER_LEN + 8)?.try_into().ok()?,
    ))
}

impl Machine {
    /// One received message.
    pub(super) fn on_message(&mut self, buf: &[u8], now_ns: u64) {
        match gate(buf, driver::SCHEMA_ID, driver::SCHEMA_VERSION) {
            Gate::Accept(h) => self.on_driver_message(&h, buf, now_ns),
            // §4.4a: newer versions are rejected
            Gate::NewerVersion(_) => self.counters.rejected_messages += 1,
            Gate::OtherSchema => {
                if let Gate::Accept(h) = gate(buf, wire::SCHEMA_ID, wire::SCHEMA_VERSION)
                    && h.template_id == ShmPoolAnnounce::TEMPLATE_ID
                {
                    match ShmPoolAnnounce::decode(buf) {
                        Ok(a) => self.on_pool_announce(&a, now_ns),
                        Err(_) => self.counters.rejected_messages += 1,
                    }
                }
            }
            Gate::Truncated(_) => {}
        }
    }

    fn on_driver_message(&mut self, h: &MessageHeader, buf: &[u8], now_ns: u64) {
        match h.template_id {
            ShmAttachResponse::TEMPLATE_ID => match ShmAttachResponse::decode(buf) {
                Ok(r) => self.on_attach_response(&r, now_ns),
                Err(e) => {
                    self.counters.rejected_messages += 1;
                    // undecodable (unknown code enum...): a protocol error if it was ours
                    if let Some(c) = raw_correlation_id(buf, h)
                        && matches!(self.state, Inner::Attaching { correlation_id, .. } if correlation_id == c)
                    {
                        self.protocol_error(super::ProtocolError::Undecodable(e), now_ns);
                    }
                }
            },
            ShmDetachResponse::TEMPLATE_ID => match ShmDetachResponse::decode(buf) {
                Ok(r) => self.on_detach_response(&r),
                Err(_) => self.counters.rejected_messages += 1,
            },
            // unknown reason or role values fail to decode: rejected (§4.9)
            ShmLeaseRevoked::TEMPLATE_ID => match ShmLeaseRevoked::decode(buf) {
                Ok(r) => self.on_lease_revoked(&r, now_ns),
                Err(_) => self.counters.rejected_messages += 1,
            },
            ShmDriverShutdown::TEMPLATE_ID => match ShmDriverShutdown::decode(buf) {
                Ok(s) => self.on_driver_shutdown(&s, now_ns),
                Err(_) => self.counters.rejected_messages += 1,
            },
            _ => {} // requests of other clients
        }
    }

    fn is_abandoned(&self, correlation_id: i64) -> bool {
        self.abandoned.contains(&correlation_id)
    }

    fn on_attach_response(&mut self, r: &ShmAttachResponse<'_>, now_ns: u64) {
        let current = matches!(self.state, Inner::Attaching { correlation_id, .. } if correlation_id == r.correlation_id);
        // B.1: once an OK was accepted, every duplicate (OK or not) is ignored
        if self.accepted == Some(r.correlation_id)
            || (!current && !self.is_abandoned(r.correlation_id))
        {
            self.counters.duplicates_ignored += u64::from(self.accepted == Some(r.correlation_id));
            return;
        }
        if r.code != ResponseCode::Ok {
            if current {
                self.on_rejected(r, now_ns);
            }
            return;
        }
        // an OK for an attach we gave up on: take it if we have no lease, else give it back
        if !current
            && matches!(
                self.state,
                Inner::Attached(_) | Inner::Detaching { .. } | Inner::Closed
            )
        {
            if let Some(lease_id) = r.lease_id {
                self.pending_detach = Some((
                    r.correlation_id,
                    lease_id,
                    r.stream_id.unwrap_or(self.cfg.stream_id),
                    self.client_id,
                ));
            }
            return;
        }
        match validate_attach(
            r,
            self.cfg.stream_id,
            self.client_id,
            self.cfg.allowed_base_dirs.as_ref(),
        ) {
            Ok(info) => {
                if let Inner::Attaching { correlation_id, .. } = self.state
                    && correlation_id != r.correlation_id
                {
                    self.abandon(correlation_id); // its answer, when it comes, is stale
                }
                self.accepted = Some(r.correlation_id);
                self.backoff_ns = ClientConfig::ns(self.cfg.backoff_initial);
                let lease_ns = info.lease_expiry_ns.map_or(0, |e| e.saturating_sub(now_ns));
                let held = Held {
                    next_keepalive_ns: self.next_keepalive(now_ns, info.lease_expiry_ns),
                    expiry_ns: info.lease_expiry_ns,
                    lease_ns,
                    last_announce_ns: now_ns,
                    awaiting_epoch: None,
                    info: info.clone(),
                };
                self.state = Inner::Attached(Box::new(held));
                self.events.push_back(ClientEvent::Attached(info));
            }
            Err(e) => {
                // §4.7a: drop the attach (give the lease back) and attach again
                if let Some(lease_id) = r.lease_id {
                    self.pending_detach = Some((
                        r.correlation_id,
                        lease_id,
                        r.stream_id.unwrap_or(self.cfg.stream_id),
                        self.client_id,
                    ));
                }
                self.protocol_error(e, now_ns);
            }
        }
    }

    fn on_rejected(&mut self, r: &ShmAttachResponse<'_>, now_ns: u64) {
        let message = r.error_message.as_str().unwrap_or("").to_owned();
        if self.auto_client_id && message == CLIENT_ID_ALREADY_ATTACHED {
            self.client_id = super::random_client_id();
        }
        self.events.push_back(ClientEvent::Rejected {
            code: r.code,
            message,
        });
        self.enter_backoff(now_ns);
    }

    fn on_detach_response(&mut self, r: &ShmDetachResponse<'_>) {
        if matches!(self.state, Inner::Detaching { correlation_id, .. } if correlation_id == r.correlation_id)
        {
            self.state = Inner::Closed;
            self.events.push_back(ClientEvent::Detached);
        }
    }

    fn on_lease_revoked(&mut self, r: &ShmLeaseRevoked<'_>, now_ns: u64) {
        let Inner::Attached(held) = &mut self.state else {
            return;
        };
        let info = &held.info;
        if r.lease_id == info.lease_id
            && r.stream_id == info.regions.stream_id
            && r.client_id == info.client_id
            && r.role == self.cfg.role
        {
            let message = r.error_message.as_str().unwrap_or("").to_owned();
            self.events.push_back(ClientEvent::LeaseRevoked {
                reason: r.reason,
                message,
            });
            self.enter_backoff_short(now_ns);
        } else if r.role == Role::Producer
            && self.cfg.role == Role::Consumer
            && r.stream_id == info.regions.stream_id
        {
            let deadline = now_ns.saturating_add(3 * ClientConfig::ns(self.cfg.announce_period));
            held.awaiting_epoch = Some((info.regions.epoch, deadline));
            self.events.push_back(ClientEvent::ProducerRevoked {
                lease_id: r.lease_id,
            });
        }
        // any other lease: not ours (§4.9 MAY ignore)
    }

    fn on_driver_shutdown(&mut self, s: &ShmDriverShutdown<'_>, now_ns: u64) {
        if matches!(self.state, Inner::Closed) {
            return;
        }
        let message = s.error_message.as_str().unwrap_or("").to_owned();
        self.events.push_back(ClientEvent::DriverShutdown {
            reason: s.reason,
            message,
        });
        if matches!(self.state, Inner::Detaching { .. }) {
            self.state = Inner::Closed;
            return;
        }
        self.enter_backoff(now_ns);
    }

    fn on_pool_announce(&mut self, a: &ShmPoolAnnounce<'_>, now_ns: u64) {
        let Inner::Attached(held) = &mut self.state else {
            return;
        };
        if a.stream_id != held.info.regions.stream_id {
            return;
        }
        // soft state: ignore stale and replayed announces (Wire Spec §10.1.1)
        let window = 3 * ClientConfig::ns(self.cfg.announce_period);
        if a.announce_clock_domain == ClockDomain::Monotonic
            && (a.announce_timestamp_ns.saturating_add(window) < now_ns
                || self
                    .join_time_ns
                    .is_some_and(|j| a.announce_timestamp_ns < j))
        {
            self.counters.stale_announces += 1;
            return;
        }
        held.last_announce_ns = now_ns;
        if a.epoch <= held.info.regions.epoch {
            return;
        }
        match validate_announce(a, self.cfg.allowed_base_dirs.as_ref()) {
            Ok(regions) => {
                held.info.regions = regions.clone();
                held.awaiting_epoch = None;
                self.events.push_back(ClientEvent::EpochChanged(regions));
            }
            Err(e) => {
                let lease_id = held.info.lease_id;
                self.pending_detach = Some((
                    super::next_correlation_id(),
                    lease_id,
                    a.stream_id,
                    self.client_id,
                ));
                self.protocol_error(e, now_ns);
            }
        }
    }

    pub(super) fn protocol_error(&mut self, e: super::ProtocolError, now_ns: u64) {
        tracing::warn!(error = %e, "protocol error from the driver: dropping the attach");
        self.events.push_back(ClientEvent::ProtocolError(e));
        self.enter_backoff(now_ns);
    }

    pub(super) fn lease_lost(&mut self, why: LeaseLost, now_ns: u64) {
        self.events.push_back(ClientEvent::LeaseLost(why));
        self.enter_backoff(now_ns);
    }

    /// Waits the current backoff (doubling it for next time) before attaching again.
    pub(super) fn enter_backoff(&mut self, now_ns: u64) {
        if let Inner::Attaching { correlation_id, .. } = self.state {
            self.abandon(correlation_id);
        }
        self.state = Inner::Backoff {
            until_ns: now_ns.saturating_add(self.backoff_ns),
        };
        self.backoff_ns = self
            .backoff_ns
            .saturating_mul(2)
            .min(ClientConfig::ns(self.cfg.backoff_max));
    }

    fn enter_backoff_short(&mut self, now_ns: u64) {
        self.backoff_ns = ClientConfig::ns(self.cfg.backoff_initial);
        self.enter_backoff(now_ns);
    }

    pub(super) fn abandon(&mut self, correlation_id: i64) {
        self.abandoned[self.abandoned_next] = correlation_id;
        self.abandoned_next = (self.abandoned_next + 1) % self.abandoned.len();
    }

    pub(super) fn next_keepalive(&self, now_ns: u64, expiry_ns: Option<u64>) -> u64 {
        let interval = ClientConfig::ns(self.cfg.keepalive_interval);
        let regular = now_ns.saturating_add(interval);
        match expiry_ns {
            // keepalives must arrive before the expiry (§4.4): leave a quarter interval
            Some(e) => regular.min(e.saturating_sub(interval / 4)).max(now_ns),
            None => regular,
        }
    }
}
