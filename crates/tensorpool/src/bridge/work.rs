//! The bridge agent's duty cycle, as an outline: sender (source announces forwarded, source
//! frames chunked into the payload publication), receiver (forwarded announces, chunks into
//! the core, complete frames claimed and committed in the destination producers), the
//! assembly timeout, and the consumers' and producers' own duty cycles.

use tensorpool_agent::{AgentError, AgentResult};

use super::Bridge;
use super::core::Assembled;
use crate::chunks::{SendOutcome, SourceFrame};
use crate::control::MessageSink;
use crate::frame::Frame;
use crate::prelude::FrameStamp;

/// Sends a committed source frame (read in place, rechecked before every chunk is
/// committed); `None` if its slot header block could not be encoded.
fn send_source(
    core: &mut super::BridgeCore,
    frame: &Frame<'_>,
    header: &mut [u8; tensorpool_shm::HEADER_SLOT_BYTES],
    payload: &mut dyn MessageSink,
) -> Option<SendOutcome> {
    if !frame.slot_header_bytes(header) {
        return None;
    }
    let f = SourceFrame {
        stream_id: frame.stream_id(),
        epoch: frame.epoch(),
        seq: frame.seq(),
        trace_id: frame.trace_id().unwrap_or(0),
        header,
        payload: frame.bytes(),
    };
    Some(core.send_frame(&f, &mut || frame.recheck().is_ok(), payload))
}

