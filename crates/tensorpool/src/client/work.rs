//! The client's duty cycle:
//!
//! 1. read the control and announce streams (`handlers.rs`);
//! 2. give back leases we do not want (late or invalid OK responses);
//! 3. act on the state's timer: send the attach, time it out, end a backoff, send the
//!    keepalive, notice a lost driver or a missing epoch bump, time out a detach;
//! 4. hand the events to the caller.

use tensorpool_codec::driver::{ShmAttachRequest, ShmDetachRequest, ShmLeaseKeepalive};

use super::proxy::{send_attach, send_detach, send_keepalive};
use super::state::{Inner, Machine};
use super::{ClientConfig, ClientEvent, ClientTransport, DriverClient, LeaseLost};
use crate::control::SendError;

const FRAGMENT_LIMIT: usize = 32;

impl<T: ClientTransport> DriverClient<T> {
    /// One duty cycle at `now_ns` (monotonic); events go to `on_event`. Returns the work done.
    pub fn do_work(&mut self, now_ns: u64, on_event: &mut dyn FnMut(ClientEvent)) -> usize {
        let Self { transport, m } = self;
        if m.join_time_ns.is_none() {
            m.join_time_ns = transport.join_time_ns();
        }
        let mut work = transport.poll(&mut |buf| m.on_message(buf, now_ns), FRAGMENT_LIMIT);
        if let Some((correlation_id, lease_id, stream_id, client_id)) = m.pending_detach.take() {
            let req = ShmDetachRequest {
                correlation_id,
                lease_id,
                stream_id,
                client_id,
                role: m.cfg.role,
            };
            let _ = send_detach(transport.control(), &req);
            work += 1;
        }
        work += m.on_timers(transport, now_ns);
        while let Some(event) = m.events.pop_front() {
            on_event(event);
            work += 1;
        }
        work
    }
}

impl Machine {
    fn on_timers<T: ClientTransport>(&mut self, transport: &mut T, now_ns: u64) -> usize {
        if self.close_requested {
            return self.close(transport, now_ns);
        }
        match &mut self.state {
            Inner::Idle => self.send_attach(transport, now_ns),
            Inner::Attaching { deadline_ns, .. } if now_ns >= *deadline_ns => {
                self.events.push_back(ClientEvent::AttachTimedOut);
                self.enter_backoff(now_ns);
                1
            }
            Inner::Backoff { until_ns } if now_ns >= *until_ns => {
                self.send_attach(transport, now_ns)
            }
            Inner::Attached(_) => self.attached_timers(transport, now_ns),
            Inner::Detaching { deadline_ns, .. } if now_ns >= *deadline_ns => {
                self.state = Inner::Closed;
                self.events.push_back(ClientEvent::Detached);
                1
            }
            _ => 0,
        }
    }

    fn send_attach<T: ClientTransport>(&mut self, transport: &mut T, now_ns: u64) -> usize {
        let correlation_id = super::next_correlation_id();
        let req = ShmAttachRequest {
            correlation_id,
            stream_id: self.cfg.stream_id,
            client_id: self.client_id,
            role: self.cfg.role,
            expected_layout_version: self.cfg.expected_layout_version,
            publish_mode: self.cfg.publish_mode,
            require_hugepages: self.cfg.require_hugepages,
            desired_node_id: self.cfg.desired_node_id,
        };
        // a failed send is simply not answered: the attach times out and is retried
        let _ = send_attach(transport.control(), &req);
        self.counters.attaches_sent += 1;
        self.state = Inner::Attaching {
            correlation_id,
            deadline_ns: now_ns.saturating_add(ClientConfig::ns(self.cfg.attach_timeout)),
        };
        1
    }

    fn attached_timers<T: ClientTransport>(&mut self, transport: &mut T, now_ns: u64) -> usize {
        let driver_timeout = ClientConfig::ns(self.cfg.driver_timeout);
        let Inner::Attached(held) = &mut self.state else {
            return 0;
        };
        if now_ns.saturating_sub(held.last_announce_ns) > driver_timeout {
            self.events.push_back(ClientEvent::DriverLost);
            self.enter_backoff(now_ns);
            return 1;
        }
        if held
            .awaiting_epoch
            .is_some_and(|(_, deadline)| now_ns >= deadline)
        {
            let lease_id = held.info.lease_id;
            self.pending_detach = Some((
                super::next_correlation_id(),
                lease_id,
                self.cfg.stream_id,
                self.client_id,
            ));
            self.lease_lost(LeaseLost::RemapTimeout, now_ns);
            return 1;
        }
        if held.expiry_ns.is_some_and(|e| now_ns >= e) {
            self.lease_lost(LeaseLost::KeepaliveDeadline, now_ns);
            return 1;
        }
        if now_ns < held.next_keepalive_ns {
            return 0;
        }
        let ka = ShmLeaseKeepalive {
            lease_id: held.info.lease_id,
            stream_id: held.info.regions.stream_id,
            client_id: held.info.client_id,
            role: self.cfg.role,
            client_timestamp_ns: now_ns,
        };
        match send_keepalive(transport.control(), &ka) {
            Ok(()) => {
                self.counters.keepalives_sent += 1;
                if held.expiry_ns.is_some() {
                    held.expiry_ns = Some(now_ns.saturating_add(held.lease_ns));
                }
                let expiry = held.expiry_ns;
                let next = self.next_keepalive(now_ns, expiry);
                if let Inner::Attached(held) = &mut self.state {
                    held.next_keepalive_ns = next;
                }
            }
            // §4.4: a keepalive that cannot be sent is fatal for the lease
            Err(SendError::Publish(e))
                if !e.is_retryable()
                    || matches!(e, tensorpool_aeron::PublishError::NotConnected) =>
            {
                self.lease_lost(LeaseLost::KeepaliveFailed, now_ns);
            }
            Err(_) => {} // back-pressure: next cycle
        }
        1
    }

    fn close<T: ClientTransport>(&mut self, transport: &mut T, now_ns: u64) -> usize {
        self.close_requested = false;
        match &self.state {
            Inner::Attached(held) => {
                let correlation_id = super::next_correlation_id();
                let req = ShmDetachRequest {
                    correlation_id,
                    lease_id: held.info.lease_id,
                    stream_id: held.info.regions.stream_id,
                    client_id: held.info.client_id,
                    role: self.cfg.role,
                };
                let _ = send_detach(transport.control(), &req);
                self.state = Inner::Detaching {
                    correlation_id,
                    deadline_ns: now_ns.saturating_add(ClientConfig::ns(self.cfg.attach_timeout)),
                };
            }
            Inner::Detaching { .. } | Inner::Closed => {}
            _ => {
                if let Inner::Attaching { correlation_id, .. } = self.state {
                    self.abandon(correlation_id);
                }
                self.state = Inner::Closed;
                self.events.push_back(ClientEvent::Detached);
            }
        }
        1
    }
}
