//! The slots of a header ring, each read once under the seqlock (acquire load, copy, load).

use serde::Serialize;
use tensorpool_shm::slot::{DropReason, decode_slot};
use tensorpool_shm::tensor::validate_tensor;
use tensorpool_shm::{HEADER_SLOT_BYTES, HeaderRing, ReadOnly, seqlock};

use crate::cmd::CmdError;

/// Slot indexes `start..end` (end exclusive, `None`: to the last slot).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotRange {
    start: u32,
    end: Option<u32>,
}

impl std::str::FromStr for SlotRange {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let num = |t: &str| {
            t.trim()
                .parse::<u32>()
                .map_err(|_| format!("`{s}`: expected A..B, A..=B, A.., ..B or A (slot indexes)"))
        };
        let range = match s.split_once("..") {
            None => {
                let a = num(s)?;
                Self {
                    start: a,
                    end: Some(a.saturating_add(1)),
                }
            }
            Some((a, b)) => {
                let start = if a.is_empty() { 0 } else { num(a)? };
                let end = match b.strip_prefix('=') {
                    Some(b) => Some(num(b)?.saturating_add(1)),
                    None if b.is_empty() => None,
                    None => Some(num(b)?),
                };
                Self { start, end }
            }
        };
        if range.end.is_some_and(|e| e <= range.start) {
            return Err(format!("`{s}` is empty"));
        }
        Ok(range)
    }
}

/// One slot as read.
#[derive(Debug, Clone, Serialize)]
pub struct SlotReport {
    index: u32,
    /// `empty`, `in-progress`, `committed` or `changing` (rewritten while read).
    state: &'static str,
    seq_commit: u64,
    seq: Option<u64>,
    /// The decoded header of a committed slot.
    header: Option<serde_json::Value>,
    /// Whether a consumer would accept the header (pool checks aside).
    valid: Option<bool>,
    /// Why a consumer would drop it.
    drop_reason: Option<String>,
}

/// The slots of a ring.
#[derive(Debug, Clone, Serialize)]
pub struct RingReport {
    nslots: u32,
    empty: u32,
    in_progress: u32,
    committed: u32,
    /// Highest committed sequence and its slot.
    latest: Option<(u64, u32)>,
    /// Whether the listing stopped at --max-slots.
    truncated: bool,
    slots: Vec<SlotReport>,
}

impl RingReport {
    pub(super) fn counts(&self) -> (u32, u32, u32, u32) {
        (self.nslots, self.committed, self.in_progress, self.empty)
    }
    pub(super) fn latest(&self) -> Option<(u64, u32)> {
        self.latest
    }
    pub(super) fn slots(&self) -> &[SlotReport] {
        &self.slots
    }
    pub(super) fn truncated(&self) -> bool {
        self.truncated
    }
}

impl SlotReport {
    pub(super) fn parts(&self) -> (u32, &'static str, Option<u64>, Option<&serde_json::Value>) {
        (self.index, self.state, self.seq, self.header.as_ref())
    }
    pub(super) fn verdict(&self) -> String {
        match (&self.valid, &self.drop_reason) {
            (_, Some(r)) => format!("drop: {r}"),
            (Some(true), None) => "ok".into(),
            _ => String::new(),
        }
    }
}

/// Reads every slot of the ring, listing those in `range` (or the committed ones, at most
/// `max` of them).
pub fn read(
    ring: &HeaderRing<ReadOnly>,
    range: Option<&SlotRange>,
    max: usize,
) -> Result<RingReport, CmdError> {
    let n = ring.nslots();
    if let Some(r) = range
        && r.start >= n
    {
        return Err(format!("--slots starts at {} but the ring has {n} slots", r.start).into());
    }
    let mut report = RingReport {
        nslots: n,
        empty: 0,
        in_progress: 0,
        committed: 0,
        latest: None,
        truncated: false,
        slots: Vec::new(),
    };
    for index in 0..n {
        let slot = read_slot(ring, index);
        match slot.state {
            "empty" => report.empty += 1,
            "committed" => {
                report.committed += 1;
                let seq = slot.seq.unwrap_or(0);
                if report.latest.is_none_or(|(s, _)| seq >= s) {
                    report.latest = Some((seq, index));
                }
            }
            _ => report.in_progress += 1,
        }
        let listed = match range {
            Some(r) => index >= r.start && r.end.is_none_or(|e| index < e),
            None => slot.state == "committed",
        };
        if listed {
            if range.is_none() && report.slots.len() >= max {
                report.truncated = true;
            } else {
                report.slots.push(slot);
            }
        }
    }
    Ok(report)
}

fn read_slot(ring: &HeaderRing<ReadOnly>, index: u32) -> SlotReport {
    let first = ring.seq_commit(index);
    let mut bytes = [0u8; HEADER_SLOT_BYTES];
    ring.copy_slot(index, &mut bytes);
    let second = ring.seq_commit(index);
    let mut report = SlotReport {
        index,
        state: "committed",
        seq_commit: first,
        seq: Some(seqlock::sequence(first)),
        header: None,
        valid: None,
        drop_reason: None,
    };
    if first != second {
        report.state = "changing";
        return report;
    }
    if first == 0 && bytes.iter().all(|&b| b == 0) {
        report.state = "empty";
        report.seq = None;
        return report;
    }
    if !seqlock::is_committed(first) {
        report.state = "in-progress";
        return report;
    }
    match decode_slot(&bytes) {
        Ok(header) => {
            let verdict = check_slot(&header, index);
            report.valid = Some(verdict.is_ok());
            report.drop_reason = verdict.err().map(|r| r.to_string());
            report.header = serde_json::to_value(&header).ok().map(without_pads);
        }
        Err(reason) => {
            report.valid = Some(false);
            report.drop_reason = Some(reason.to_string());
        }
    }
    report
}

/// The header without its padding arrays (opaque, and long).
fn without_pads(mut v: serde_json::Value) -> serde_json::Value {
    if let Some(map) = v.as_object_mut() {
        map.shift_remove("pad");
        if let Some(t) = map.get_mut("tensor").and_then(|t| t.as_object_mut()) {
            t.shift_remove("pad");
            t.shift_remove("pad_align");
        }
    }
    v
}

/// The §8.2 rules that need no pool geometry.
fn check_slot(h: &tensorpool_shm::SlotHeader, index: u32) -> Result<(), DropReason> {
    if h.payload_offset != 0 {
        return Err(DropReason::PayloadOffsetNonZero);
    }
    if h.payload_slot != index {
        return Err(DropReason::PayloadSlotMismatch);
    }
    validate_tensor(&h.tensor, h.values_len_bytes).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let r = |s: &str| s.parse::<SlotRange>();
        assert_eq!(
            r("2..5"),
            Ok(SlotRange {
                start: 2,
                end: Some(5)
            })
        );
        assert_eq!(
            r("2..=5"),
            Ok(SlotRange {
                start: 2,
                end: Some(6)
            })
        );
        assert_eq!(
            r("3.."),
            Ok(SlotRange {
                start: 3,
                end: None
            })
        );
        assert_eq!(
            r("..4"),
            Ok(SlotRange {
                start: 0,
                end: Some(4)
            })
        );
        assert_eq!(
            r("7"),
            Ok(SlotRange {
                start: 7,
                end: Some(8)
            })
        );
        assert!(r("5..5").is_err());
        assert!(r("x..").is_err());
    }
}