impl Bridge {
    pub(super) fn duty_cycle(&mut self, now_ns: u64) -> AgentResult {
        let Self {
            core,
            sources,
            dests,
            announce_sub,
            payload_pub,
            control_pub,
            payload_sub,
            control_sub,
            metadata_src,
            metadata_dst,
            control_src,
            control_dst,
            header,
            ctx,
            local,
            reattach_at,
            ..
        } = self;
        let mut work = 0;
        let mut seq_behind = 0u64;
        let seq_behind = &mut seq_behind;
        // sender: source announces -> bridge control channel (§7.2)
        if let (Some(sub), Some(control)) = (announce_sub.as_mut(), control_pub.as_mut()) {
            sub.poll(
                |buf, _| work += core.on_source_announce(buf, control),
                super::FRAGMENT_LIMIT,
            )
            .map_err(AgentError::failed)?;
        }
        // sender: source progress / QoS -> bridge control channel (§9)
        if let Some(control) = control_pub.as_mut() {
            for sub in control_src.iter_mut() {
                sub.poll(
                    |buf, _| work += core.on_source_control(buf, control),
                    super::FRAGMENT_LIMIT,
                )
                .map_err(AgentError::failed)?;
            }
        }
        // sender: source metadata -> bridge metadata channel (§7.1)
        if let Some((sub, out)) = metadata_src.as_mut() {
            sub.poll(
                |buf, _| work += core.on_source_metadata(buf, out),
                super::FRAGMENT_LIMIT,
            )
            .map_err(AgentError::failed)?;
        }
        // sender: committed source frames -> chunks (never a FrameDescriptor over UDP, §7).
        // A frame the payload publication's window could not take whole stays pending: it
        // is read again from its slot (seqlock) and tried first, before newer frames (which
        // supersede it, newest wins); gone from the slot, it is dropped (counted).
        if let Some(payload) = payload_pub.as_mut() {
            for (i, s) in sources.iter_mut().enumerate() {
                if let Some(key) = s.pending {
                    let out = s.consumer.reread(&key, |frame| {
                        send_source(core, frame, header, &mut *payload)
                    });
                    match out {
                        Some(Some(SendOutcome::WindowFull { .. })) => {}
                        None | Some(None) => {
                            core.drop_pending(i);
                            s.pending = None;
                            work += 1;
                        }
                        Some(Some(_)) => {
                            s.pending = None;
                            work += 1;
                        }
                    }
                }
                let pending = &mut s.pending;
                let polled = s.consumer.poll_at(
                    now_ns,
                    &mut |frame: &Frame<'_>| {
                        let out = send_source(core, frame, header, &mut *payload);
                        *pending = matches!(out, Some(SendOutcome::WindowFull { .. }))
                            .then(|| frame.key());
                    },
                    super::FRAME_LIMIT,
                );
                work += polled.map_err(AgentError::failed)?;
            }
        }
        // receiver: forwarded announces, then chunks -> destination producers (§6)
        if let Some(sub) = control_sub.as_mut() {
            sub.poll(
                |buf, _| {
                    work += core.on_control(buf, now_ns);
                    work += core.on_forwarded_control(buf, control_dst);
                },
                super::FRAGMENT_LIMIT,
            )
            .map_err(AgentError::failed)?;
        }
        // receiver: a source epoch change moves the destination to a new local epoch
        // before any frame of the new source epoch is written (§8)
        for (i, dest) in dests.iter_mut().enumerate() {
            let retry_due = reattach_at[i].is_some_and(|t| now_ns >= t);
            if !core.take_dest_remap(i) && !retry_due {
                continue;
            }
            // a destination epoch nothing was written into yet (the attach at start, or the
            // previous re-attach) already is a fresh local epoch for the new source epoch
            if dest
                .as_ref()
                .is_some_and(|d| d.producer.next_seq() == 0 && d.producer.is_active())
            {
                continue;
            }
            let id = core.mappings()[i].dest_stream_id;
            work += 1;
            match super::reattach_destination(ctx, local, id, dest.take()) {
                Ok(producer) => {
                    tracing::info!(
                        dest = id,
                        epoch = producer.epoch().unwrap_or(0),
                        "bridge destination moved to a new epoch (source epoch changed)"
                    );
                    *dest = Some(super::DestIo { producer });
                    reattach_at[i] = None;
                    core.count_dest_remap(true);
                }
                Err(e) => {
                    tracing::warn!(dest = id, error = %e, "bridge destination re-attach failed; frames dropped until it succeeds");
                    reattach_at[i] = Some(now_ns + super::REATTACH_RETRY_NS);
                    core.count_dest_remap(false);
                }
            }
        }
        if let Some((sub, local)) = metadata_dst.as_mut() {
            sub.poll(
                |buf, _| work += core.on_metadata(buf, local),
                super::FRAGMENT_LIMIT,
            )
            .map_err(AgentError::failed)?;
        }
        if let Some(sub) = payload_sub.as_mut() {
            sub.poll(
                |buf, _| {
                    work += core.on_chunk(buf, now_ns, &mut |f: &Assembled<'_>| {
                        let Some(Some(d)) = dests.get_mut(f.mapping) else {
                            return false;
                        };
                        // §6: the logical sequence, capture time and meta_version are
                        // preserved; a frame whose seq is behind the destination's is
                        // dropped, never written under another sequence (a new source
                        // epoch moved the destination to a new epoch first, seq from 0)
                        if f.seq < d.producer.next_seq() {
                            *seq_behind += 1;
                            return false;
                        }
                        let stamp = FrameStamp {
                            seq: f.seq,
                            timestamp_ns: f.header.timestamp_ns,
                            meta_version: f.header.meta_version,
                        };
                        let len = f.payload.len();
                        let mut claim = match d.producer.claim_stamped(f.spec, len, stamp) {
                            Ok(c) => c,
                            Err(e) => {
                                tracing::debug!(error = %e, seq = f.seq, "destination claim refused");
                                return false;
                            }
                        };
                        claim.payload_mut().copy_from_slice(f.payload);
                        claim.set_trace_id(f.trace_id);
                        claim.commit();
                        true
                    });
                },
                super::FRAGMENT_LIMIT,
            )
            .map_err(AgentError::failed)?;
        }
        core.count_seq_behind(*seq_behind);
        work += core.poll_timers(now_ns);
        for d in dests.iter_mut().flatten() {
            work += d.producer.do_work(now_ns);
        }
        Ok(work)
    }
}
