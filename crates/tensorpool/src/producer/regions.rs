//! Where the producer's regions come from. Standalone mode (Wire Spec §15.14, §15.2,
//! §15.21a.3): create the canonical files of a new epoch (`max(previous + 1, now_ns)`), map
//! them read-write, announce them, and remove the epoch directory on clean close. Driver mode
//! plugs in here too: the producer only needs a mapped ring, pools and the announce data.

use std::path::{Path, PathBuf};

use tensorpool_codec::wire::PayloadPool as WirePool;
use tensorpool_codec::{Bytes, EncodedGroup};
use tensorpool_shm::layout::{CreateOptions, EpochSpec, ShmLayout};
use tensorpool_shm::{
    AllowedBaseDirs, ExpectedRegion, HeaderRing, LAYOUT_VERSION, MapOptions, PayloadPool, PoolSet,
    ReadWrite, RegionUri,
};

use super::BuildError;
use super::config::ProducerConfig;

/// Mapped regions of one epoch, and what an announce says about them.
#[derive(Debug)]
pub(crate) struct Regions {
    pub ring: HeaderRing<ReadWrite>,
    pub pools: PoolSet<ReadWrite>,
    pub epoch: u64,
    pub layout_version: u32,
    pub header_nslots: u32,
    pub header_uri: String,
    /// The `payloadPools` group, encoded once per epoch.
    pub announce_pools: EncodedGroup<WirePool<'static>>,
}

impl Regions {
    /// Refreshes `activity_timestamp_ns` of every region (§7.1, §15.14).
    pub fn refresh_activity(&self, now_ns: u64) {
        self.ring.refresh_activity(now_ns);
        for p in self.pools.pools() {
            p.refresh_activity(now_ns);
        }
    }
}

/// Standalone region source: owns the canonical layout of its stream.
#[derive(Debug)]
pub(crate) struct Standalone {
    layout: ShmLayout,
    allowed: AllowedBaseDirs,
    base_dir: PathBuf,
    stream_id: u32,
    last_epoch: u64,
    current: Option<u64>,
}

impl Standalone {
    pub fn new(cfg: &ProducerConfig) -> Result<Self, BuildError> {
        let layout = ShmLayout::new(&cfg.shm_base_dir, &cfg.shm_namespace, cfg.shm_modes)
            .map_err(BuildError::Layout)?;
        // The base directory must exist before it can be canonicalized.
        std::fs::create_dir_all(&cfg.shm_base_dir).map_err(|e| BuildError::Io {
            path: cfg.shm_base_dir.clone(),
            reason: e.to_string(),
        })?;
        let allowed = AllowedBaseDirs::new([&cfg.shm_base_dir]).map_err(BuildError::Path)?;
        Ok(Self {
            layout,
            allowed,
            base_dir: cfg.shm_base_dir.clone(),
            stream_id: cfg.stream_id,
            last_epoch: 0,
            current: None,
        })
    }

