//! [`DriverCore`]: the driver's logic without transport (everything but Aeron): built from
//! the configuration, fed decoded-from-the-wire requests (`handlers.rs`, `on_control`) and
//! the clock (`work.rs`, `on_tick`), writing its answers into [`super::Outputs`] (sinks).
//! Tests and the `driver_control` fuzz target drive it by hand with recording sinks; the
//! state types it owns are in `state.rs`.

use tensorpool_agent::DeadlineTimer;
use tensorpool_codec::driver::Role;
use tensorpool_shm::{AllowedBaseDirs, LAYOUT_VERSION};

use super::DriverError;
use super::config::DriverConfig;
use super::counters::DriverCells;
use super::files::{FileSettings, highest_epoch_on_disk, is_on_hugetlbfs, next_epoch};
use super::leases::{Lease, LeaseTable, NodeIds};
use super::state::{Lifecycle, StreamInfo};
use super::streams::{Stream, StreamTable};
use crate::control::{ErrorText, random_u64};

/// The driver without its transport: leases, streams, epochs, files, timers.
#[derive(Debug)]
pub struct DriverCore {
    pub(crate) cfg: DriverConfig,
    pub(crate) files: FileSettings,
    pub(crate) leases: LeaseTable,
    pub(crate) nodes: NodeIds,
    pub(crate) streams: StreamTable,
    pub(crate) counters: DriverCells,
    pub(crate) dynamic_cursor: u32,
    pub(crate) announce_timer: DeadlineTimer,
    pub(crate) lifecycle: Lifecycle,
    pub(crate) start_ns: u64,
    pub(crate) text: ErrorText,
    pub(crate) fatal: Option<String>,
    /// Last epoch of each dynamic stream removed: a stream created again under the same id
    /// continues above it (epochs never go back for a stream id).
    pub(crate) removed_epochs: Vec<(u32, u64)>,
}

