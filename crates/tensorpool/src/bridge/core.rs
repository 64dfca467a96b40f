//! [`BridgeCore`]: the bridge's decisions without transport. The sender side cuts frames
//! into chunks ([`BridgeCore::send_frame`]) and forwards source announces
//! ([`BridgeCore::on_source_announce`]); the receiver side follows forwarded announces
//! ([`BridgeCore::on_control`]), validates and assembles chunks ([`BridgeCore::on_chunk`])
//! and hands each complete, validated frame to a [`FrameOut`]; [`BridgeCore::poll_timers`]
//! drops frames past the assembly timeout. Bytes and a clock in, sinks out: tests and the
//! fuzz target drive it without Aeron or shared memory.

use tensorpool_shm::SlotHeader;

use super::config::BridgeConfig;
use super::counters::{BridgeCells, Counters};
use super::state::{ASSEMBLY_SLOTS, MappingState};
use crate::chunks::{self as chunk, Assembler, SendOutcome, SourceFrame};
use crate::control::MessageSink;
use crate::frame::TensorSpec;

/// A complete frame, validated (Bridge Spec §6 steps 1-6), ready to be re-materialized.
#[derive(Debug)]
pub struct Assembled<'a> {
    /// Index of the mapping in the configuration.
    pub mapping: usize,
    /// Destination stream id of the mapping.
    pub dest_stream_id: u32,
    /// Source epoch.
    pub epoch: u64,
    /// Source sequence.
    pub seq: u64,
    /// Trace id (`None`: 0 on the wire).
    pub trace_id: Option<u64>,
    /// The decoded source slot header (its `pool_id` and `payload_slot` are the source's,
    /// to be ignored).
    pub header: &'a SlotHeader,
    /// The tensor the header describes, validated against the local limits.
    pub spec: &'a TensorSpec,
    /// The payload, `payloadLength` bytes.
    pub payload: &'a [u8],
}

/// Where complete frames go: the agent writes them into the destination stream through its
/// producer; tests record them.
pub trait FrameOut {
    /// Re-materializes `frame`; `false` if it could not (no pool fits, claim refused): the
    /// core counts it as dropped.
    fn publish(&mut self, frame: &Assembled<'_>) -> bool;
}

impl<F: FnMut(&Assembled<'_>) -> bool> FrameOut for F {
    fn publish(&mut self, frame: &Assembled<'_>) -> bool {
        self(frame)
    }
}

/// The bridge's logic (both sides, every mapping).
#[derive(Debug)]
pub struct BridgeCore {
    pub(super) chunk_bytes: u32,
    pub(super) max_payload_bytes: u32,
    pub(super) crc: bool,
    /// Sender: the largest window the payload publication reported (see
    /// [`chunk::send_frame`]).
    pub(super) window_seen: usize,
    pub(super) timeout_ns: u64,
    /// Metadata forwarding on (`forward_metadata` and a metadata channel).
    pub(super) forward_metadata: bool,
    /// TraceLinkSet forwarding on (`forward_tracelink` and a metadata channel).
    pub(super) forward_tracelink: bool,
    /// `forward_progress`.
    pub(super) forward_progress: bool,
    /// `forward_qos`.
    pub(super) forward_qos: bool,
    /// Per mapping: the stream id forwarded metadata is rewritten to.
    pub(super) metadata_ids: Vec<u32>,
    pub(super) mappings: Vec<MappingState>,
    pub(super) counters: BridgeCells,
}

impl BridgeCore {
    /// A core for `cfg`. A mapping's assembly buffers are sized by its first forwarded
    /// announce (the largest source stride, capped at `max_payload_bytes`), or by
    /// [`BridgeCore::set_local_capacity`].
    pub fn new(cfg: &BridgeConfig) -> Self {
        let timeout_ns = u64::from(cfg.assembly_timeout_ms) * 1_000_000;
        Self {
            chunk_bytes: cfg.effective_chunk_bytes(),
            max_payload_bytes: cfg.max_payload_bytes,
            crc: cfg.integrity_crc32c,
            window_seen: 0,
            timeout_ns,
            forward_metadata: cfg.forward_metadata && cfg.metadata_enabled(),
            forward_tracelink: cfg.forward_tracelink && cfg.metadata_enabled(),
            forward_progress: cfg.forward_progress,
            forward_qos: cfg.forward_qos,
            metadata_ids: cfg.mappings.iter().map(|m| m.metadata_stream_id).collect(),
            mappings: cfg
                .mappings
                .iter()
                .map(|m| MappingState {
                    source_stream_id: m.source_stream_id,
                    dest_stream_id: m.dest_stream_id,
                    announce: None,
                    highest_epoch: 0,
                    assembler: Assembler::new(1, 0, timeout_ns),
                    dest_remap_pending: false,
                    pending: None,
                })
                .collect(),
            counters: BridgeCells::default(),
        }
    }

