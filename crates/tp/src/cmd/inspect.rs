//! `tp inspect`: what a header ring or payload pool file holds, with the verdict of every
//! superblock rule, the writer's liveness, and (for a ring) the state of each slot.
//!
//! Read-only: the file is opened through the shm crate's containment checks
//! (`AllowedBaseDirs`, `O_NOFOLLOW`, `fstat` identity) with `O_RDONLY`, and a ring is mapped
//! `PROT_READ` through `HeaderRing<ReadOnly>` only once its superblock is valid.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use tensorpool_codec::wire::superblock as off;
use tensorpool_shm::paths::{Access, AllowedBaseDirs, ValidatedFile};
use tensorpool_shm::superblock::{self, ExpectedRegion, RegionType};
use tensorpool_shm::{HeaderRing, MapOptions, RegionUri};
use tensorpool_shm::{LAYOUT_VERSION, MAGIC, SUPERBLOCK_SIZE, pool};

use super::CmdError;

mod report;
mod slots;

pub use slots::SlotRange;

/// One-line description (`tp inspect -h`).
pub const ABOUT: &str = "Inspect a header ring or payload pool file";

/// What `tp inspect --help` says.
pub const LONG_ABOUT: &str = "Inspect a header ring or payload pool file.

Prints the superblock with the verdict of each rule (magic, layout version, region type,
pool id, nslots, slot and stride sizes, file length), the writer's liveness (pid alive?
activity age against a window), and for a header ring the state of its slots (empty,
in progress, committed: sequence, dtype, shape, strides, pool, values_len, timestamp).
Never writes. Exit status 1 when the region is invalid (the report still prints).

The file must lie inside an allowed base directory: the --allow directories, else the
file's own directory.";

/// Examples, shown after the flags.
pub const EXAMPLES: &str = "Examples:
  tp inspect /dev/shm/tensorpool-$USER/default/10000/7/header.ring
  tp inspect 'shm:file?path=/dev/shm/tensorpool-alice/default/10000/7/1.pool' --allow /dev/shm
  tp inspect header.ring --slots 0..16 --json";

/// Flags of `tp inspect`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Region file path or `shm:file?path=...` URI.
    #[arg(value_name = "FILE|SHM-URI")]
    target: String,
    /// Allowed base directory (repeatable) [default: the file's directory].
    #[arg(long = "allow", value_name = "DIR")]
    allow: Vec<PathBuf>,
    /// Slots to show, `A..B` (end exclusive), `A..=B`, `A..`, `..B` or `A`; every state is
    /// listed [default: committed slots only, up to --max-slots].
    #[arg(long, value_name = "A..B")]
    slots: Option<SlotRange>,
    /// Most slots listed when --slots is not given.
    #[arg(long, default_value_t = 64, value_name = "N")]
    max_slots: usize,
    /// Liveness window: an activity timestamp older than this is stale.
    #[arg(long, default_value_t = 3000, value_name = "MS")]
    window_ms: u64,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// The superblock's fields, read straight from their offsets (so a bad magic or an unknown
/// region type is still shown).
#[derive(Debug, Clone, Serialize)]
pub struct RawSuperblock {
    magic: u64,
    layout_version: u32,
    epoch: u64,
    stream_id: u32,
    region_type: i16,
    pool_id: u16,
    nslots: u32,
    slot_bytes: u32,
    stride_bytes: u32,
    pid: u64,
    start_timestamp_ns: u64,
    activity_timestamp_ns: u64,
}

impl RawSuperblock {
    fn read(b: &[u8; SUPERBLOCK_SIZE]) -> Self {
        let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap_or_default());
        let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap_or_default());
        let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
        Self {
            magic: u64_at(off::MAGIC_OFFSET),
            layout_version: u32_at(off::LAYOUT_VERSION_OFFSET),
            epoch: u64_at(off::EPOCH_OFFSET),
            stream_id: u32_at(off::STREAM_ID_OFFSET),
            region_type: u16_at(off::REGION_TYPE_OFFSET) as i16,
            pool_id: u16_at(off::POOL_ID_OFFSET),
            nslots: u32_at(off::NSLOTS_OFFSET),
            slot_bytes: u32_at(off::SLOT_BYTES_OFFSET),
            stride_bytes: u32_at(off::STRIDE_BYTES_OFFSET),
            pid: u64_at(off::PID_OFFSET),
            start_timestamp_ns: u64_at(off::START_TIMESTAMP_OFFSET),
            activity_timestamp_ns: u64_at(off::ACTIVITY_TIMESTAMP_OFFSET),
        }
    }

    fn kind(&self) -> Option<RegionType> {
        RegionType::try_from(self.region_type).ok()
    }
}

/// The verdict of one rule.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// The field or property checked.
    field: &'static str,
    /// Whether it passes.
    ok: bool,
    /// What the rule is, or what was found.
    note: String,
}