impl DriverCore {
    /// Prepares the SHM layout and provisions every static stream with a fresh epoch,
    /// `max(highest epoch on disk + 1, now_ns)` (Driver Model §10, §14; PITFALLS #10, #12).
    pub fn new(cfg: DriverConfig, now_ns: u64) -> Result<Self, DriverError> {
        let io = |what: &'static str| {
            let path = cfg.shm.base_dir.clone();
            move |e: std::io::Error| DriverError::Io {
                what,
                path,
                reason: e.to_string(),
            }
        };
        std::fs::create_dir_all(&cfg.shm.base_dir).map_err(io("create shm.base_dir"))?;
        // announced paths must be canonical (Driver Model §9): build them on the real path
        let base =
            std::fs::canonicalize(&cfg.shm.base_dir).map_err(io("canonicalize shm.base_dir"))?;
        let layout = tensorpool_shm::ShmLayout::new(&base, &cfg.shm.namespace, cfg.shm.modes)?;
        let allowed = AllowedBaseDirs::new(&cfg.shm.allowed_base_dirs)?;
        let hugepages = is_on_hugetlbfs(&cfg.shm.base_dir);
        if cfg.shm.require_hugepages && !hugepages {
            tracing::warn!(
                base_dir = %cfg.shm.base_dir.display(),
                "shm.require_hugepages = true but shm.base_dir is not on hugetlbfs: attaches with requireHugepages=UNSPECIFIED are rejected"
            );
        }
        let files = FileSettings {
            layout,
            allowed,
            prefault: cfg.policies.prefault_shm,
            mlock: cfg.policies.mlock_shm,
            hugepages,
            pid: u64::from(std::process::id()),
            layout_version: LAYOUT_VERSION,
            mount: tensorpool_shm::paths::mount_of(&base)
                .map_or_else(|| base.display().to_string(), |m| m.to_string()),
        };
        let cooldown = u64::from(cfg.policies.node_id_reuse_cooldown_ms) * 1_000_000;
        let period = cfg.policies.announce_period_ns();
        let mut core = Self {
            leases: LeaseTable::new(random_u64() >> 2),
            nodes: NodeIds::new(cooldown),
            streams: StreamTable::default(),
            counters: DriverCells::default(),
            dynamic_cursor: cfg.driver.stream_id_range.map_or(0, |r| r.start),
            announce_timer: DeadlineTimer::periodic(period, now_ns),
            lifecycle: Lifecycle::Running,
            start_ns: now_ns,
            text: ErrorText::default(),
            fatal: None,
            removed_epochs: Vec::new(),
            files,
            cfg,
        };
        core.provision_static(now_ns)?;
        Ok(core)
    }

    fn provision_static(&mut self, now_ns: u64) -> Result<(), DriverError> {
        for sc in self.cfg.streams.clone() {
            let profile = self
                .cfg
                .profiles
                .iter()
                .position(|p| p.name == sc.profile)
                .unwrap_or(0);
            let previous = highest_epoch_on_disk(&self.files.layout.stream_dir(sc.stream_id));
            let mut stream = Stream::new(sc.stream_id, profile, false, previous);
            stream.gc_pending = self.cfg.policies.epoch_gc_on_startup;
            let p = &self.cfg.profiles[profile];
            if !p.payload_pools.is_empty() {
                let epoch = next_epoch(previous, now_ns)
                    .ok_or(DriverError::EpochExhausted(sc.stream_id))?;
                let live = self
                    .provision_or_make_room(sc.stream_id, profile, epoch, now_ns)
                    .map_err(|source| DriverError::Provision {
                        stream_id: sc.stream_id,
                        source,
                    })?;
                stream.install(live, now_ns);
                self.counters.epoch_bumps += 1;
                tracing::info!(
                    stream_id = sc.stream_id,
                    epoch = stream.epoch,
                    previous,
                    "stream provisioned"
                );
            }
            self.streams.push(stream);
        }
        Ok(())
    }

    /// The configuration in force.
    pub fn config(&self) -> &DriverConfig {
        &self.cfg
    }

    /// Publishes the counters as Aeron counters allocated from `aeron` (all requested at
    /// once, bounded by `timeout`); the values so far are written into them.
    pub fn attach_aeron_counters(
        &mut self,
        aeron: &tensorpool_aeron::AeronClient,
        timeout: std::time::Duration,
    ) -> Result<(), tensorpool_aeron::AddError> {
        let scope = format!("instance={}", self.cfg.driver.instance_id);
        let mut reg = crate::counters::Registrar::new(
            aeron,
            crate::counters::Role::Driver,
            0,
            0,
            scope,
            timeout,
        );
        DriverCells::register(&mut reg)?;
        let counters = reg.finish()?;
        self.counters.attach(&mut counters.into_iter());
        Ok(())
    }

    /// Counters since start.
    pub fn counters(&self) -> super::Counters {
        self.counters.snapshot()
    }

    /// The lifecycle state.
    pub fn lifecycle(&self) -> &Lifecycle {
        &self.lifecycle
    }

    /// Whether `ShmDriverShutdown` was sent and the driver should exit.
    pub fn is_stopped(&self) -> bool {
        self.lifecycle == Lifecycle::Stopped
    }

    /// A fatal error (e.g. `mlock` failed with `policies.mlock_shm`); the agent terminates.
    pub fn fatal_error(&self) -> Option<&str> {
        self.fatal.as_deref()
    }

    /// The active leases.
    pub fn leases(&self) -> impl Iterator<Item = &Lease> {
        self.leases.iter()
    }

    /// The lease `lease_id`, if active.
    pub fn lease(&self, lease_id: u64) -> Option<&Lease> {
        self.leases.get(lease_id)
    }

    /// Number of active leases of `role`.
    pub fn lease_count(&self, role: Role) -> usize {
        self.leases.count_role(role)
    }

    /// Every stream.
    pub fn streams(&self) -> Vec<StreamInfo> {
        self.streams.iter().map(|s| self.stream_info(s)).collect()
    }

    /// One stream.
    pub fn stream(&self, stream_id: u32) -> Option<StreamInfo> {
        self.streams.get(stream_id).map(|s| self.stream_info(s))
    }

    fn stream_info(&self, s: &Stream) -> StreamInfo {
        let p = &self.cfg.profiles[s.profile];
        StreamInfo {
            stream_id: s.stream_id,
            profile: p.name.clone(),
            dynamic: s.dynamic,
            epoch: s.live.as_ref().map(|l| l.epoch),
            header_uri: s.live.as_ref().map(|l| l.header_uri.clone()),
            header_nslots: p.header_nslots,
            pool_count: u16::try_from(p.payload_pools.len()).unwrap_or(u16::MAX),
            producer: s.producer,
            consumers: s.consumers,
        }
    }

    /// The highest epoch number issued for `stream_id` (0: none).
    pub fn last_epoch(&self, stream_id: u32) -> u64 {
        self.streams.get(stream_id).map_or(0, |s| s.epoch)
    }

    /// Whether the base directory is on hugetlbfs (regions are hugepage-backed).
    pub fn hugepages(&self) -> bool {
        self.files.hugepages
    }

    /// Lease lifetime without keepalive.
    pub(crate) fn lease_duration_ns(&self) -> u64 {
        self.cfg.policies.lease_duration_ns()
    }

    pub(crate) fn is_running(&self) -> bool {
        self.lifecycle == Lifecycle::Running
    }

    /// Checks the invariants the fuzz target and tests rely on: at most one producer lease
    /// per stream, unique lease ids, stream bookkeeping equal to the lease table. Returns a
    /// description of the first violation.
    pub fn check_invariants(&self) -> Result<(), String> {
        let leases: Vec<&Lease> = self.leases.iter().collect();
        for (i, a) in leases.iter().enumerate() {
            if leases[i + 1..].iter().any(|b| b.lease_id == a.lease_id) {
                return Err(format!("lease id {} appears twice", a.lease_id));
            }
            if leases[i + 1..].iter().any(|b| b.client_id == a.client_id) {
                return Err(format!("client id {} holds two leases", a.client_id));
            }
        }
        for s in self.streams.iter() {
            let producers: Vec<_> = leases
                .iter()
                .filter(|l| l.stream_id == s.stream_id && l.role == Role::Producer)
                .collect();
            if producers.len() > 1 {
                return Err(format!(
                    "stream {} has {} producer leases",
                    s.stream_id,
                    producers.len()
                ));
            }
            if producers.first().map(|l| l.lease_id) != s.producer.map(|p| p.lease_id) {
                return Err(format!(
                    "stream {} producer bookkeeping differs from the leases",
                    s.stream_id
                ));
            }
            let consumers = leases
                .iter()
                .filter(|l| l.stream_id == s.stream_id && l.role == Role::Consumer)
                .count();
            if consumers != s.consumers as usize {
                return Err(format!(
                    "stream {} counts {} consumers, leases say {consumers}",
                    s.stream_id, s.consumers
                ));
            }
            if let Some(live) = &s.live
                && live.epoch != s.epoch
            {
                return Err(format!(
                    "stream {} live epoch {} is not its last epoch {}",
                    s.stream_id, live.epoch, s.epoch
                ));
            }
        }
        if let Some(l) = leases.iter().find(|l| !self.streams.contains(l.stream_id)) {
            return Err(format!(
                "lease {} names unknown stream {}",
                l.lease_id, l.stream_id
            ));
        }
        Ok(())
    }
}
