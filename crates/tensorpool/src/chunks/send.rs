//! Chunking on the sender (Bridge Spec §5.1, §5.2, §5.4): a frame's payload is cut into
//! `chunkCount` slices of at most the effective chunk size, in order; chunk 0 carries the
//! 256-byte slot header block and, so that it still fits the MTU, 256 fewer payload bytes
//! (when the chunk size allows); `payloadCrc32c` is CRC32C(headerBytes ‖ payloadBytes) of the
//! chunk when integrity is on, else 0. Each chunk is encoded straight into the publication's
//! claim, and the source slot is rechecked after every chunk is copied and before it is
//! committed: a frame overwritten while being sent is abandoned and no torn byte leaves.
//!
//! Before chunk 0 the sender asks the publication for its window ([`MessageSink::send_window`]):
//! a frame whose chunks (with their transport framing) do not fit what it takes now is not
//! started ([`SendOutcome::WindowFull`]), rather than cut off half way by back pressure; the
//! bridge keeps it pending and tries it again in a later duty cycle (newest wins,
//! [`crate::bridge::BridgeCore::send_frame`]); the source is never waited for. A frame larger than the window can ever be (its capacity, or the
//! largest window seen: an Aeron receiver window smaller than a frame) is tried as before.

use tensorpool_codec::bridge::BridgeFrameChunk;
use tensorpool_codec::{Bytes, EncodeError, Message};
use tensorpool_shm::HEADER_SLOT_BYTES;

use crate::control::{MessageSink, SendError, send};

/// Most chunks a frame may have (schema maximum of `chunkCount`).
pub const MAX_CHUNKS: u32 = 65_535;

/// A committed source frame as the sender sees it.
#[derive(Debug, Clone, Copy)]
pub struct SourceFrame<'a> {
    /// Source stream id.
    pub stream_id: u32,
    /// Source epoch.
    pub epoch: u64,
    /// Frame sequence.
    pub seq: u64,
    /// The descriptor's trace id (0: none).
    pub trace_id: u64,
    /// The slot header block.
    pub header: &'a [u8; HEADER_SLOT_BYTES],
    /// The payload, in place (racy until rechecked).
    pub payload: &'a [u8],
}

/// How sending a frame ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendOutcome {
    /// Every chunk was published.
    Sent {
        /// Chunks published.
        chunks: u32,
    },
    /// The source slot was overwritten while sending: the rest was not sent.
    Abandoned {
        /// Chunks published before.
        chunks: u32,
    },
    /// The publication refused a chunk (back pressure, not connected, ...): the rest was
    /// not sent.
    Refused {
        /// Chunks published before.
        chunks: u32,
        /// Whether it was back pressure (or an admin action).
        back_pressured: bool,
    },
    /// The publication's window could not take the whole frame now: not started, no chunk
    /// published.
    WindowFull {
        /// Bytes the frame's chunks take in the window.
        needed: usize,
        /// Bytes the window took.
        available: usize,
    },
    /// The frame needs more than 65535 chunks or is above `max_payload_bytes`.
    TooLarge,
}

/// Payload bytes of chunk 0 and of the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Payload bytes in chunk 0.
    pub first: u32,
    /// Payload bytes in every later chunk (the last may be shorter).
    pub rest: u32,
    /// Chunks in all.
    pub count: u32,
}

/// Cuts `len` payload bytes into chunks of at most `chunk_bytes`, chunk 0 making room for the
/// header when `chunk_bytes` exceeds it by at least 64 bytes. `None` above 65535 chunks.
pub fn plan(len: u32, chunk_bytes: u32) -> Option<Plan> {
    let rest = chunk_bytes.max(1);
    let first = if rest > HEADER_SLOT_BYTES as u32 + 64 {
        rest - HEADER_SLOT_BYTES as u32
    } else {
        rest
    };
    let count = if len <= first {
        1
    } else {
        1 + (len - first).div_ceil(rest)
    };
    (count <= MAX_CHUNKS).then_some(Plan { first, rest, count })
}

/// CRC32C of a chunk: header block (chunk 0) then payload bytes.
pub fn chunk_crc(header: Option<&[u8]>, payload: &[u8]) -> u32 {
    let c = header.map_or(0, crc32c::crc32c);
    crc32c::crc32c_append(c, payload)
}