    /// Sizes mapping `i`'s assembly buffers for the destination's largest stride (capped at
    /// `max_payload_bytes`), and sets its destination stream id. Allocates (setup only).
    pub fn set_local_capacity(&mut self, i: usize, dest_stream_id: u32, largest_stride: u32) {
        let cap = largest_stride.min(self.max_payload_bytes) as usize;
        let m = &mut self.mappings[i];
        m.dest_stream_id = dest_stream_id;
        m.assembler = Assembler::new(ASSEMBLY_SLOTS, cap, self.timeout_ns);
    }

    /// Sets mapping `i`'s destination stream id (once the receiver attached).
    pub fn set_dest_stream_id(&mut self, i: usize, dest_stream_id: u32) {
        self.mappings[i].dest_stream_id = dest_stream_id;
        if self.metadata_ids[i] == 0 {
            // metadata_stream_id defaults to dest_stream_id, known only now when allocated
            self.metadata_ids[i] = dest_stream_id;
        }
    }

    /// The mappings' states (read-only).
    pub fn mappings(&self) -> &[MappingState] {
        &self.mappings
    }

    /// The index of the mapping of source stream `stream_id`.
    pub fn mapping_of(&self, stream_id: u32) -> Option<usize> {
        self.mappings
            .iter()
            .position(|m| m.source_stream_id == stream_id)
    }

    /// Counters since start.
    pub fn counters(&self) -> Counters {
        self.counters.snapshot()
    }

    /// Registers the counters that name a kind as Aeron counters.
    pub fn attach_aeron_counters(
        &mut self,
        aeron: &tensorpool_aeron::AeronClient,
        scope: String,
        timeout: std::time::Duration,
    ) -> Result<(), tensorpool_aeron::AddError> {
        let mut reg = crate::counters::Registrar::new(
            aeron,
            crate::counters::Role::Bridge,
            0,
            0,
            scope,
            timeout,
        );
        BridgeCells::register(&mut reg)?;
        let counters = reg.finish()?;
        self.counters.attach(&mut counters.into_iter());
        Ok(())
    }

