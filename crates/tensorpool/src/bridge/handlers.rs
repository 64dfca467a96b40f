//! One `on_<message>` per inbound message: the source announce (sender), the forwarded
//! announce on the bridge control channel and the chunks on the payload channel
//! (receiver).

use tensorpool_codec::tracelink::{self, TraceLinkSet};
use tensorpool_codec::{Message, wire};

use super::core::{Assembled, BridgeCore, FrameOut};
use super::proxy;
use super::state::{ASSEMBLY_SLOTS, SourceAnnounce};
use crate::chunks::{Assembler, ChunkDrop, ChunkLimits, Placed, check_fields, decode_chunk};
use crate::control::{Gate, MessageSink, gate, send, send_bytes, tid, wire_template};
use crate::frame::TensorSpec;

/// Whether `msg` is a `TraceLinkSet` (schema 904) of a version we read.
fn is_tracelink(msg: &[u8]) -> bool {
    matches!(
        gate(msg, tracelink::SCHEMA_ID, tracelink::SCHEMA_VERSION),
        Gate::Accept(h) if h.template_id == <TraceLinkSet<'_> as Message<'_>>::TEMPLATE_ID
    )
}

const QOS_PRODUCER: u16 = <wire::QosProducer as Message<'_>>::TEMPLATE_ID;

/// Where the receiver republishes forwarded progress and QoS: the local control stream of
/// each mapping (`dest_control_stream_id`), if it has one.
pub trait ControlOut {
    /// The sink of mapping `i`.
    fn sink(&mut self, i: usize) -> Option<&mut dyn MessageSink>;
}

impl<S: MessageSink> ControlOut for Vec<Option<S>> {
    fn sink(&mut self, i: usize) -> Option<&mut dyn MessageSink> {
        self.get_mut(i)?.as_mut().map(|s| s as &mut dyn MessageSink)
    }
}

impl BridgeCore {
    /// Sender: a message of the source stream's announce stream. A `ShmPoolAnnounce` of a
    /// mapped source stream is forwarded unchanged on the bridge control channel (§7.2).
    /// Returns 1 if forwarded.
    pub fn on_source_announce(&mut self, msg: &[u8], control: &mut dyn MessageSink) -> usize {
        if wire_template(msg) != Some(tid::ANNOUNCE) {
            return 0;
        }
        let Ok(a) = wire::ShmPoolAnnounce::decode(msg) else {
            return 0;
        };
        if self.mapping_of(a.stream_id).is_none() {
            return 0;
        }
        match proxy::send_announce(control, msg) {
            Ok(()) => {
                self.counters.announces_forwarded += 1;
                1
            }
            Err(_) => 0,
        }
    }

    /// Sender: a message of the source host's metadata stream. `DataSourceAnnounce` and
    /// `DataSourceMeta` (with `forward_metadata`) and `TraceLinkSet` (with
    /// `forward_tracelink`) of a mapped source stream are forwarded unchanged on the bridge
    /// metadata channel (§7.1). Returns 1 if forwarded.
    pub fn on_source_metadata(&mut self, msg: &[u8], metadata: &mut dyn MessageSink) -> usize {
        let stream_id = if is_tracelink(msg) {
            if !self.forward_tracelink {
                return 0;
            }
            TraceLinkSet::decode(msg).map(|m| m.stream_id)
        } else {
            if !self.forward_metadata {
                return 0;
            }
            match wire_template(msg) {
                Some(tid::DS_ANNOUNCE) => {
                    wire::DataSourceAnnounce::decode(msg).map(|m| m.stream_id)
                }
                Some(tid::DS_META) => wire::DataSourceMeta::decode(msg).map(|m| m.stream_id),
                _ => return 0,
            }
        };
        let Ok(stream_id) = stream_id else {
            return 0;
        };
        if self.mapping_of(stream_id).is_none() {
            return 0;
        }
        match send_bytes(metadata, msg) {
            Ok(()) => {
                self.counters.metadata_forwarded += 1;
                1
            }
            Err(_) => 0,
        }
    }

