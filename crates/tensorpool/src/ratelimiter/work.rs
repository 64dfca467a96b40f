//! The duty cycle, per mapping: read the source's frames through the core (forward now, hold
//! a copy, or drop), then release the held frame whose rate slot has opened. Copies go through
//! [`Frame::copy_to`], which rechecks the seqlock after copying: a frame overwritten while it
//! was read is never forwarded (counted `torn`). A destination claim that fails is a drop,
//! never a wait (RateLimiter §5); the source is never slowed (its ring is only read).

use tensorpool_agent::{AgentError, AgentResult, monotonic_ns};

use super::core::{Lost, RateLimiterCore};
use super::state::Action;
use super::{HoldBuf, LaneIo, REBUILD_BACKOFF_NS, RateLimiter};
use crate::prelude::{ClaimError, ConsumerState, Context, Frame, FrameStamp, Producer};
use tensorpool_codec::wire::Mode;

pub(super) fn duty_cycle(rl: &mut RateLimiter, now_ns: u64) -> AgentResult {
    let RateLimiter {
        core,
        lanes,
        ctx,
        progress_io,
        qos_io,
    } = rl;
    let mut work = 0;
    // RL §6.1: source progress / QoS -> destination control / QoS streams
    if let Some((sub, out)) = progress_io.as_mut() {
        work += sub
            .poll(
                |buf, _| {
                    core.on_source_progress(buf, out);
                },
                super::FRAGMENT_LIMIT,
            )
            .map_err(AgentError::failed)?;
    }
    if let Some((sub, out)) = qos_io.as_mut() {
        work += sub
            .poll(
                |buf, _| {
                    core.on_source_qos(buf, out);
                },
                super::FRAGMENT_LIMIT,
            )
            .map_err(AgentError::failed)?;
    }
    for (i, lane) in lanes.iter_mut().enumerate() {
        let LaneIo {
            source,
            dest,
            dest_cfg,
            rebuild_at_ns,
            hold,
            mapping,
            forward_metadata,
            meta_forwarded,
            source_mapped,
            source_outages,
            per_consumer,
        } = lane;
        let polled = source.poll_at(
            now_ns,
            &mut |frame: &Frame<'_>| {
                let v = core.on_frame(i, frame.seq(), frame.epoch(), now_ns);
                if v.remap {
                    // The source restarted its sequences: the destination moves to a new
                    // epoch so its own sequences never go back within one epoch.
                    *dest = None;
                    core.set_dest_epoch(i, None);
                    *rebuild_at_ns = 0;
                    *meta_forwarded = None;
                }
                match v.action {
                    Action::Forward => {
                        let d = ensure_dest(dest, ctx, dest_cfg, rebuild_at_ns, core, i, now_ns);
                        match d.map_or(Err(Lost::ClaimFailed), |d| forward_frame(d, frame)) {
                            Ok(seq) => core.on_forwarded(i, seq, monotonic_ns()),
                            Err(why) => core.on_lost(i, frame.seq(), why),
                        }
                    }
                    Action::Hold => {
                        if hold_frame(hold, frame).is_err() {
                            core.on_lost(i, frame.seq(), Lost::Torn);
                        }
                    }
                    Action::Drop => {}
                }
            },
            super::FRAME_LIMIT,
        );
        work += polled.map_err(AgentError::failed)?;
        // RL §7: the source went stale (its producer stopped; the source consumer unmapped).
        // The destination follows: its producer detaches, so the driver and every consumer
        // of the destination see it stop, and no frame of the old source is published after.
        // A source that comes back is followed on a new destination epoch (rebuilt at the
        // next frame forwarded). The outage count catches a loss that was already followed
        // by a mapping of the driver's next (producerless) epoch within this one poll.
        let mapped = matches!(source.state(), ConsumerState::Mapped { .. });
        let outages = source.outages();
        if (*source_mapped && !mapped) || outages != *source_outages {
            core.on_source_stale(i);
            if let Some(mut d) = dest.take() {
                d.close();
                tracing::info!(
                    source = mapping.source_stream_id,
                    dest = mapping.dest_stream_id,
                    "source stale: destination closed until the source comes back"
                );
            }
            core.set_dest_epoch(i, None);
            *meta_forwarded = None;
            *rebuild_at_ns = 0;
            work += 1;
        }
        *source_mapped = mapped;
        *source_outages = outages;
        // RL §6: the source's metadata, meta_version preserved, stream id rewritten
        if *forward_metadata
            && let (Some(d), Some((version, attrs))) = (dest.as_mut(), source.meta())
            && *meta_forwarded != Some(version)
        {
            match d.forward_meta(
                mapping.metadata_stream_id,
                attrs,
                version,
                source.source_name(),
            ) {
                Ok(_) => core.on_meta_forwarded(i),
                Err(e) => {
                    tracing::warn!(dest = mapping.dest_stream_id, error = %e, "metadata not forwarded")
                }
            }
            *meta_forwarded = Some(version);
            work += 1;
        }
        // the destination producer's own duty: lease keepalive, announces, hellos, QoS
        if let Some(d) = dest.as_mut() {
            work += d.do_work(now_ns);
            // A driver-attached destination that lost its lease re-attaches on a new epoch by
            // itself: forwarded progress must name the epoch consumers map now.
            core.set_dest_epoch(i, d.epoch());
            // RL §4: the sole consumer's hello sets the rate; several are never aggregated
            if *per_consumer {
                let mut asked = d.consumer_requests();
                let hz = match (asked.next(), asked.next()) {
                    (Some((_, Mode::RateLimited, hz)), None) => Some(hz),
                    _ => None,
                };
                if core.set_consumer_rate(i, hz) {
                    tracing::info!(
                        dest = mapping.dest_stream_id,
                        consumer_hz = ?hz,
                        policy = %core.lane(i).policy.describe(),
                        "rate in force changed (per-consumer operation)"
                    );
                }
            }
        }
        if let Some(seq) = core.release(i, now_ns) {
            work += 1;
            let d = ensure_dest(dest, ctx, dest_cfg, rebuild_at_ns, core, i, now_ns);
            match d.map_or(Err(Lost::ClaimFailed), |d| forward_held(d, hold)) {
                Ok(seq) => core.on_forwarded(i, seq, monotonic_ns()),
                Err(why) => core.on_lost(i, seq, why),
            }
        }
    }
    Ok(work)
}

