//! The payload fallback (Wire Spec §10.1.3, §11, §15.12): a consumer in FALLBACK whose
//! `payload_fallback_uri` names a bridge's payload channel receives its frames as
//! `BridgeFrameChunk`s (Bridge Spec §5) instead of from shared memory.
//!
//! * `aeron:<media>?...` is the Aeron channel the chunks arrive on. Its stream id is the
//!   channel's `stream-id` parameter (Aeron's own URI parameter since 1.47, "the stream id
//!   for the channel"), else `consumer.fallback_stream_id`; with neither the URI is refused.
//!   The bridge sender publishes on its `payload_channel` / `payload_stream_id` (Bridge Spec
//!   §10), so a supervisor points a consumer at `<payload_channel>|stream-id=<payload_stream_id>`.
//! * `bridge://<id>` is resolved through the consumer's own configuration: the route
//!   `[consumer.bridges.<id>]` (`channel`, `stream_id`). The spec leaves the scheme to
//!   deployments ("a documented scheme", §10.1.3); an id without a route is refused.
//! * Any other scheme is unsupported (§10.1.3).
//!
//! A refused URI leaves the consumer in FALLBACK without frames, the reason in
//! `last_rejection`. Chunks are taken only for the consumer's own stream id (the chunk's
//! `streamId` is the bridged source stream); every §5.2 field rule, the CRC32C (required with
//! `consumer.fallback_integrity_crc32c`, else checked when present) and the assembly timeout
//! (§5.3a) apply as on a bridge receiver; an older epoch than the highest seen is dropped and
//! a newer one drops every frame in flight (§8). A complete frame's 256-byte header block
//! must decode to a committed slot of this `seq` with a valid TensorHeader describing exactly
//! the payload; it then goes to the same frame handler as SHM frames, as a [`crate::frame::Frame`]
//! over the assembly buffer: a private copy, so its `recheck()` is always `Ok`.

use tensorpool_shm::FrameView;

use super::FrameHandler;
use super::config::ConsumerConfig;
use super::core::ConsumerCore;
use super::counters::DropCause;
use crate::chunks::{Assembler, ChunkDrop, ChunkLimits, Placed, check_fields, decode_chunk};
use crate::frame::{DescriptorInfo, Frame};

/// Frames assembled at once.
pub(crate) const FALLBACK_SLOTS: usize = 4;
/// Largest chunk taken (the schema's `chunkLength` maximum, `bridge.max_chunk_bytes`).
const MAX_CHUNK_BYTES: u32 = 65_535;

/// Where a `payload_fallback_uri` says the frames come from: an Aeron channel and stream
/// id, or why it cannot be served (see the module docs).
pub fn resolve_fallback(uri: &str, cfg: &ConsumerConfig) -> Result<(String, i32), String> {
    if let Some(rest) = uri.strip_prefix("bridge://") {
        if rest.is_empty() {
            return Err(format!("payload_fallback_uri {uri:?}: no bridge id"));
        }
        return cfg
            .fallback_bridges
            .iter()
            .find(|b| b.id == rest)
            .map(|b| (b.channel.clone(), b.stream_id))
            .ok_or_else(|| {
                format!(
                    "payload_fallback_uri {uri:?}: unknown bridge id {rest:?} (no [consumer.bridges.{rest}] route)"
                )
            });
    }
    if uri.starts_with("aeron:") {
        let param = uri
            .split_once('?')
            .map(|(_, q)| q)
            .into_iter()
            .flat_map(|q| q.split('|'))
            .find_map(|kv| kv.strip_prefix("stream-id="));
        return match param {
            Some(v) => match v.parse::<i32>() {
                Ok(id) if id > 0 => Ok((uri.to_owned(), id)),
                _ => Err(format!(
                    "payload_fallback_uri {uri:?}: stream-id {v:?} is not a positive stream id"
                )),
            },
            None if cfg.fallback_stream_id > 0 => Ok((uri.to_owned(), cfg.fallback_stream_id)),
            None => Err(format!(
                "payload_fallback_uri {uri:?} names no stream-id and consumer.fallback_stream_id is not set"
            )),
        };
    }
    if uri.is_empty() {
        return Err("use_shm = false without a payload_fallback_uri: no frames".into());
    }
    Err(format!(
        "payload_fallback_uri {uri:?}: undefined scheme, unsupported (Wire Spec §10.1.3)"
    ))
}