    /// Sender: sends a committed source frame in chunks into `payload` (Bridge Spec §5.2);
    /// `recheck` is the source slot's seqlock recheck. Counts the outcome; never waits.
    ///
    /// A frame the publication's window cannot take whole now is not started and becomes
    /// its mapping's **pending** frame ([`BridgeCore::pending`]): the caller reads it again
    /// from the source slot (under the seqlock) and passes it here again in a later duty
    /// cycle, until the window takes it. Policy, one pending frame per mapping, newest wins:
    /// a newer frame of the mapping passed here drops the pending one (counted
    /// `send_window_skips`: the newer frame is sent, or pending in its place); a pending
    /// frame the caller can no longer read (overwritten in the source, or its epoch gone)
    /// is dropped by [`BridgeCore::drop_pending`] (counted `send_abandoned`). A frame is
    /// never sent torn either way: every chunk is rechecked before it is committed.
    pub fn send_frame(
        &mut self,
        frame: &SourceFrame<'_>,
        recheck: &mut dyn FnMut() -> bool,
        payload: &mut dyn MessageSink,
    ) -> SendOutcome {
        let key = (frame.epoch, frame.seq);
        let mapping = self.mapping_of(frame.stream_id);
        if let Some(i) = mapping
            && self.mappings[i].pending.is_some_and(|p| p != key)
        {
            // newest wins: the pending frame is older than this one
            self.mappings[i].pending = None;
            self.counters.send_window_skips += 1;
        }
        let out = chunk::send_frame(
            frame,
            self.chunk_bytes,
            self.max_payload_bytes,
            self.crc,
            recheck,
            payload,
            &mut self.window_seen,
        );
        if let Some(i) = mapping {
            self.mappings[i].pending = matches!(out, SendOutcome::WindowFull { .. }).then_some(key);
        }
        let c = &mut self.counters;
        match out {
            SendOutcome::Sent { chunks } => {
                c.frames_sent += 1;
                c.chunks_sent += u64::from(chunks);
            }
            SendOutcome::Abandoned { chunks } => {
                c.send_abandoned += 1;
                c.chunks_sent += u64::from(chunks);
            }
            SendOutcome::Refused { chunks, .. } => {
                c.send_drops += 1;
                c.chunks_sent += u64::from(chunks);
            }
            SendOutcome::WindowFull { .. } if mapping.is_some() => {}
            SendOutcome::WindowFull { .. } => c.send_window_skips += 1,
            SendOutcome::TooLarge => c.send_too_large += 1,
        }
        out
    }

    /// Sender: mapping `i`'s pending frame (epoch, seq): the last frame of the mapping
    /// passed to [`BridgeCore::send_frame`], if the window could not take it whole.
    pub fn pending(&self, i: usize) -> Option<(u64, u64)> {
        self.mappings.get(i).and_then(|m| m.pending)
    }

    /// Sender: mapping `i`'s pending frame could not be read again (the source overwrote
    /// its slot, or moved to another epoch, before the window took it): dropped, counted
    /// `send_abandoned`. Returns whether there was one.
    pub fn drop_pending(&mut self, i: usize) -> bool {
        let had = self
            .mappings
            .get_mut(i)
            .and_then(|m| m.pending.take())
            .is_some();
        if had {
            self.counters.send_abandoned += 1;
        }
        had
    }

    /// Counts frames the destination refused because their source `seq` was below the
    /// destination's next sequence (they are never written under another sequence: §6
    /// step 9 keeps the logical sequence). Also counted in `dest_drops`.
    pub fn count_seq_behind(&mut self, n: u64) {
        if n > 0 {
            self.counters.seq_behind_drops += n;
        }
    }

    /// Receiver: whether mapping `i`'s source moved to a new epoch since the last call; the
    /// agent then moves the destination to a new local epoch (re-attaches its producer)
    /// before it writes a frame of the new source epoch (Bridge Spec §8).
    pub fn take_dest_remap(&mut self, i: usize) -> bool {
        std::mem::take(&mut self.mappings[i].dest_remap_pending)
    }

    /// Receiver: counts a destination moved to a new local epoch.
    pub fn count_dest_remap(&mut self, ok: bool) {
        if ok {
            self.counters.dest_remaps += 1;
        } else {
            self.counters.dest_remap_failures += 1;
        }
    }

    /// Receiver: drops frames past the assembly timeout (Bridge Spec §5.3a); returns how
    /// many.
    pub fn poll_timers(&mut self, now_ns: u64) -> usize {
        let mut n = 0;
        for m in &mut self.mappings {
            n += m.assembler.expire(now_ns).timed_out;
        }
        self.counters.assembly_timeouts += n;
        n as usize
    }
}
