//! Media driver configuration: threading mode, idle strategy, term lengths, directory.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How the media driver spreads its agents (conductor, sender, receiver) over threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ThreadingMode {
    /// One thread each for the conductor, the sender and the receiver.
    Dedicated,
    /// One thread for the conductor, one shared by the sender and the receiver.
    SharedNetwork,
    /// One thread for all agents: the least CPU, the default here.
    #[default]
    Shared,
}

impl ThreadingMode {
    /// The name used on the command line and in `AERON_THREADING_MODE`.
    pub fn as_str(self) -> &'static str {
        match self {
            ThreadingMode::Dedicated => "dedicated",
            ThreadingMode::SharedNetwork => "shared-network",
            ThreadingMode::Shared => "shared",
        }
    }
}

impl fmt::Display for ThreadingMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A threading mode name was not one of `dedicated`, `shared-network`, `shared`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown threading mode {0:?}: expected dedicated, shared-network or shared")]
pub struct ParseThreadingModeError(pub String);

impl FromStr for ThreadingMode {
    type Err = ParseThreadingModeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "dedicated" => Ok(ThreadingMode::Dedicated),
            "shared-network" | "shared_network" | "sharednetwork" => {
                Ok(ThreadingMode::SharedNetwork)
            }
            "shared" => Ok(ThreadingMode::Shared),
            _ => Err(ParseThreadingModeError(s.to_owned())),
        }
    }
}

/// How the driver's agent threads wait when they have no work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DriverIdleStrategy {
    /// Aeron's back-off: a few spins and yields, then parks from 1 µs up to 1 ms. The default:
    /// an idle driver costs next to no CPU, a busy one reacts quickly.
    #[default]
    Backoff,
    /// Sleeps this long whenever a duty cycle found no work.
    Sleeping(Duration),
    /// Yields the thread whenever a duty cycle found no work (keeps a core busy).
    Yielding,
    /// Spins (keeps a core at 100%: only for dedicated, isolated cores).
    BusySpin,
}

impl DriverIdleStrategy {
    /// Aeron's name for the strategy.
    pub(crate) fn aeron_name(self) -> &'static std::ffi::CStr {
        match self {
            DriverIdleStrategy::Backoff => c"backoff",
            DriverIdleStrategy::Sleeping(_) => c"sleep-ns",
            DriverIdleStrategy::Yielding => c"yield",
            DriverIdleStrategy::BusySpin => c"spin",
        }
    }

    /// Aeron's init args for the strategy (`None`: Aeron's defaults).
    pub(crate) fn aeron_init_args(self) -> Option<std::ffi::CString> {
        match self {
            DriverIdleStrategy::Sleeping(period) => {
                let ns = u64::try_from(period.as_nanos()).unwrap_or(u64::MAX).max(1);
                std::ffi::CString::new(ns.to_string()).ok()
            }
            _ => None,
        }
    }
}

/// Configuration of an embedded media driver. `Default` gives a private driver for one
/// process: a fresh unique directory, shared threading, back-off idling, small sparse term
/// buffers, the directory deleted on start and on shutdown.
///
/// Any `AERON_*` environment variable the C driver knows is read first; every field set here
/// (every non-`None` field) overrides it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDriverConfig {
    /// The Aeron directory (`AERON_DIR`). `None`: a fresh unique directory under
    /// [`default_base_dir`], so parallel drivers never collide.
    pub dir: Option<PathBuf>,
    /// Threading mode (`AERON_THREADING_MODE`).
    pub threading_mode: ThreadingMode,
    /// Idle strategy of every driver agent (`AERON_*_IDLE_STRATEGY`).
    pub idle_strategy: DriverIdleStrategy,
    /// Term buffer length of network publications (`AERON_TERM_BUFFER_LENGTH`): a power of two,
    /// 64 KiB ..= 1 GiB. `None`: Aeron's default (16 MiB).
    pub term_buffer_length: Option<usize>,
    /// Term buffer length of IPC publications (`AERON_IPC_TERM_BUFFER_LENGTH`): a power of two,
    /// 64 KiB ..= 1 GiB. `None`: Aeron's default (64 MiB).
    pub ipc_term_buffer_length: Option<usize>,
    /// Whether log buffers are sparse files (`AERON_TERM_BUFFER_SPARSE_FILE`), so untouched
    /// pages cost no memory.
    pub term_buffer_sparse_file: Option<bool>,
    /// Delete the directory when the driver starts (`AERON_DIR_DELETE_ON_START`).
    pub dir_delete_on_start: bool,
    /// Delete the directory when the driver stops (`AERON_DIR_DELETE_ON_SHUTDOWN`).
    pub dir_delete_on_shutdown: bool,
    /// How long clients may go without hearing the driver (`AERON_DRIVER_TIMEOUT`).
    pub driver_timeout: Option<Duration>,
}