/// The receiving side of a served fallback: where chunks come from, the assembler
/// (allocated once, on entering FALLBACK), the highest epoch seen.
#[derive(Debug)]
pub(crate) struct FallbackRx {
    pub channel: String,
    pub stream_id: i32,
    assembler: Assembler,
    highest_epoch: Option<u64>,
    limits: ChunkLimits,
}

impl FallbackRx {
    pub fn new(channel: String, stream_id: i32, cfg: &ConsumerConfig) -> Self {
        let ns = u64::try_from(cfg.fallback_assembly_timeout.as_nanos()).unwrap_or(u64::MAX);
        Self {
            channel,
            stream_id,
            assembler: Assembler::new(FALLBACK_SLOTS, cfg.fallback_max_payload_bytes as usize, ns),
            highest_epoch: None,
            limits: ChunkLimits {
                chunk_bytes: MAX_CHUNK_BYTES,
                max_payload_bytes: cfg.fallback_max_payload_bytes,
                require_crc: cfg.fallback_integrity_crc32c,
                check_present_crc: true,
            },
        }
    }
}

impl ConsumerCore {
    /// Enters (or stays in) FALLBACK on `uri`, ordered by a `ConsumerConfig` or after a
    /// local mapping failure. The URI is resolved now; a served one gets its receiver (the
    /// agent subscribes), a refused one is recorded in `last_rejection`.
    pub(crate) fn set_fallback(&mut self, uri: &[u8], ordered: bool) {
        if self
            .fallback
            .as_ref()
            .is_some_and(|f| f.uri.as_bytes() == uri && f.ordered == ordered)
        {
            return;
        }
        let f = super::state::Fallback::new(uri, ordered);
        let target = match resolve_fallback(&f.uri, &self.cfg) {
            Ok(t) => Some(t),
            Err(reason) => {
                self.reject(0, "cannot serve the payload fallback", reason);
                None
            }
        };
        let same = match (&self.fallback_rx, &target) {
            (Some(rx), Some((ch, id))) => rx.channel == *ch && rx.stream_id == *id,
            (None, None) => true,
            _ => false,
        };
        if !same {
            self.fallback_rx = target
                .as_ref()
                .map(|(ch, id)| FallbackRx::new(ch.clone(), *id, &self.cfg));
            self.fallback_changed = true;
        }
        self.fallback = Some(super::state::Fallback { target, ..f });
    }

    /// Leaves FALLBACK (frames come from SHM again).
    pub(crate) fn clear_fallback(&mut self) {
        self.fallback = None;
        if self.fallback_rx.take().is_some() {
            self.fallback_changed = true;
        }
    }

    /// The channel and stream id fallback chunks are read from, while one is served.
    pub fn fallback_source(&self) -> Option<(&str, i32)> {
        self.fallback_rx
            .as_ref()
            .map(|rx| (rx.channel.as_str(), rx.stream_id))
    }

