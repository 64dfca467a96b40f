//! The agent's side of producer liveness from the superblock (W §7.1, §15.14): for each known
//! producer, the header region file named in its last announce is opened read-only once per
//! epoch (containment-checked against `supervisor.allowed_base_dirs`, as a consumer does) and
//! its superblock is read with one `pread` every period (nothing is mapped). The epoch read
//! must be the announced one; its `activity_timestamp_ns` goes to
//! [`SupervisorCore::on_activity`]. With no allowed base dirs nothing is read.
//!
//! Opening (path checks, `canonicalize`) allocates once per epoch; the periodic read does not.

use tensorpool_shm::{
    Access, AllowedBaseDirs, RegionType, RegionUri, ValidatedFile, read_superblock_of,
};

use super::core::SupervisorCore;

/// One producer's header region, as last opened.
#[derive(Debug)]
struct Watched {
    stream_id: u32,
    /// The epoch opened (`None`: not yet).
    epoch: Option<u64>,
    /// `None`: opening failed for this epoch (logged once); retried at the next epoch.
    file: Option<ValidatedFile>,
    /// Whether the last read failed (logged once until a read succeeds).
    failing: bool,
}

/// Reads producers' superblock activity timestamps for a [`SupervisorCore`].
#[derive(Debug)]
pub struct ActivityWatch {
    allowed: Option<AllowedBaseDirs>,
    watched: Vec<Watched>,
    period_ns: u64,
    next_ns: u64,
}

impl ActivityWatch {
    /// A watch over `allowed` (empty: disabled) read every `period_ns`, for at most
    /// `capacity` producers. Errors when a directory cannot be used as a base dir.
    pub fn new(
        allowed: &[std::path::PathBuf],
        period_ns: u64,
        capacity: usize,
    ) -> Result<Self, tensorpool_shm::PathError> {
        let allowed = if allowed.is_empty() {
            None
        } else {
            Some(AllowedBaseDirs::new(allowed)?)
        };
        Ok(Self {
            allowed,
            watched: Vec::with_capacity(capacity),
            period_ns: period_ns.max(1),
            next_ns: 0,
        })
    }

    /// Whether anything is read (allowed base dirs were configured).
    pub fn is_enabled(&self) -> bool {
        self.allowed.is_some()
    }

    /// Reads every known producer's activity if the period elapsed and feeds it to `core`.
    /// Returns the work done.
    pub fn poll(&mut self, core: &mut SupervisorCore, now_ns: u64) -> usize {
        let Some(allowed) = &self.allowed else {
            return 0;
        };
        if now_ns < self.next_ns {
            return 0;
        }
        self.next_ns = now_ns.saturating_add(self.period_ns);
        let mut work = 0;
        let mut k = 0;
        loop {
            let next = core
                .producers()
                .filter(|p| !p.header_uri.is_empty())
                .nth(k)
                .map(|p| (p.stream_id, p.epoch));
            let Some((stream_id, epoch)) = next else {
                break;
            };
            k += 1;
            let slot = match self.watched.iter().position(|w| w.stream_id == stream_id) {
                Some(i) => i,
                None if self.watched.len() < self.watched.capacity() => {
                    self.watched.push(Watched {
                        stream_id,
                        epoch: None,
                        file: None,
                        failing: false,
                    });
                    self.watched.len() - 1
                }
                None => continue,
            };
            let w = &mut self.watched[slot];
            if w.epoch != Some(epoch) {
                w.epoch = Some(epoch);
                w.failing = false;
                let uri = core
                    .producer(stream_id)
                    .map(|p| p.header_uri)
                    .unwrap_or_default();
                w.file = open(allowed, uri, stream_id, epoch);
            }
            let Some(file) = &w.file else { continue };
            match read_superblock_of(file) {
                Ok(sb) if sb.epoch == epoch && sb.region_type == RegionType::HeaderRing => {
                    w.failing = false;
                    work += core.on_activity(stream_id, epoch, sb.activity_timestamp_ns, now_ns);
                }
                Ok(sb) => {
                    if !w.failing {
                        tracing::warn!(
                            stream_id,
                            epoch,
                            found_epoch = sb.epoch,
                            region_type = ?sb.region_type,
                            "announced header region holds another epoch or region type: activity not read"
                        );
                    }
                    w.failing = true;
                }
                Err(e) => {
                    if !w.failing {
                        tracing::warn!(stream_id, epoch, error = %e, "activity not read");
                    }
                    w.failing = true;
                }
            }
        }
        work
    }
}

fn open(allowed: &AllowedBaseDirs, uri: &str, stream_id: u32, epoch: u64) -> Option<ValidatedFile> {
    let opened = RegionUri::parse(uri)
        .map_err(|e| e.to_string())
        .and_then(|u| {
            allowed
                .open(u.path(), Access::ReadOnly, u.requires_hugepages())
                .map_err(|e| e.to_string())
        });
    match opened {
        Ok(f) => Some(f),
        Err(error) => {
            tracing::warn!(
                stream_id,
                epoch,
                uri,
                %error,
                "announced header region not opened: its activity is not read this epoch"
            );
            None
        }
    }
}