impl Default for MediaDriverConfig {
    fn default() -> Self {
        Self {
            dir: None,
            threading_mode: ThreadingMode::Shared,
            idle_strategy: DriverIdleStrategy::Backoff,
            term_buffer_length: Some(DEFAULT_EMBEDDED_TERM_LENGTH),
            ipc_term_buffer_length: Some(DEFAULT_EMBEDDED_TERM_LENGTH),
            term_buffer_sparse_file: Some(true),
            dir_delete_on_start: true,
            dir_delete_on_shutdown: true,
            driver_timeout: None,
        }
    }
}

/// Term length of an embedded driver unless configured: 4 MiB. Control messages are small
/// (tensors travel in shared memory), so Aeron's 64 MiB IPC default would only waste memory.
pub const DEFAULT_EMBEDDED_TERM_LENGTH: usize = 4 * 1024 * 1024;

const MIN_TERM_LENGTH: usize = 64 * 1024;
const MAX_TERM_LENGTH: usize = 1024 * 1024 * 1024;

impl MediaDriverConfig {
    /// Sets the Aeron directory.
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// Sets the threading mode.
    pub fn threading_mode(mut self, mode: ThreadingMode) -> Self {
        self.threading_mode = mode;
        self
    }

    /// Sets the idle strategy of every driver agent.
    pub fn idle_strategy(mut self, strategy: DriverIdleStrategy) -> Self {
        self.idle_strategy = strategy;
        self
    }

    /// Sets the network term buffer length.
    pub fn term_buffer_length(mut self, len: usize) -> Self {
        self.term_buffer_length = Some(len);
        self
    }

    /// Sets the IPC term buffer length.
    pub fn ipc_term_buffer_length(mut self, len: usize) -> Self {
        self.ipc_term_buffer_length = Some(len);
        self
    }

    /// Sets whether the directory is deleted on start and on shutdown.
    pub fn dir_delete(mut self, on_start: bool, on_shutdown: bool) -> Self {
        self.dir_delete_on_start = on_start;
        self.dir_delete_on_shutdown = on_shutdown;
        self
    }

    /// Sets the driver timeout.
    pub fn driver_timeout(mut self, timeout: Duration) -> Self {
        self.driver_timeout = Some(timeout);
        self
    }

    /// Checks the values Aeron would otherwise reject later with a less direct message.
    pub(crate) fn validate(&self) -> Result<(), crate::DriverError> {
        for (field, len) in [
            ("term_buffer_length", self.term_buffer_length),
            ("ipc_term_buffer_length", self.ipc_term_buffer_length),
        ] {
            if let Some(len) = len
                && (!len.is_power_of_two() || !(MIN_TERM_LENGTH..=MAX_TERM_LENGTH).contains(&len))
            {
                return Err(crate::DriverError::InvalidConfig {
                    field,
                    reason: "expected a power of two from 64 KiB to 1 GiB",
                });
            }
        }
        if let Some(timeout) = self.driver_timeout
            && timeout < Duration::from_millis(1)
        {
            return Err(crate::DriverError::InvalidConfig {
                field: "driver_timeout",
                reason: "expected at least 1 ms",
            });
        }
        Ok(())
    }
}

