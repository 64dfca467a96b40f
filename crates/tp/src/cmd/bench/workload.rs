//! The work every benchmark does per frame, shared by the measured processes and the
//! single-core baselines so that both sides do exactly the same thing:
//!
//! - **fill**: the producer copies a source frame into the slot (`memcpy` of every payload
//!   byte, like a camera frame copied out of a driver buffer), then writes a 24-byte stamp
//!   (sequence, phase, commit time) over its first bytes;
//! - **read**: the consumer sums every payload byte as 64-bit words (eight independent lanes,
//!   which the compiler vectorizes), then parses the stamp.

use std::hint::black_box;
use std::time::{Duration, Instant};

/// Bytes of the stamp at the start of every payload: seq (u64), phase (u64), commit ns (u64).
pub const STAMP_LEN: usize = 24;

/// Frames of the warm-up phase carry this phase; they are not counted.
pub const PHASE_WARMUP: u64 = 0;
/// Frames of the measured window.
pub const PHASE_MEASURE: u64 = 1;
/// Frames after the window (kept flowing while the others finish).
pub const PHASE_AFTER: u64 = 2;

/// What the producer writes at the start of a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// The frame's sequence (producer side).
    pub seq: u64,
    /// [`PHASE_WARMUP`], [`PHASE_MEASURE`] or [`PHASE_AFTER`].
    pub phase: u64,
    /// `CLOCK_MONOTONIC` at commit (ns).
    pub commit_ns: u64,
}

impl Stamp {
    /// Writes the stamp over the first [`STAMP_LEN`] bytes (as many as fit).
    pub fn write(&self, buf: &mut [u8]) {
        let mut bytes = [0u8; STAMP_LEN];
        bytes[..8].copy_from_slice(&self.seq.to_le_bytes());
        bytes[8..16].copy_from_slice(&self.phase.to_le_bytes());
        bytes[16..].copy_from_slice(&self.commit_ns.to_le_bytes());
        let n = buf.len().min(STAMP_LEN);
        buf[..n].copy_from_slice(&bytes[..n]);
    }

    /// Reads a stamp; `None` when the payload is shorter than one.
    pub fn read(buf: &[u8]) -> Option<Self> {
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(buf.get(i..i + 8)?);
            Some(u64::from_le_bytes(w))
        };
        Some(Self {
            seq: word(0)?,
            phase: word(8)?,
            commit_ns: word(16)?,
        })
    }
}

/// A source frame of `len` bytes with a non-trivial pattern (not all zero, so that the
/// copy cannot be elided or served from zero pages).
pub fn source_frame(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The producer's fill: every byte of `dst` written from `src` (same length).
#[inline]
pub fn fill(dst: &mut [u8], src: &[u8]) {
    dst.copy_from_slice(src);
}

/// The consumer's read: every byte of `bytes` loaded and summed (wrapping, as 64-bit words
/// in eight lanes; the tail byte by byte).
#[inline]
pub fn read_sum(bytes: &[u8]) -> u64 {
    let mut lanes = [0u64; 8];
    let mut blocks = bytes.chunks_exact(64);
    for block in &mut blocks {
        for (lane, word) in lanes.iter_mut().zip(block.chunks_exact(8)) {
            let mut w = [0u8; 8];
            w.copy_from_slice(word);
            *lane = lane.wrapping_add(u64::from_le_bytes(w));
        }
    }
    let tail = blocks
        .remainder()
        .iter()
        .fold(0u64, |a, &b| a.wrapping_add(u64::from(b)));
    lanes.iter().fold(tail, |a, &l| a.wrapping_add(l))
}

/// One baseline measurement: `frames` per second and GB/s of the same fill + read on one
/// core, over a ring of `nslots` slots of `stride` bytes (the geometry of the shared-memory
/// pool it bounds), for about `duration` after a `warmup`.
#[derive(Debug, Clone, Copy)]
pub struct Baseline {
    /// Frames per second.
    pub fps: f64,
    /// Payload GB/s (10^9 bytes).
    pub gbps: f64,
}

impl Baseline {
    /// The mean of two measurements of the same baseline.
    pub fn mean(&self, other: &Baseline) -> Baseline {
        Baseline {
            fps: (self.fps + other.fps) / 2.0,
            gbps: (self.gbps + other.gbps) / 2.0,
        }
    }
}

/// Single-core memcpy + read of `len`-byte frames through a ring of `nslots` x `stride`.
pub fn memcpy_read_baseline(
    len: usize,
    stride: usize,
    nslots: usize,
    warmup: Duration,
    duration: Duration,
) -> Baseline {
    let src = source_frame(len);
    let mut ring = vec![1u8; stride * nslots];
    let mut sink = 0u64;
    let mut seq = 0u64;
    let mut run = |until: Instant, seq: &mut u64| {
        let mut n = 0u64;
        loop {
            // check the clock every 8 frames (cheap against a frame's copy)
            for _ in 0..8 {
                let slot = (*seq as usize) % nslots;
                let dst = &mut ring[slot * stride..slot * stride + len];
                fill(dst, &src);
                Stamp {
                    seq: *seq,
                    phase: PHASE_MEASURE,
                    commit_ns: 0,
                }
                .write(dst);
                let dst = black_box(&ring[slot * stride..slot * stride + len]);
                sink = sink.wrapping_add(read_sum(dst));
                *seq += 1;
                n += 1;
            }
            if Instant::now() >= until {
                return n;
            }
        }
    };
    run(Instant::now() + warmup, &mut seq);
    let start = Instant::now();
    let frames = run(start + duration, &mut seq);
    let secs = start.elapsed().as_secs_f64();
    black_box(sink);
    let fps = frames as f64 / secs;
    Baseline {
        fps,
        gbps: fps * len as f64 / 1e9,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_round_trip_and_short_buffers() {
        let s = Stamp {
            seq: 7,
            phase: PHASE_MEASURE,
            commit_ns: 123,
        };
        let mut buf = [0u8; 40];
        s.write(&mut buf);
        assert_eq!(Stamp::read(&buf), Some(s));
        let mut short = [0u8; 10];
        s.write(&mut short);
        assert_eq!(Stamp::read(&short), None);
    }

    #[test]
    fn read_sum_counts_every_byte() {
        for len in [0, 1, 63, 64, 65, 1000] {
            let v = source_frame(len);
            let base = read_sum(&v);
            for i in [0, len / 2, len.saturating_sub(1)] {
                if i < len {
                    let mut w = v.clone();
                    w[i] = w[i].wrapping_add(1);
                    assert_ne!(read_sum(&w), base, "byte {i} of {len} not read");
                }
            }
        }
    }

    #[test]
    fn baseline_runs() {
        let b = memcpy_read_baseline(
            4096,
            4096,
            4,
            Duration::from_millis(1),
            Duration::from_millis(5),
        );
        assert!(b.fps > 0.0 && b.gbps > 0.0);
    }
}