    /// Receiver: a message of the bridge metadata channel. `DataSourceAnnounce`,
    /// `DataSourceMeta` and `TraceLinkSet` of a mapped source stream are republished on the local metadata
    /// stream with `stream_id` rewritten to the mapping's `metadata_stream_id` (default
    /// `dest_stream_id`) and `meta_version` kept (§7.1). Returns 1 if republished.
    pub fn on_metadata(&mut self, msg: &[u8], local: &mut dyn MessageSink) -> usize {
        if is_tracelink(msg) {
            if !self.forward_tracelink {
                return 0;
            }
            let Ok(mut m) = TraceLinkSet::decode(msg) else {
                self.counters.malformed += 1;
                return 0;
            };
            let Some(i) = self.mapping_of(m.stream_id) else {
                return 0;
            };
            m.stream_id = self.metadata_ids[i];
            return match send(local, &m) {
                Ok(()) => {
                    self.counters.metadata_republished += 1;
                    1
                }
                Err(_) => 0,
            };
        }
        if !self.forward_metadata {
            return 0;
        }
        let sent = match wire_template(msg) {
            Some(tid::DS_ANNOUNCE) => {
                let Ok(mut m) = wire::DataSourceAnnounce::decode(msg) else {
                    self.counters.malformed += 1;
                    return 0;
                };
                let Some(i) = self.mapping_of(m.stream_id) else {
                    return 0;
                };
                m.stream_id = self.metadata_ids[i];
                send(local, &m)
            }
            Some(tid::DS_META) => {
                let Ok(mut m) = wire::DataSourceMeta::decode(msg) else {
                    self.counters.malformed += 1;
                    return 0;
                };
                let Some(i) = self.mapping_of(m.stream_id) else {
                    return 0;
                };
                m.stream_id = self.metadata_ids[i];
                send(local, &m)
            }
            _ => return 0,
        };
        match sent {
            Ok(()) => {
                self.counters.metadata_republished += 1;
                1
            }
            Err(_) => 0,
        }
    }

    /// Sender: a message of a mapping's source control stream (`source_control_stream_id`).
    /// With `forward_progress`, a `FrameProgress` of a mapped source stream, and with
    /// `forward_qos`, a `QosProducer` / `QosConsumer` of one, is forwarded unchanged (its
    /// `streamId` is the source's) on the bridge control channel (§9). Returns 1 if
    /// forwarded.
    pub fn on_source_control(&mut self, msg: &[u8], control: &mut dyn MessageSink) -> usize {
        let Some(stream_id) = self.forwardable(msg) else {
            return 0;
        };
        if self.mapping_of(stream_id).is_none() {
            return 0;
        }
        match send_bytes(control, msg) {
            Ok(()) => {
                self.counters.control_forwarded += 1;
                1
            }
            Err(_) => 0,
        }
    }

    /// The stream id of a progress or QoS message that forwarding is on for.
    fn forwardable(&self, msg: &[u8]) -> Option<u32> {
        match wire_template(msg)? {
            tid::PROGRESS if self.forward_progress => {
                wire::FrameProgress::decode(msg).ok().map(|m| m.stream_id)
            }
            tid::QOS_CONSUMER if self.forward_qos => {
                wire::QosConsumer::decode(msg).ok().map(|m| m.stream_id)
            }
            t if t == QOS_PRODUCER && self.forward_qos => {
                wire::QosProducer::decode(msg).ok().map(|m| m.stream_id)
            }
            _ => None,
        }
    }