/// Where unique driver directories go: `/dev/shm` when it exists (Aeron's choice on Linux),
/// else the system temporary directory.
pub fn default_base_dir() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// A fresh directory name under [`default_base_dir`]:
/// `tensorpool-aeron-<pid>-<sequence>-<random>`. Unique across processes and across drivers in
/// one process.
pub fn unique_dir() -> PathBuf {
    use std::hash::{BuildHasher, Hasher};
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let n = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(n);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    hasher.write_u128(nanos);
    let random = hasher.finish() & 0xffff_ffff;
    default_base_dir().join(format!(
        "tensorpool-aeron-{}-{n}-{random:08x}",
        std::process::id()
    ))
}

/// Removes the unique directories ([`unique_dir`]) under `base` of processes that are gone: a
/// process that died with an embedded media driver cannot remove its directory (a 48 MB
/// `cnc.dat` and its logs). Only directories named `tensorpool-aeron-<pid>-...`, owned by the
/// effective user, not symlinks, whose pid no longer exists are removed; a pid that exists
/// (alive, or reused) keeps its directory. Returns the directories removed.
pub fn reclaim_dead_unique_dirs(base: &Path) -> Vec<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let Ok(rd) = std::fs::read_dir(base) else {
        return Vec::new();
    };
    // SAFETY: geteuid cannot fail and has no preconditions.
    let euid = unsafe { libc::geteuid() };
    let mut removed = Vec::new();
    for e in rd.filter_map(Result::ok) {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("tensorpool-aeron-"))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        let path = e.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if !meta.is_dir() || meta.uid() != euid || pid == 0 {
            continue;
        }
        if Path::new("/proc").join(pid.to_string()).exists() {
            continue;
        }
        if std::fs::remove_dir_all(&path).is_ok() {
            tracing::info!(dir = %path.display(), pid, "removed the Aeron directory of a dead process");
            removed.push(path);
        }
    }
    removed
}

/// The Aeron directory a client or `aeronmd` uses when nothing else is configured: `AERON_DIR`
/// if set, else Aeron's own default (`/dev/shm/aeron-<user>` on Linux), as the C library
/// computes it.
pub fn aeron_default_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("AERON_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let mut buf = [0 as std::os::raw::c_char; 4096];
    // SAFETY: `buf` is writable for its whole length, which is passed; Aeron writes a
    // NUL-terminated path (truncated to fit).
    unsafe { rusteron_client::bindings::aeron_default_path(buf.as_mut_ptr(), buf.len()) };
    // SAFETY: the buffer was zeroed and Aeron keeps it NUL-terminated within its length.
    let path = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) };
    PathBuf::from(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(path.to_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threading_modes_parse_from_our_names_and_aerons() {
        for mode in [
            ThreadingMode::Dedicated,
            ThreadingMode::SharedNetwork,
            ThreadingMode::Shared,
        ] {
            assert_eq!(mode.as_str().parse::<ThreadingMode>(), Ok(mode));
        }
        assert_eq!("SHARED_NETWORK".parse(), Ok(ThreadingMode::SharedNetwork));
        assert!("invoker".parse::<ThreadingMode>().is_err());
    }

    #[test]
    fn idle_strategies_map_to_aeron_names_and_args() {
        let sleeping = DriverIdleStrategy::Sleeping(Duration::from_micros(250));
        assert_eq!(sleeping.aeron_name(), c"sleep-ns");
        assert_eq!(sleeping.aeron_init_args().as_deref(), Some(c"250000"));
        assert_eq!(DriverIdleStrategy::Backoff.aeron_init_args(), None);
        assert_eq!(DriverIdleStrategy::BusySpin.aeron_name(), c"spin");
    }

    #[test]
    fn validation_rejects_bad_term_lengths_and_timeouts() {
        assert!(MediaDriverConfig::default().validate().is_ok());
        for len in [0, 1000, 32 * 1024, 2 * 1024 * 1024 * 1024] {
            assert!(
                MediaDriverConfig::default()
                    .term_buffer_length(len)
                    .validate()
                    .is_err()
            );
        }
        let config = MediaDriverConfig::default().driver_timeout(Duration::ZERO);
        assert!(config.validate().is_err());
    }

    #[test]
    fn unique_dirs_differ() {
        assert_ne!(unique_dir(), unique_dir());
        assert!(unique_dir().starts_with(default_base_dir()));
    }
}
