//! Answers to the admin schema (990, ours): `tp driver status|leases|streams`. Diagnostics,
//! not the control path: building the answer may allocate.

use tensorpool_codec::admin::{
    DriverLeasesRequest, DriverLeasesResponse, DriverState, DriverStatusRequest,
    DriverStatusResponse, DriverStreamsRequest, DriverStreamsResponse, LeaseEntry, StreamEntry,
};
use tensorpool_codec::driver::Role;
use tensorpool_codec::{Bytes, Group, Message, MessageHeader};
use tensorpool_shm::LAYOUT_VERSION;

use super::core::DriverCore;
use super::proxy::{Outputs, send_admin};
use super::state::Lifecycle;

/// At most this many entries per answer (keeps the message far below Aeron's limit).
const MAX_ENTRIES: usize = 1000;

impl DriverCore {
    pub(crate) fn on_admin_message(
        &mut self,
        h: &MessageHeader,
        buf: &[u8],
        now_ns: u64,
        out: &mut Outputs<'_>,
    ) -> usize {
        match h.template_id {
            DriverStatusRequest::TEMPLATE_ID => match DriverStatusRequest::decode(buf) {
                Ok(r) => self.on_status_request(r.correlation_id, now_ns, out),
                Err(_) => 0,
            },
            DriverLeasesRequest::TEMPLATE_ID => match DriverLeasesRequest::decode(buf) {
                Ok(r) => self.on_leases_request(r.correlation_id, now_ns, out),
                Err(_) => 0,
            },
            DriverStreamsRequest::TEMPLATE_ID => match DriverStreamsRequest::decode(buf) {
                Ok(r) => self.on_streams_request(r.correlation_id, out),
                Err(_) => 0,
            },
            _ => 0,
        }
    }

    fn on_status_request(
        &mut self,
        correlation_id: i64,
        now_ns: u64,
        out: &mut Outputs<'_>,
    ) -> usize {
        let c = self.counters.snapshot();
        let base_dir = self.cfg.shm.base_dir.display().to_string();
        let msg = DriverStatusResponse {
            correlation_id,
            state: match self.lifecycle {
                Lifecycle::Running => DriverState::Running,
                _ => DriverState::Draining,
            },
            pid: u64::from(std::process::id()),
            start_timestamp_ns: self.start_ns,
            now_ns,
            stream_count: u32::try_from(self.streams.len()).unwrap_or(u32::MAX),
            lease_count: u32::try_from(self.leases.len()).unwrap_or(u32::MAX),
            producer_count: u32::try_from(self.leases.count_role(Role::Producer))
                .unwrap_or(u32::MAX),
            consumer_count: u32::try_from(self.leases.count_role(Role::Consumer))
                .unwrap_or(u32::MAX),
            attaches_granted: c.attaches_granted,
            attaches_rejected: c.attaches_rejected,
            keepalives: c.keepalives,
            leases_expired: c.leases_expired,
            leases_revoked: c.leases_revoked,
            leases_detached: c.leases_detached,
            epoch_bumps: c.epoch_bumps,
            announces_sent: c.announces_sent,
            messages_dropped: c.messages_dropped,
            instance_id: Bytes::new(self.cfg.driver.instance_id.as_bytes()),
            shm_base_dir: Bytes::new(base_dir.as_bytes()),
        };
        send_admin(out, &msg, &mut self.counters);
        1
    }

    fn on_leases_request(
        &mut self,
        correlation_id: i64,
        now_ns: u64,
        out: &mut Outputs<'_>,
    ) -> usize {
        let entries: Vec<LeaseEntry> = self
            .leases
            .iter()
            .take(MAX_ENTRIES)
            .map(|l| LeaseEntry {
                lease_id: l.lease_id,
                stream_id: l.stream_id,
                client_id: l.client_id,
                role: l.role,
                node_id: l.node_id,
                epoch: l.epoch,
                attached_timestamp_ns: l.attached_ns,
                expiry_timestamp_ns: l.expiry_ns,
            })
            .collect();
        let msg = DriverLeasesResponse {
            correlation_id,
            now_ns,
            leases: Group::Slice(&entries),
        };
        send_admin(out, &msg, &mut self.counters);
        1
    }

    fn on_streams_request(&mut self, correlation_id: i64, out: &mut Outputs<'_>) -> usize {
        let entries: Vec<StreamEntry<'_>> = self
            .streams
            .iter()
            .take(MAX_ENTRIES)
            .map(|s| {
                let p = &self.cfg.profiles[s.profile];
                StreamEntry {
                    stream_id: s.stream_id,
                    epoch: s.live.as_ref().map(|l| l.epoch),
                    layout_version: LAYOUT_VERSION,
                    header_nslots: p.header_nslots,
                    pool_count: u16::try_from(p.payload_pools.len()).unwrap_or(u16::MAX),
                    producer_client_id: s.producer.map(|p| p.client_id),
                    producer_lease_id: s.producer.map(|p| p.lease_id),
                    consumer_count: s.consumers,
                    dynamic: s.dynamic,
                    profile: Bytes::new(p.name.as_bytes()),
                    header_region_uri: s
                        .live
                        .as_ref()
                        .map_or(Bytes::EMPTY, |l| Bytes::new(l.header_uri.as_bytes())),
                }
            })
            .collect();
        let msg = DriverStreamsResponse {
            correlation_id,
            streams: Group::Slice(&entries),
        };
        send_admin(out, &msg, &mut self.counters);
        1
    }
}