    /// Highest epoch directory of our stream left on disk (a restart must go above it).
    fn highest_on_disk(&self) -> u64 {
        std::fs::read_dir(self.layout.stream_dir(self.stream_id))
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .filter_map(|e| e.file_name().to_str()?.parse::<u64>().ok())
                    .max()
                    .unwrap_or(0)
            })
            .unwrap_or(0)
    }

    /// Creates and maps a new epoch: `max(previous + 1, now_ns)` (PITFALLS #10).
    pub fn create(&mut self, cfg: &ProducerConfig) -> Result<Regions, BuildError> {
        // epochs of an earlier producer of this stream killed before it removed them
        let window = 3 * u64::try_from(cfg.announce_period.as_nanos()).unwrap_or(u64::MAX);
        let now = tensorpool_agent::monotonic_ns();
        for epoch in self.layout.reclaim_dead_epochs(self.stream_id, now, window) {
            tracing::info!(
                stream_id = self.stream_id,
                epoch,
                "removed the epoch of a dead producer"
            );
            self.last_epoch = self.last_epoch.max(epoch);
        }
        let previous = self.last_epoch.max(self.highest_on_disk());
        let epoch = previous
            .saturating_add(1)
            .max(tensorpool_agent::realtime_ns());
        let spec = EpochSpec {
            layout_version: LAYOUT_VERSION,
            stream_id: cfg.stream_id,
            epoch,
            header_nslots: cfg.header_nslots,
            pools: cfg.geometry(),
        };
        let opts = CreateOptions {
            prefault: cfg.prefault,
            pid: u64::from(std::process::id()),
            now_ns: tensorpool_agent::monotonic_ns(),
        };
        let created = self
            .layout
            .create_epoch(&spec, opts)
            .map_err(BuildError::Layout)?;
        self.last_epoch = epoch;
        self.current = Some(epoch);
        let map = MapOptions {
            prefault: cfg.prefault,
            mlock: cfg.mlock,
        };
        let result = self.map(cfg, epoch, &created, map);
        if result.is_err() {
            self.remove(epoch);
        }
        result
    }

    fn map(
        &self,
        cfg: &ProducerConfig,
        epoch: u64,
        created: &tensorpool_shm::CreatedEpoch,
        map: MapOptions,
    ) -> Result<Regions, BuildError> {
        let pools: Vec<(u16, u32, RegionUri)> = cfg
            .pools
            .iter()
            .zip(&created.pool_uris)
            .map(|(p, (id, uri))| (*id, p.stride_bytes, uri.clone()))
            .collect();
        let geometry = Geometry {
            stream_id: cfg.stream_id,
            epoch,
            layout_version: LAYOUT_VERSION,
            header_nslots: cfg.header_nslots,
        };
        map_rw(&geometry, &created.header_uri, &pools, &self.allowed, map)
    }

    /// Removes an epoch directory (clean close / after a switch), then the empty parents
    /// this producer created (best effort: `rmdir` only removes empty directories).
    pub fn remove(&mut self, epoch: u64) {
        if let Err(e) = self.layout.remove_epoch(self.stream_id, epoch) {
            tracing::warn!(epoch, error = %e, "could not remove epoch directory");
        }
        if self.current == Some(epoch) {
            self.current = None;
        }
        let mut dir = self.layout.stream_dir(self.stream_id);
        while dir.starts_with(&self.base_dir) && dir != self.base_dir {
            if std::fs::remove_dir(&dir).is_err() {
                break;
            }
            if !dir.pop() {
                break;
            }
        }
    }

    /// Directory of `epoch`.
    pub fn epoch_dir(&self, epoch: u64) -> PathBuf {
        self.layout.epoch_dir(self.stream_id, epoch)
    }

    /// The base directory.
    #[allow(dead_code)]
    pub fn base_dir(&self) -> &Path {
        &self.base_dir
    }
}

/// What every region of an epoch shares.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Geometry {
    pub stream_id: u32,
    pub epoch: u64,
    pub layout_version: u32,
    pub header_nslots: u32,
}

/// Maps a header ring and its pools read-write, checking every superblock (all or nothing).
pub(crate) fn map_rw(
    g: &Geometry,
    header_uri: &RegionUri,
    pools: &[(u16, u32, RegionUri)],
    allowed: &AllowedBaseDirs,
    map: MapOptions,
) -> Result<Regions, BuildError> {
    let n = g.header_nslots;
    let ring_expected = ExpectedRegion::header_ring(g.layout_version, g.epoch, g.stream_id, n);
    let ring = HeaderRing::<ReadWrite>::open(header_uri, allowed, &ring_expected, map)
        .map_err(|e| BuildError::Region(e.to_string()))?;
    let mut mapped = Vec::with_capacity(pools.len());
    let mut entries = Vec::with_capacity(pools.len());
    for (pool_id, stride, uri) in pools {
        let expected = ExpectedRegion::payload_pool(
            g.layout_version,
            g.epoch,
            g.stream_id,
            *pool_id,
            n,
            *stride,
        );
        let pool = PayloadPool::<ReadWrite>::open(uri, allowed, &expected, map)
            .map_err(|e| BuildError::Region(e.to_string()))?;
        mapped.push(pool);
        entries.push(WirePool {
            pool_id: *pool_id,
            pool_nslots: n,
            stride_bytes: *stride,
            region_uri: Bytes::from(uri.to_string()),
        });
    }
    let pools = PoolSet::new(mapped, n).map_err(BuildError::Pools)?;
    let announce_pools = EncodedGroup::new(&entries)
        .map_err(|e| BuildError::Region(format!("announce pools: {e}")))?;
    Ok(Regions {
        ring,
        pools,
        epoch: g.epoch,
        layout_version: g.layout_version,
        header_nslots: n,
        header_uri: header_uri.to_string(),
        announce_pools,
    })
}

/// Maps the regions a driver lease names (Driver Model §2.2: the driver's URIs are
/// authoritative; they are still validated and contained).
pub(crate) fn map_driver_regions(
    r: &crate::client::Regions,
    allowed: &AllowedBaseDirs,
    map: MapOptions,
) -> Result<Regions, BuildError> {
    let g = Geometry {
        stream_id: r.stream_id,
        epoch: r.epoch,
        layout_version: r.layout_version,
        header_nslots: r.header_nslots,
    };
    let pools: Vec<(u16, u32, RegionUri)> = r
        .pools
        .iter()
        .map(|p| (p.pool_id, p.stride_bytes, p.uri.clone()))
        .collect();
    map_rw(&g, &r.header_uri, &pools, allowed, map)
}