    /// One message of the fallback payload stream: a `BridgeFrameChunk`. Checked, placed,
    /// and a frame it completes is validated and handed to `handler` (module docs). Returns
    /// 1 if a frame was accepted. Ignored when no fallback is served.
    pub fn on_fallback_chunk<H: FrameHandler + ?Sized>(
        &mut self,
        msg: &[u8],
        now_ns: u64,
        handler: &mut H,
    ) -> usize {
        let interval = self.rate_interval_ns();
        let Some(rx) = self.fallback_rx.as_mut() else {
            return 0;
        };
        self.counters.fallback_chunks += 1;
        let c = match decode_chunk(msg) {
            Ok(c) => c,
            Err(_) => {
                self.counters.fallback_chunk_drops += 1;
                return 0;
            }
        };
        if c.stream_id != self.cfg.stream_id {
            // another source bridged on the same channel: not ours
            return 0;
        }
        match rx.highest_epoch {
            Some(h) if c.epoch < h => {
                self.counters.fallback_chunk_drops += 1;
                return 0;
            }
            Some(h) if c.epoch > h => {
                // a remap boundary (Bridge Spec §8): every frame of the older epoch goes
                self.counters.fallback_frame_drops += rx.assembler.drop_before(c.epoch);
                self.seqs = Default::default();
                self.last_gate_ts = None;
                rx.highest_epoch = Some(c.epoch);
            }
            Some(_) => {}
            None => rx.highest_epoch = Some(c.epoch),
        }
        let chunk = match check_fields(&c, rx.limits) {
            Ok(chunk) => chunk,
            Err(why) => {
                self.counters.fallback_chunk_drops += 1;
                if why == ChunkDrop::Crc {
                    self.counters.fallback_crc_errors += 1;
                    if rx.assembler.kill_frame(c.epoch, c.seq) {
                        self.counters.fallback_frame_drops += 1;
                    }
                }
                return 0;
            }
        };
        let slot = match rx.assembler.place(&chunk, now_ns) {
            Placed::Complete(slot) => slot,
            Placed::Stored | Placed::Duplicate => return 0,
            Placed::StoredEvicting | Placed::Conflict => {
                self.counters.fallback_frame_drops += 1;
                return 0;
            }
            Placed::OfDeadFrame => {
                self.counters.fallback_chunk_drops += 1;
                return 0;
            }
        };
        let s = rx.assembler.slot(slot);
        let (epoch, seq, trace_id) = (s.epoch(), s.seq(), s.trace_id());
        let view = tensorpool_shm::slot::decode_slot(s.header())
            .ok()
            .filter(|h| h.seq_commit >> 1 == seq)
            .and_then(|h| FrameView::detached(h, s.payload()).ok());
        let Some(view) = view else {
            rx.assembler.kill(slot);
            self.counters.fallback_frame_drops += 1;
            return 0;
        };
        if self.seqs.regressed(seq) {
            self.drops.add(DropCause::SeqRegressed);
            return 0;
        }
        let gap = self.seqs.prove(seq);
        if gap > 0 {
            self.drops.gap += gap;
            let max = self.cfg.max_outstanding_seq_gap;
            if max > 0 && gap > max {
                self.counters.resyncs += 1;
            }
        }
        if let Some(interval) = interval {
            let t = Some(view.header().timestamp_ns)
                .filter(|&t| t != 0)
                .unwrap_or(now_ns);
            if self
                .last_gate_ts
                .is_some_and(|last| t.saturating_sub(last) < interval && t >= last)
            {
                self.drops.add(DropCause::RateLimited);
                return 0;
            }
            self.last_gate_ts = Some(t);
        }
        let info = DescriptorInfo {
            stream_id: self.cfg.stream_id,
            epoch,
            publish_timestamp_ns: None,
            trace_id: (trace_id != 0).then_some(trace_id),
        };
        let (captured_ns, len) = (view.header().timestamp_ns, view.payload().len() as u64);
        let delivered_ns = tensorpool_agent::monotonic_ns();
        let frame = Frame::new(view, info);
        handler.on_frame(&frame);
        // a private copy: nothing can overwrite it, the recheck is Ok
        if frame.recheck().is_err() {
            return 0;
        }
        self.counters.accepted += 1;
        self.counters.bytes += len;
        self.counters.fallback_frames += 1;
        if captured_ns != 0 && captured_ns <= delivered_ns {
            let latency = delivered_ns - captured_ns;
            self.counters.latency_last_ns.set(latency);
            self.latency.record(latency);
        }
        1
    }

    /// Drops fallback frames still incomplete after the assembly timeout (§5.3a).
    pub(crate) fn expire_fallback(&mut self, now_ns: u64) {
        if let Some(rx) = self.fallback_rx.as_mut() {
            self.counters.fallback_frame_drops += rx.assembler.expire(now_ns).timed_out;
        }
    }
}