    /// Receiver: a `FrameProgress` / `QosProducer` / `QosConsumer` forwarded on the bridge
    /// control channel is republished on the mapping's local `dest_control_stream_id` with
    /// `streamId` rewritten to the destination stream; every other field is kept (§9). A
    /// message of no mapping, or of a mapping without a destination control stream, is
    /// dropped. Returns 1 if republished.
    pub fn on_forwarded_control(&mut self, msg: &[u8], local: &mut dyn ControlOut) -> usize {
        let Some(stream_id) = self.forwardable(msg) else {
            return 0;
        };
        let Some(i) = self.mapping_of(stream_id) else {
            return 0;
        };
        let dest = self.mappings[i].dest_stream_id;
        let Some(out) = local.sink(i) else {
            return 0;
        };
        let sent = match wire_template(msg) {
            Some(tid::PROGRESS) => wire::FrameProgress::decode(msg).map(|mut m| {
                m.stream_id = dest;
                send(out, &m)
            }),
            Some(tid::QOS_CONSUMER) => wire::QosConsumer::decode(msg).map(|mut m| {
                m.stream_id = dest;
                send(out, &m)
            }),
            _ => wire::QosProducer::decode(msg).map(|mut m| {
                m.stream_id = dest;
                send(out, &m)
            }),
        };
        match sent {
            Ok(Ok(())) => {
                self.counters.control_republished += 1;
                1
            }
            _ => 0,
        }
    }

    /// Receiver: a message of the bridge control channel. The schema id is checked before
    /// anything is decoded (§7.2); a forwarded `ShmPoolAnnounce` of a mapped stream becomes
    /// the mapping's reference; a higher epoch drops every frame in flight (§8); an older
    /// epoch than the highest seen is ignored.
    pub fn on_control(&mut self, msg: &[u8], _now_ns: u64) -> usize {
        match gate(msg, wire::SCHEMA_ID, wire::SCHEMA_VERSION) {
            Gate::Accept(h) if h.template_id == tid::ANNOUNCE => {}
            Gate::Accept(_) | Gate::OtherSchema => return 0,
            Gate::NewerVersion(_) | Gate::Truncated(_) => {
                self.counters.malformed += 1;
                return 0;
            }
        }
        let Ok(a) = wire::ShmPoolAnnounce::decode(msg) else {
            self.counters.malformed += 1;
            return 0;
        };
        let Some(i) = self.mapping_of(a.stream_id) else {
            return 0;
        };
        let m = &mut self.mappings[i];
        if a.epoch < m.highest_epoch {
            return 0;
        }
        if a.epoch > m.highest_epoch && m.announce.is_some() {
            // remap boundary: every frame of the older epoch is dropped, and the destination
            // moves to a new local epoch before a frame of the new source epoch is written
            // (§8), so that its sequence can restart with the source's (§6 step 9)
            self.counters.epoch_drops += m.assembler.drop_before(a.epoch);
            m.dest_remap_pending = true;
            self.counters.source_epoch_changes += 1;
        }
        m.highest_epoch = a.epoch;
        let announce = SourceAnnounce::new(
            a.epoch,
            a.payload_pools.iter().map(|p| (p.pool_id, p.stride_bytes)),
        );
        // assembly buffers hold the largest source stride (no frame may exceed it, §6
        // step 6): sized on the first announce and grown on a remap, never per frame
        let want = announce.largest_stride().min(self.max_payload_bytes) as usize;
        if want > m.assembler.capacity() {
            m.assembler = Assembler::new(ASSEMBLY_SLOTS, want, self.timeout_ns);
        }
        m.announce = Some(announce);
        self.counters.announces_received += 1;
        1
    }

    /// Receiver: one `BridgeFrameChunk`. Every field is checked (§5.2); a chunk that breaks
    /// a rule is dropped and counted, never a panic. A chunk completing its frame leads to
    /// the header checks of §6 and, if they pass, to `out`. Returns 1 if the chunk was used.
    pub fn on_chunk(&mut self, msg: &[u8], now_ns: u64, out: &mut dyn FrameOut) -> usize {
        match self.check_and_place(msg, now_ns, out) {
            Ok(n) => n,
            Err(why) => {
                self.counters.chunk_drops += 1;
                match why {
                    ChunkDrop::NoAnnounce => self.counters.no_announce_drops += 1,
                    ChunkDrop::Crc => self.counters.crc_errors += 1,
                    ChunkDrop::Malformed => self.counters.malformed += 1,
                    _ => {}
                }
                0
            }
        }
    }

