//! Epoch garbage collection (`policies.epoch_gc_*`, Wire Spec §15.21a.7; PITFALLS #10).
//!
//! Epoch directories are ordered numerically (epochs are `max(prev + 1, now_ns)`, so only
//! their order means anything); the newest `epoch_gc_keep` are kept. Of the others, one is
//! deleted only when all of these hold:
//! - it is not the live epoch and no active lease was granted on it (see `handlers.rs`: a
//!   consumer lease moves on to the live epoch at its first keepalive after the minimum age);
//! - it is older than `epoch_gc_min_age_ns`: since its retirement when this process retired
//!   it, else since its directory was last modified (epochs of an earlier driver process);
//! - its header ring superblock is not live: the writer pid is gone or its
//!   `activity_timestamp_ns` is stale (3 x announce period).
//!
//! Left-overs of a provisioner that died (the driver, or a standalone producer, killed while
//! creating an epoch): its temporary files (`.<name>.tmp-<pid>-...`, possibly gigabytes) are
//! removed from every epoch directory once that pid is gone, and an epoch directory without a
//! header ring (never completed) does not count among the kept ones: it is removed once older
//! than the minimum age with no living provisioner's temporary file in it.

use std::path::Path;

use tensorpool_shm::ShmLayout;
use tensorpool_shm::layout::{pid_alive, read_header_superblock, tmp_file_pid};
use tensorpool_shm::superblock::is_activity_stale;

use super::files::epochs_on_disk;
use super::streams::Retired;

/// What one collection pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct GcOutcome {
    /// Epoch directories removed.
    pub removed: u64,
    /// Temporary files of dead provisioners removed.
    pub removed_tmp: u64,
    /// When to look again (an epoch was too young or still live).
    pub retry_at: Option<u64>,
}

/// Why an epoch may not be collected whatever its age.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pin {
    /// Nothing pins it.
    None,
    /// It is the live epoch.
    Live,
    /// An active lease was granted on it (look again later).
    Lease,
}

/// GC policy values.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GcPolicy {
    pub keep: u32,
    pub min_age_ns: u64,
    pub stale_window_ns: u64,
}

/// One pass over `stream_id`'s epoch directories.
pub(crate) fn collect(
    layout: &ShmLayout,
    stream_id: u32,
    policy: GcPolicy,
    pinned: &dyn Fn(u64) -> Pin,
    retired: &[Retired],
    now_ns: u64,
) -> GcOutcome {
    let mut out = GcOutcome::default();
    let mut epochs = epochs_on_disk(&layout.stream_dir(stream_id));
    epochs.sort_unstable_by(|a, b| b.cmp(a));
    let mut tmp_live = Vec::new();
    for &epoch in &epochs {
        let (removed, live) = sweep_dead_tmp_files(&layout.epoch_dir(stream_id, epoch));
        out.removed_tmp += removed;
        if live {
            tmp_live.push(epoch);
        }
    }
    let mut retry = |at: u64| out.retry_at = Some(out.retry_at.map_or(at, |r: u64| r.min(at)));
    let mut complete = 0usize;
    for &epoch in &epochs {
        let partial = !layout.header_ring_path(stream_id, epoch).exists();
        if partial && tmp_live.contains(&epoch) {
            continue; // being created right now
        }
        if !partial {
            complete += 1;
            if complete <= policy.keep as usize {
                continue;
            }
        }
        match pinned(epoch) {
            Pin::None => {}
            Pin::Live => continue,
            Pin::Lease => {
                retry(now_ns.saturating_add(policy.stale_window_ns));
                continue;
            }
        }
        let dir = layout.epoch_dir(stream_id, epoch);
        let age = match retired.iter().find(|r| r.epoch == epoch) {
            Some(r) => now_ns.saturating_sub(r.retired_ns),
            None => mtime_age_ns(&dir),
        };
        if age < policy.min_age_ns {
            retry(now_ns.saturating_add(policy.min_age_ns - age));
            continue;
        }
        if let Some(until) = superblock_live_until(
            &layout.header_ring_path(stream_id, epoch),
            now_ns,
            policy.stale_window_ns,
        ) {
            retry(until);
            continue;
        }
        match layout.remove_epoch(stream_id, epoch) {
            Ok(()) => {
                out.removed += 1;
                tracing::info!(stream_id, epoch, "epoch directory collected");
            }
            Err(e) => tracing::warn!(stream_id, epoch, error = %e, "epoch directory not collected"),
        }
    }
    out
}

/// Removes the temporary files of dead provisioners in `dir` (`.<name>.tmp-<pid>-...`);
/// returns how many, and whether a temporary file of a living process remains.
fn sweep_dead_tmp_files(dir: &Path) -> (u64, bool) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return (0, false);
    };
    let (mut removed, mut live) = (0, false);
    for e in rd.filter_map(Result::ok) {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(tmp_file_pid) else {
            continue;
        };
        if pid_alive(pid) {
            live = true;
        } else if e.file_type().is_ok_and(|t| t.is_file()) && std::fs::remove_file(e.path()).is_ok()
        {
            removed += 1;
            tracing::info!(path = %e.path().display(), pid, "temporary file of a dead provisioner removed");
        }
    }
    (removed, live)
}

fn mtime_age_ns(dir: &Path) -> u64 {
    std::fs::symlink_metadata(dir)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .map_or(u64::MAX, |d| {
            u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
        })
}

/// A superblock is live when its writer pid exists and its activity timestamp is fresh
/// (same clock: `CLOCK_MONOTONIC` on this host); returns until when it stays live without
/// another refresh. Unreadable means not live.
pub(crate) fn superblock_live_until(
    header_ring: &Path,
    now_ns: u64,
    window_ns: u64,
) -> Option<u64> {
    let sb = read_header_superblock(header_ring)?;
    let live = pid_alive(sb.pid) && !is_activity_stale(sb.activity_timestamp_ns, now_ns, window_ns);
    live.then(|| {
        sb.activity_timestamp_ns
            .max(now_ns.saturating_sub(window_ns))
            .saturating_add(window_ns + 1)
    })
}