/// Sends `frame` in chunks of at most `chunk_bytes` into `sink`; `recheck` proves the bytes
/// copied so far are the committed frame (the seqlock recheck) and is called after each
/// chunk is encoded, before it is committed. `window_seen` is the largest window the sink
/// reported so far (updated here): flow control (an Aeron receiver window) can keep the
/// real window below the sink's own capacity, and a frame larger than any window seen is
/// tried rather than skipped for ever. Never waits.
pub fn send_frame(
    frame: &SourceFrame<'_>,
    chunk_bytes: u32,
    max_payload_bytes: u32,
    crc: bool,
    recheck: &mut dyn FnMut() -> bool,
    sink: &mut dyn MessageSink,
    window_seen: &mut usize,
) -> SendOutcome {
    let Ok(len) = u32::try_from(frame.payload.len()) else {
        return SendOutcome::TooLarge;
    };
    if len > max_payload_bytes {
        return SendOutcome::TooLarge;
    }
    let Some(p) = plan(len, chunk_bytes) else {
        return SendOutcome::TooLarge;
    };
    if let Some(w) = sink.send_window() {
        *window_seen = (*window_seen).max(w.available);
        let can_fit = w.capacity.min(*window_seen);
        let needed = window_needed(frame, p, len, sink);
        if needed > w.available && needed <= can_fit && sink.is_connected() {
            return SendOutcome::WindowFull {
                needed,
                available: w.available,
            };
        }
    }
    let mut offset = 0u32;
    for index in 0..p.count {
        let (mut msg, chunk_len) = chunk_msg(frame, p, len, index, offset);
        let header: &[u8] = if index == 0 { frame.header } else { &[] };
        let payload = &frame.payload[offset as usize..(offset + chunk_len) as usize];
        let mut torn = false;
        let result = {
            let mut guarded = Guarded {
                inner: sink,
                recheck: &mut *recheck,
                torn: &mut torn,
            };
            if crc {
                // the CRC covers the bytes as read now; the recheck after the copy proves
                // them
                msg.payload_crc32c = chunk_crc((index == 0).then_some(header), payload);
            }
            send(&mut guarded, &msg)
        };
        if torn {
            return SendOutcome::Abandoned { chunks: index };
        }
        if let Err(e) = result {
            return SendOutcome::Refused {
                chunks: index,
                back_pressured: back_pressured(&e),
            };
        }
        offset += chunk_len;
    }
    SendOutcome::Sent { chunks: p.count }
}

/// Chunk `index` (payload from `offset`) of `frame`, CRC 0, and its payload length.
fn chunk_msg<'f>(
    frame: &SourceFrame<'f>,
    p: Plan,
    len: u32,
    index: u32,
    offset: u32,
) -> (BridgeFrameChunk<'f>, u32) {
    let size = if index == 0 { p.first } else { p.rest };
    let chunk_len = size.min(len - offset);
    let payload = &frame.payload[offset as usize..(offset + chunk_len) as usize];
    let header: &'f [u8] = if index == 0 { frame.header } else { &[] };
    let msg = BridgeFrameChunk {
        stream_id: frame.stream_id,
        epoch: frame.epoch,
        seq: frame.seq,
        trace_id: (frame.trace_id != 0).then_some(frame.trace_id),
        chunk_index: index,
        chunk_count: p.count,
        chunk_offset: offset,
        chunk_length: chunk_len,
        payload_length: len,
        payload_crc32c: 0,
        header_included: index == 0,
        header_bytes: Bytes::from(header),
        payload_bytes: Bytes::from(payload),
    };
    (msg, chunk_len)
}

/// Bytes every chunk of `frame` takes in `sink`'s window (encoded, then framed).
fn window_needed(frame: &SourceFrame<'_>, p: Plan, len: u32, sink: &dyn MessageSink) -> usize {
    let mut offset = 0u32;
    let mut needed = 0usize;
    for index in 0..p.count {
        let (msg, chunk_len) = chunk_msg(frame, p, len, index, offset);
        needed = needed.saturating_add(sink.framed_len(msg.encoded_len()));
        offset += chunk_len;
    }
    needed
}

fn back_pressured(e: &SendError) -> bool {
    e.is_back_pressured()
}

/// A sink that rechecks the source after each chunk is encoded into the claim and aborts
/// the claim (an encoding error the caller recognizes by `torn`) when the slot moved.
struct Guarded<'s, 'r> {
    inner: &'s mut dyn MessageSink,
    recheck: &'r mut dyn FnMut() -> bool,
    torn: &'s mut bool,
}

impl MessageSink for Guarded<'_, '_> {
    fn publish(
        &mut self,
        len: usize,
        fill: &mut dyn FnMut(&mut [u8]) -> Result<(), EncodeError>,
    ) -> Result<(), SendError> {
        let Self {
            inner,
            recheck,
            torn,
        } = self;
        inner.publish(len, &mut |buf| {
            fill(buf)?;
            if recheck() {
                Ok(())
            } else {
                **torn = true;
                Err(EncodeError::BufferTooSmall { need: len, have: 0 })
            }
        })
    }

    fn is_connected(&self) -> bool {
        self.inner.is_connected()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans() {
        assert_eq!(
            plan(0, 1280),
            Some(Plan {
                first: 1024,
                rest: 1280,
                count: 1
            })
        );
        assert_eq!(plan(1024, 1280).unwrap().count, 1);
        assert_eq!(plan(1025, 1280).unwrap().count, 2);
        assert_eq!(plan(1024 + 1280, 1280).unwrap().count, 2);
        assert_eq!(plan(1024 + 1281, 1280).unwrap().count, 3);
        // small chunks: chunk 0 is not reduced
        assert_eq!(plan(10, 100).unwrap().first, 100);
        assert!(plan(u32::MAX, 100).is_none());
    }
}
