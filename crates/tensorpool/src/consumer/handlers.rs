//! The consumer's inbound messages: one `on_<message>` each, decoded (Wire Spec §10.1-§10.3,
//! §11), and the driver client's events.

use tensorpool_codec::wire::{
    ClockDomain, ConsumerConfig, FrameDescriptor, FrameProgress, ShmPoolAnnounce,
};

use super::FrameHandler;
use super::core::ConsumerCore;
use super::counters::DropCause;
use super::mapping::{Limits, Liveness, map_announce, map_regions};
use super::progress::ProgressDrop;
use crate::client::ClientEvent;
use crate::frame::{DescriptorInfo, Frame};
use crate::streams::StreamRequest;

fn ns(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The decoded handlers, one per inbound message (the byte entry points that gate, decode and
/// call them are in `core.rs`).
impl ConsumerCore {
    /// `ShmPoolAnnounce` (§10.1.1, §15.21 mapping state machine).
    pub(crate) fn on_pool_announce(&mut self, ann: &ShmPoolAnnounce<'_>, now_ns: u64) {
        if ann.stream_id != self.cfg.stream_id {
            return;
        }
        self.counters.announces += 1;
        let window = ns(self.cfg.announce_freshness);
        let local = match ann.announce_clock_domain {
            ClockDomain::Monotonic => now_ns,
            ClockDomain::RealtimeSynced => tensorpool_agent::realtime_ns(),
        };
        let ts = ann.announce_timestamp_ns;
        if local.saturating_sub(ts) > window || ts.saturating_sub(local) > window {
            self.counters.announces_stale += 1;
            return;
        }
        // Join-time rule: MONOTONIC only, never REALTIME_SYNCED.
        if ann.announce_clock_domain == ClockDomain::Monotonic && ts < self.join_time_ns {
            self.counters.announces_pre_join += 1;
            return;
        }
        let fresh_highest = self
            .highest
            .filter(|&(_, seen)| now_ns.saturating_sub(seen) <= window)
            .map(|(e, _)| e);
        if self.fallback.as_ref().is_some_and(|f| f.ordered) {
            return;
        }
        match self.mapped.as_ref().map(|m| m.epoch) {
            Some(e) if ann.epoch == e => {
                self.highest = Some((e, now_ns));
                return;
            }
            Some(e) if ann.epoch < e => {
                self.counters.announces_older_epoch += 1;
                return;
            }
            // A newer epoch: mapped and validated below, before the current mapping goes.
            Some(_) | None => {}
        }
        if fresh_highest.is_some_and(|h| ann.epoch < h) {
            self.counters.announces_older_epoch += 1;
            return;
        }
        if ann.epoch <= self.dead_epoch || self.backoff.active(ann.epoch, announce_key(ann), now_ns)
        {
            self.counters.announces_waiting += 1;
            return;
        }
        self.map(ann, now_ns);
    }

    /// Maps a newer epoch. Only an announce whose regions all map and validate changes
    /// anything: then the old mapping is dropped (hard boundary, §15.21) and the new one
    /// installed, and its epoch becomes the highest seen. A failure leaves the current
    /// mapping, the highest epoch and every other epoch's backoff as they were, and backs
    /// off for this epoch only.
    fn map(&mut self, ann: &ShmPoolAnnounce<'_>, now_ns: u64) {
        let limits = self.limits(now_ns);
        match map_announce(ann, &self.allowed, self.cfg.expected_layout_version, limits) {
            Ok(m) => {
                if self.mapped.is_some() {
                    self.unmap();
                    self.counters.remaps += 1;
                }
                self.install(m);
                self.highest = Some((ann.epoch, now_ns));
                self.backoff.clear(ann.epoch);
                if self.fallback.as_ref().is_some_and(|f| !f.ordered) {
                    self.clear_fallback();
                }
            }
            Err(e) => {
                self.reject(ann.epoch, "refused the announced regions", e.to_string());
                self.counters.map_failures += 1;
                let until = now_ns.saturating_add(ns(self.cfg.remap_backoff));
                self.backoff
                    .fail(ann.epoch, announce_key(ann), until, now_ns);
                if self.mapped.is_none()
                    && self.fallback.as_ref().is_none_or(|f| !f.ordered)
                    && let Some(uri) = self.cfg.payload_fallback_uri.clone()
                {
                    self.set_fallback(uri.as_bytes(), false);
                }
            }
        }
    }

    /// Driver mode (Driver Model §4.9, §4.12.3, §4.13): a lease or a new epoch maps its
    /// regions; the producer's revocation unmaps and waits for the epoch-bumped announce
    /// (the client times out after 3 announce periods); our own lease lost, the driver shut
    /// down or gone unmap at once (the client re-attaches).
    pub(crate) fn on_client_event(&mut self, event: ClientEvent, now_ns: u64) {
        let regions = match event {
            ClientEvent::Attached(info) => info.regions,
            ClientEvent::EpochChanged(r) => {
                if self.mapped.is_some() {
                    self.counters.remaps += 1;
                }
                r
            }
            ClientEvent::ProducerRevoked { .. }
            | ClientEvent::LeaseRevoked { .. }
            | ClientEvent::LeaseLost(_)
            | ClientEvent::DriverShutdown { .. }
            | ClientEvent::DriverLost
            | ClientEvent::ProtocolError(_) => {
                if self.mapped.is_some() {
                    self.counters.unmaps_revoked += 1;
                }
                self.unmap();
                return;
            }
            _ => return,
        };
        if self.fallback.as_ref().is_some_and(|f| f.ordered) {
            // told not to use SHM (W §10.1.3): the lease is kept, nothing is mapped
            self.unmap();
            return;
        }
        // Mapped and validated before the current mapping goes (the driver named a new
        // epoch, so the old one goes either way).
        let mapped = map_regions(&regions, &self.allowed, self.limits(now_ns));
        self.unmap();
        match mapped {
            Ok(m) => self.install(m),
            Err(e) => {
                self.reject(regions.epoch, "refused the driver's regions", e.to_string());
                self.counters.map_failures += 1;
            }
        }
    }

    fn limits(&self, now_ns: u64) -> Limits {
        Limits {
            now_ns,
            activity_window_ns: ns(self.cfg.activity_timeout),
            max_mapped_bytes: self.cfg.max_mapped_bytes,
        }
    }

    /// Liveness of the mapping (§15.14): stale activity or a changed superblock unmaps and
    /// waits for a new epoch.
    pub fn check_liveness(&mut self, now_ns: u64) {
        let Some(m) = self.mapped.as_ref() else {
            return;
        };
        let epoch = m.epoch;
        let reason = match m.liveness(now_ns, ns(self.cfg.activity_timeout)) {
            Liveness::Alive => return,
            Liveness::Stale => {
                self.counters.unmaps_stale += 1;
                "activity_timestamp_ns went stale: the producer stopped"
            }
            Liveness::Changed => {
                self.counters.unmaps_superblock += 1;
                "the live superblock changed (pid, epoch or magic)"
            }
            Liveness::Dead => {
                self.counters.unmaps_dead += 1;
                "region_dead: a region file was truncated under the mapping"
            }
        };
        self.reject(epoch, "unmapped its regions", reason.to_owned());
        self.unmap();
        self.dead_epoch = self.dead_epoch.max(epoch);
    }

    /// `ConsumerConfig` (§10.1.3): per-consumer streams, mode, SHM or fallback.
    pub(crate) fn on_consumer_config(&mut self, cc: &ConsumerConfig<'_>) {
        if cc.stream_id != self.cfg.stream_id || cc.consumer_id != self.cfg.consumer_id {
            return;
        }
        self.counters.configs += 1;
        self.effective_mode = cc.mode;
        if !cc.use_shm {
            self.set_fallback(cc.payload_fallback_uri.as_bytes(), true);
            self.unmap();
        } else if self.fallback.as_ref().is_some_and(|f| f.ordered) {
            self.clear_fallback();
        }
        let shared = &self.cfg.streams;
        let d = assigned(
            cc.descriptor_channel.as_bytes(),
            cc.descriptor_stream_id,
            &shared.descriptor,
        );
        let c = assigned(
            cc.control_channel.as_bytes(),
            cc.control_stream_id,
            &shared.control,
        );
        let same = |cur: &Option<(String, i32)>, new: Option<(&[u8], i32)>| match (cur, new) {
            (None, None) => true,
            (Some((ch, id)), Some((nch, nid))) => ch.as_bytes() == nch && *id == nid,
            _ => false,
        };
        if !same(&self.assignment.descriptor, d) || !same(&self.assignment.control, c) {
            let own = |x: Option<(&[u8], i32)>| {
                x.map(|(ch, id)| (String::from_utf8_lossy(ch).into_owned(), id))
            };
            self.assignment.descriptor = own(d);
            self.assignment.control = own(c);
            self.assignment_changed = true;
        }
    }

    /// `FrameProgress` (§10.2.2), for consumers that opted in.
    pub(crate) fn on_frame_progress<H: FrameHandler + ?Sized>(
        &mut self,
        fp: &FrameProgress,
        handler: &mut H,
    ) {
        if !self.cfg.supports_progress || fp.stream_id != self.cfg.stream_id {
            return;
        }
        let Some(m) = self.mapped.as_ref() else {
            self.counters.progress_dropped += 1;
            return;
        };
        if fp.epoch != m.epoch {
            self.counters.progress_dropped += 1;
            return;
        }
        match self
            .tracker
            .check(m, fp.seq, fp.payload_bytes_filled, fp.state)
        {
            Ok(p) => {
                self.counters.progress += 1;
                handler.on_progress(&p);
            }
            Err(why) => {
                self.counters.progress_dropped += 1;
                match why {
                    ProgressDrop::Regressed => self.counters.progress_regressed += 1,
                    ProgressDrop::Beyond => self.counters.progress_beyond += 1,
                    ProgressDrop::Slot => {}
                }
            }
        }
    }

    /// `FrameDescriptor` (§10.2.1, §8.3, §15.21): **the frame path**, in one place: every
    /// drop rule (mapped, epoch, sequence), the slot read (the seqlock proves frame `seq`),
    /// sequence accounting, the rate gate, then the handler, then the recheck that decides
    /// whether the frame counts as accepted (§8.3 step 6).
    pub(crate) fn on_frame_descriptor<H: FrameHandler + ?Sized>(
        &mut self,
        fd: &FrameDescriptor,
        now_ns: u64,
        handler: &mut H,
    ) -> Result<(), DropCause> {
        let Some(epoch) = self.mapped.as_ref().map(|m| m.epoch) else {
            return Err(DropCause::Unmapped);
        };
        if fd.epoch != epoch {
            return Err(DropCause::EpochMismatch);
        }
        if self.seqs.regressed(fd.seq) {
            return Err(DropCause::SeqRegressed);
        }
        let Some(m) = self.mapped.as_ref() else {
            return Err(DropCause::Unmapped);
        };
        let view = match m.ring.read_frame(&m.pools, fd.seq) {
            Ok(v) => v,
            Err(r) => {
                self.seqs.unproven(fd.seq);
                self.lapped |= lost_to_overwrite(r);
                return Err(DropCause::Slot(r));
            }
        };
        // The slot proved that frame `seq` was committed: only now does the sequence move.
        let gap = self.seqs.prove(fd.seq);
        // Catching up (`consumer.catch_up`): once lapped, skip unread every frame the writer
        // is already half a ring past, so that the next frame read has headroom.
        let half = u64::from(m.ring.nslots() / 2);
        let behind =
            self.cfg.catch_up && self.lapped && half >= 2 && m.ring.writer_ahead_by(fd.seq, half);
        self.lapped = behind;
        let throttled = self.per_consumer_descriptor
            && self.effective_mode == tensorpool_codec::wire::Mode::RateLimited;
        if gap > 0 && !throttled {
            // A producer-throttled per-consumer stream skips sequences on purpose.
            self.drops.gap += gap;
            let max = self.cfg.max_outstanding_seq_gap;
            if max > 0 && gap > max {
                self.counters.resyncs += 1;
            }
        }
        if behind {
            return Err(DropCause::Behind);
        }
        if let Some(interval) = self.rate_interval_ns() {
            let t = fd
                .timestamp_ns
                .or(Some(view.header().timestamp_ns).filter(|&t| t != 0))
                .unwrap_or(now_ns);
            if self
                .last_gate_ts
                .is_some_and(|last| t.saturating_sub(last) < interval && t >= last)
            {
                return Err(DropCause::RateLimited);
            }
            self.last_gate_ts = Some(t);
        }
        let info = DescriptorInfo {
            stream_id: fd.stream_id,
            epoch: fd.epoch,
            publish_timestamp_ns: fd.timestamp_ns,
            trace_id: fd.trace_id,
        };
        let (captured_ns, len) = (view.header().timestamp_ns, view.payload().len() as u64);
        let delivered_ns = tensorpool_agent::monotonic_ns();
        let frame = Frame::new(view, info);
        handler.on_frame(&frame);
        frame.recheck().map_err(|r| {
            self.lapped |= lost_to_overwrite(r);
            DropCause::Slot(r)
        })?;
        self.counters.accepted += 1;
        self.counters.bytes += len;
        // Capture time is CLOCK_MONOTONIC unless the producer set another clock's time: a
        // stamp of 0 or from the future is not measured.
        if captured_ns != 0 && captured_ns <= delivered_ns {
            let latency = delivered_ns - captured_ns;
            self.counters.latency_last_ns.set(latency);
            self.latency.record(latency);
        }
        Ok(())
    }

    pub(crate) fn rate_interval_ns(&self) -> Option<u64> {
        if self.effective_mode != tensorpool_codec::wire::Mode::RateLimited {
            return None;
        }
        // asked for RATE_LIMITED: its own cap; told to by a ConsumerConfig: the configured one
        let hz = match self.cfg.mode {
            crate::consumer::Mode::RateLimited { max_rate_hz } => max_rate_hz,
            crate::consumer::Mode::Stream => self.cfg.forced_rate_hz,
        };
        (hz > 0).then(|| 1_000_000_000 / u64::from(hz))
    }
}

/// What an announce names (URIs, geometry, layout), hashed: the key of its backoff.
/// Whether a slot drop means the writer lapped this consumer.
fn lost_to_overwrite(r: tensorpool_shm::DropReason) -> bool {
    matches!(
        r,
        tensorpool_shm::DropReason::Late | tensorpool_shm::DropReason::Overwritten
    )
}

fn announce_key(ann: &ShmPoolAnnounce<'_>) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    ann.header_region_uri.as_bytes().hash(&mut h);
    (ann.header_nslots, ann.header_slot_bytes, ann.layout_version).hash(&mut h);
    for p in ann.payload_pools.iter() {
        (p.pool_id, p.pool_nslots, p.stride_bytes).hash(&mut h);
        p.region_uri.as_bytes().hash(&mut h);
    }
    h.finish()
}

/// A per-consumer assignment from `ConsumerConfig`, or `None` when declined: empty channel and
/// 0 (Wire Spec §10.1.3), a malformed pair, or the shared stream itself (the other decline
/// form, PITFALLS #15).
fn assigned<'a>(
    channel: &'a [u8],
    stream_id: u32,
    shared: &crate::streams::Endpoint,
) -> Option<(&'a [u8], i32)> {
    if StreamRequest::classify(channel, stream_id) != StreamRequest::Requested {
        return None;
    }
    let id = i32::try_from(stream_id).ok()?;
    (!(channel == shared.channel.as_bytes() && id == shared.stream_id)).then_some((channel, id))
}