/// The writer's liveness.
#[derive(Debug, Clone, Serialize)]
pub struct Liveness {
    pid: u64,
    /// `None` when no pid is recorded (0).
    pid_alive: Option<bool>,
    /// Clock the activity timestamp seems to use (`realtime` or `monotonic`, by magnitude).
    clock: &'static str,
    /// Milliseconds since the last activity (negative: in the future); `None` if never.
    activity_age_ms: Option<f64>,
    window_ms: u64,
    stale: bool,
}

/// Everything `tp inspect` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    path: PathBuf,
    file_len: u64,
    fs: String,
    region: &'static str,
    superblock: RawSuperblock,
    checks: Vec<Check>,
    valid: bool,
    error: Option<String>,
    liveness: Liveness,
    ring: Option<slots::RingReport>,
}

/// Runs `tp inspect`.
pub fn run(args: &Args) -> Result<(), CmdError> {
    let (path, hugepages) = resolve_target(&args.target)?;
    std::fs::symlink_metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let allowed = allowed_dirs(&args.allow, &path)?;
    let file = allowed.open(&path, Access::ReadOnly, hugepages)?;
    let report = inspect(file, args)?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", report::render(&report));
    }
    match &report.error {
        Some(e) => Err(format!("{}: region invalid: {e}", report.path.display()).into()),
        None => Ok(()),
    }
}

/// A path (made absolute) or the path of a `shm:` URI, with its hugepage requirement.
fn resolve_target(target: &str) -> Result<(PathBuf, bool), CmdError> {
    if target.starts_with("shm:") {
        let uri = RegionUri::parse(target)?;
        return Ok((uri.to_path_buf(), uri.requires_hugepages()));
    }
    if target.contains(':') && !Path::new(target).exists() && target.split(':').next() != Some("") {
        let scheme = target.split(':').next().unwrap_or_default();
        if !scheme.contains('/') {
            return Err(format!(
                "unknown region URI scheme `{scheme}`; expected a file path or `shm:file?path=...`"
            )
            .into());
        }
    }
    let path = std::path::absolute(target).map_err(|e| format!("{target}: {e}"))?;
    Ok((path, false))
}

fn allowed_dirs(allow: &[PathBuf], path: &Path) -> Result<AllowedBaseDirs, CmdError> {
    if !allow.is_empty() {
        let dirs: Result<Vec<PathBuf>, _> = allow.iter().map(std::path::absolute).collect();
        return Ok(AllowedBaseDirs::new(dirs?)?);
    }
    let parent = path
        .parent()
        .ok_or_else(|| format!("{}: has no parent directory", path.display()))?;
    Ok(AllowedBaseDirs::new([parent])?)
}

fn inspect(file: ValidatedFile, args: &Args) -> Result<Report, CmdError> {
    let path = file.path().to_path_buf();
    let file_len = file.len();
    if file_len < SUPERBLOCK_SIZE as u64 {
        return Err(format!(
            "{}: {file_len} bytes; a region starts with a {SUPERBLOCK_SIZE}-byte superblock",
            path.display()
        )
        .into());
    }
    let mut bytes = [0u8; SUPERBLOCK_SIZE];
    file.file()
        .read_exact_at(&mut bytes, 0)
        .map_err(|e| format!("{}: reading the superblock: {e}", path.display()))?;
    let raw = RawSuperblock::read(&bytes);
    let checks = checks(&raw, file_len);
    // The shm crate's own verdict (its rules are the ones consumers apply), then the length.
    let verdict = superblock::decode(&bytes)
        .and_then(|sb| superblock::validate(&sb, &expected(&sb)).map(|()| sb))
        .map_err(|e| e.to_string())
        .and_then(
            |sb| match checks.iter().find(|c| c.field == "file_len" && !c.ok) {
                Some(c) => Err(format!("file length: {}", c.note)),
                None => Ok(sb),
            },
        );
    let liveness = liveness(&raw, args.window_ms);
    let fs = file.fs();
    let fs_name = match fs.fs_type {
        0x0102_1994 => "tmpfs".to_owned(),
        0xEF53 => "ext4".to_owned(),
        0x5846_5342 => "xfs".to_owned(),
        0x794C_7630 => "overlayfs".to_owned(),
        _ if fs.is_hugetlbfs() => format!("hugetlbfs (page {} bytes)", fs.block_size),
        other => format!("fs type 0x{other:x}"),
    };
    let region = match raw.kind() {
        Some(RegionType::HeaderRing) => "header ring",
        Some(RegionType::PayloadPool) => "payload pool",
        None => "unknown",
    };
    let ring = match &verdict {
        Ok(sb) if sb.region_type == RegionType::HeaderRing => {
            let ring = HeaderRing::from_file(file, &expected(sb), MapOptions::default())?;
            Some(slots::read(&ring, args.slots.as_ref(), args.max_slots)?)
        }
        _ => None,
    };
    Ok(Report {
        path,
        file_len,
        fs: fs_name,
        region,
        superblock: raw,
        checks,
        valid: verdict.is_ok(),
        error: verdict.err(),
        liveness,
        ring,
    })
}