/// The destination producer, rebuilt (new lease, new epoch) if it was dropped at a remap.
fn ensure_dest<'d>(
    dest: &'d mut Option<Producer>,
    ctx: &Context,
    cfg: &crate::prelude::ProducerConfig,
    rebuild_at_ns: &mut u64,
    core: &mut RateLimiterCore,
    lane: usize,
    now_ns: u64,
) -> Option<&'d mut Producer> {
    if dest.is_none() && now_ns >= *rebuild_at_ns {
        match ctx.producer(cfg.stream_id).config(cfg.clone()).build() {
            Ok(p) => {
                tracing::info!(
                    dest = cfg.stream_id,
                    epoch = p.epoch().unwrap_or(0),
                    "destination moved to a new epoch after a source epoch change"
                );
                core.on_dest_rebuilt(lane);
                core.set_dest_epoch(lane, p.epoch());
                *dest = Some(p);
            }
            Err(e) => {
                tracing::warn!(dest = cfg.stream_id, error = %e, "destination rebuild failed; retrying");
                *rebuild_at_ns = now_ns + REBUILD_BACKOFF_NS;
            }
        }
    }
    dest.as_mut()
}

fn lost_of(e: ClaimError) -> Lost {
    match e {
        ClaimError::NoPoolFits { .. } => Lost::NoPool,
        _ => Lost::ClaimFailed,
    }
}

fn stamp_of(frame: &Frame<'_>) -> FrameStamp {
    FrameStamp {
        seq: frame.seq(),
        timestamp_ns: frame.timestamp_ns(),
        meta_version: frame.meta_version(),
    }
}

/// Copies `frame` straight from the source slot into a destination claim; commits only if
/// the source slot still holds the frame after the copy.
fn forward_frame(dest: &mut Producer, frame: &Frame<'_>) -> Result<u64, Lost> {
    let spec = frame.tensor_spec().map_err(|_| Lost::ClaimFailed)?;
    let len = frame.bytes().len();
    let mut claim = dest
        .claim_stamped(&spec, len, stamp_of(frame))
        .map_err(lost_of)?;
    // a 1→1 stage keeps the upstream trace id (TraceLink §6.3, §8.1)
    claim.set_trace_id(frame.trace_id());
    match frame.copy_to(claim.payload_mut()) {
        Ok(_) => Ok(claim.commit()),
        Err(_) => {
            claim.abort();
            Err(Lost::Torn)
        }
    }
}

/// Copies `frame` aside (the newest candidate); `Err` if it was overwritten while copied.
fn hold_frame(hold: &mut HoldBuf, frame: &Frame<'_>) -> Result<(), ()> {
    let len = frame.bytes().len();
    if hold.bytes.len() < len {
        hold.bytes.resize(len, 0);
    }
    hold.spec = None;
    frame.copy_to(&mut hold.bytes[..len]).map_err(|_| ())?;
    hold.spec = frame.tensor_spec().ok();
    hold.len = len;
    hold.stamp = Some(stamp_of(frame));
    hold.trace_id = frame.trace_id();
    Ok(())
}

/// Forwards the held copy.
fn forward_held(dest: &mut Producer, hold: &mut HoldBuf) -> Result<u64, Lost> {
    let (Some(spec), Some(stamp)) = (hold.spec.take(), hold.stamp.take()) else {
        return Err(Lost::Torn);
    };
    let mut claim = dest
        .claim_stamped(&spec, hold.len, stamp)
        .map_err(lost_of)?;
    claim.set_trace_id(hold.trace_id.take());
    claim.payload_mut().copy_from_slice(&hold.bytes[..hold.len]);
    Ok(claim.commit())
}