    fn check_and_place(
        &mut self,
        msg: &[u8],
        now_ns: u64,
        out: &mut dyn FrameOut,
    ) -> Result<usize, ChunkDrop> {
        let c = decode_chunk(msg)?;
        let i = self
            .mapping_of(c.stream_id)
            .ok_or(ChunkDrop::UnknownStream)?;
        let (chunk_bytes, max_payload, crc) = (self.chunk_bytes, self.max_payload_bytes, self.crc);
        let m = &mut self.mappings[i];
        let announce = m.announce.ok_or(ChunkDrop::NoAnnounce)?;
        if c.epoch != announce.epoch {
            return Err(ChunkDrop::Epoch);
        }
        let limits = ChunkLimits {
            chunk_bytes,
            max_payload_bytes: max_payload
                .min(u32::try_from(m.assembler.capacity()).unwrap_or(u32::MAX)),
            require_crc: crc,
            check_present_crc: false,
        };
        let chunk = match check_fields(&c, limits) {
            Ok(chunk) => chunk,
            Err(ChunkDrop::Crc) => {
                if m.assembler.kill_frame(c.epoch, c.seq) {
                    self.counters.frame_drops += 1;
                }
                return Err(ChunkDrop::Crc);
            }
            Err(e) => return Err(e),
        };
        let placed = m.assembler.place(&chunk, now_ns);
        match placed {
            Placed::Stored => Ok(1),
            Placed::StoredEvicting => {
                self.counters.frame_drops += 1;
                Ok(1)
            }
            Placed::Duplicate => {
                self.counters.duplicates += 1;
                Ok(0)
            }
            Placed::OfDeadFrame => Err(ChunkDrop::Offset),
            Placed::Conflict => {
                self.counters.frame_drops += 1;
                Ok(0)
            }
            Placed::Complete(slot) => {
                self.complete(i, slot, announce, out);
                Ok(1)
            }
        }
    }

    /// §6: the header block must decode to a v1.2 slot with an embedded TensorHeader of
    /// the local limits, describe exactly this payload at offset 0, carry this `seq`, and
    /// name a pool of the forwarded announce whose stride holds the payload.
    fn complete(
        &mut self,
        i: usize,
        slot: usize,
        announce: SourceAnnounce,
        out: &mut dyn FrameOut,
    ) {
        let m = &mut self.mappings[i];
        let s = m.assembler.slot(slot);
        let len = s.payload().len() as u64;
        let header = tensorpool_shm::slot::decode_slot(s.header())
            .ok()
            .filter(|h| {
                u64::from(h.values_len_bytes) == len
                    && h.payload_offset == 0
                    && h.seq_commit >> 1 == s.seq()
                    && announce
                        .stride(h.pool_id)
                        .is_some_and(|stride| u64::from(stride) >= len)
            });
        let spec = header.as_ref().and_then(|h| {
            TensorSpec::from_tensor_header(h.tensor.clone())
                .ok()
                .filter(|sp| sp.len_bytes() as u64 <= len)
        });
        let (Some(header), Some(spec)) = (header, spec) else {
            m.assembler.kill(slot);
            self.counters.header_drops += 1;
            self.counters.frame_drops += 1;
            return;
        };
        let frame = Assembled {
            mapping: i,
            dest_stream_id: m.dest_stream_id,
            epoch: s.epoch(),
            seq: s.seq(),
            trace_id: (s.trace_id() != 0).then_some(s.trace_id()),
            header: &header,
            spec: &spec,
            payload: s.payload(),
        };
        if out.publish(&frame) {
            self.counters.frames_received += 1;
        } else {
            self.counters.dest_drops += 1;
            self.counters.frame_drops += 1;
        }
    }
}