/// What a superblock must match to be self-consistent (the values it states).
fn expected(sb: &superblock::Superblock) -> ExpectedRegion {
    ExpectedRegion {
        layout_version: LAYOUT_VERSION,
        epoch: sb.epoch,
        stream_id: sb.stream_id,
        region_type: sb.region_type,
        pool_id: sb.pool_id,
        nslots: sb.nslots,
        stride_bytes: sb.stride_bytes,
    }
}

fn check(field: &'static str, ok: bool, note: impl Into<String>) -> Check {
    Check {
        field,
        ok,
        note: note.into(),
    }
}

/// One verdict per superblock rule (Wire Spec §7.1, §15.1, §15.22; the crate's size choices).
fn checks(s: &RawSuperblock, file_len: u64) -> Vec<Check> {
    let ring = s.kind() == Some(RegionType::HeaderRing);
    let mut v = vec![
        check(
            "magic",
            s.magic == MAGIC,
            format!("expected 0x{MAGIC:016x} (file bytes `1MHSLPOT`)"),
        ),
        check(
            "layout_version",
            s.layout_version == LAYOUT_VERSION,
            format!("this build reads layout version {LAYOUT_VERSION}"),
        ),
        check(
            "region_type",
            s.kind().is_some(),
            match s.kind() {
                Some(RegionType::HeaderRing) => "HEADER_RING",
                Some(RegionType::PayloadPool) => "PAYLOAD_POOL",
                None => "expected 1 (HEADER_RING) or 2 (PAYLOAD_POOL)",
            },
        ),
        check(
            "pool_id",
            !ring || s.pool_id == 0,
            if ring {
                "must be 0 for a header ring"
            } else {
                ""
            },
        ),
        check(
            "nslots",
            s.nslots.is_power_of_two(),
            "a non-zero power of two",
        ),
    ];
    v.extend(size_checks(s, ring));
    v.push(length_check(s, ring, file_len));
    v
}

fn size_checks(s: &RawSuperblock, ring: bool) -> [Check; 2] {
    if ring {
        return [
            check("slot_bytes", s.slot_bytes == 256, "256 for a header ring"),
            check(
                "stride_bytes",
                s.stride_bytes == 0 || s.stride_bytes == 256,
                "0 or 256 for a header ring",
            ),
        ];
    }
    let stride_note = if !pool::stride_is_valid(s.stride_bytes) {
        "must be a non-zero multiple of 64"
    } else if pool::stride_is_julia_compatible(s.stride_bytes) {
        "a power-of-two multiple of 64"
    } else {
        "a multiple of 64 but not a power of two: Julia peers reject it"
    };
    [
        check(
            "slot_bytes",
            s.slot_bytes == s.stride_bytes || s.slot_bytes == u32::MAX,
            "stride_bytes, or 0xFFFFFFFF as the C driver writes",
        ),
        check(
            "stride_bytes",
            pool::stride_is_valid(s.stride_bytes),
            stride_note,
        ),
    ]
}

fn length_check(s: &RawSuperblock, ring: bool, file_len: u64) -> Check {
    let stride = if ring { 256 } else { u64::from(s.stride_bytes) };
    let required = u64::from(s.nslots)
        .checked_mul(stride)
        .and_then(|n| n.checked_add(SUPERBLOCK_SIZE as u64));
    match required {
        None => check("file_len", false, "nslots x stride overflows"),
        Some(r) if file_len < r => check(
            "file_len",
            false,
            format!(
                "{file_len} bytes, short of 64 + {} x {stride} = {r}",
                s.nslots
            ),
        ),
        Some(r) if file_len == r => {
            check("file_len", true, format!("64 + {} x {stride}", s.nslots))
        }
        Some(r) => check(
            "file_len",
            true,
            format!(
                "{} bytes more than 64 + {} x {stride} = {r} (hugepage rounding?)",
                file_len - r,
                s.nslots
            ),
        ),
    }
}

fn liveness(s: &RawSuperblock, window_ms: u64) -> Liveness {
    let pid_alive = (s.pid != 0).then(|| {
        i32::try_from(s.pid).is_ok_and(|p| p > 0 && Path::new(&format!("/proc/{p}")).exists())
    });
    // Realtime nanoseconds are past 10^17 (1973); a monotonic clock would need 3 years of
    // uptime to get there.
    let realtime = s.activity_timestamp_ns > 100_000_000_000_000_000;
    let now = if realtime {
        tensorpool_agent::realtime_ns()
    } else {
        tensorpool_agent::monotonic_ns()
    };
    let ts = s.activity_timestamp_ns;
    let age = (ts != 0).then(|| (now as f64 - ts as f64) / 1e6);
    Liveness {
        pid: s.pid,
        pid_alive,
        clock: if realtime { "realtime" } else { "monotonic" },
        activity_age_ms: age,
        window_ms,
        stale: ts == 0
            || superblock::is_activity_stale(ts, now, window_ms.saturating_mul(1_000_000)),
    }
}
