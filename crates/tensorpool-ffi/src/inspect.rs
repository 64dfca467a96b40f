//! `tp_region_inspect`: a read-only summary of a header ring or payload pool file, as
//! `tp inspect` prints it: the superblock fields, the verdict of the consumers' rules and,
//! for a header ring, how many slots are committed and the latest sequence.

use std::ffi::c_char;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use tensorpool_codec::wire::superblock as off;
use tensorpool_shm::superblock::{self, ExpectedRegion, RegionType};
use tensorpool_shm::{
    Access, AllowedBaseDirs, HeaderRing, LAYOUT_VERSION, MapOptions, RegionUri, SUPERBLOCK_SIZE,
    seqlock,
};

use crate::error::{FfiError, FfiResult, err, guard, tp_status, tp_status::*};
use crate::handles;

/// Kind of region file.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum tp_region_type {
    /// The superblock names no known type.
    TP_REGION_UNKNOWN = 0,
    /// A header ring (256-byte slots).
    TP_REGION_HEADER_RING = 1,
    /// A payload pool.
    TP_REGION_PAYLOAD_POOL = 2,
}

/// What a region file holds. The superblock fields are filled even when the region is
/// invalid, so a caller can show what was found.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
#[allow(non_camel_case_types)]
pub struct tp_region_info {
    /// A [`tp_region_type`].
    pub region_type: u32,
    /// Superblock `layout_version`.
    pub layout_version: u32,
    /// Superblock `epoch`.
    pub epoch: u64,
    /// Superblock `stream_id`.
    pub stream_id: u32,
    /// Superblock `pool_id` (0 for a header ring).
    pub pool_id: u16,
    /// Superblock `nslots`.
    pub nslots: u32,
    /// Superblock `slot_bytes`.
    pub slot_bytes: u32,
    /// Superblock `stride_bytes`.
    pub stride_bytes: u32,
    /// Writer's pid.
    pub pid: u64,
    /// Writer's last activity (ns).
    pub activity_timestamp_ns: u64,
    /// File length in bytes.
    pub file_len: u64,
    /// Whether every superblock rule passes.
    pub valid: bool,
    /// Header ring: committed slots.
    pub committed_slots: u32,
    /// Header ring: slots in progress (being written, or aborted).
    pub in_progress_slots: u32,
    /// Header ring: highest committed sequence (valid when `has_latest_seq`).
    pub latest_seq: u64,
    /// Header ring: whether any slot is committed.
    pub has_latest_seq: bool,
}

fn resolve(target: &str) -> FfiResult<(PathBuf, bool)> {
    if target.starts_with("shm:") {
        let uri = RegionUri::parse(target).map_err(|e| {
            FfiError::new(
                TP_ERR_INVALID_ARGUMENT,
                format!("region URI `{target}`: {e}"),
            )
        })?;
        return Ok((uri.to_path_buf(), uri.requires_hugepages()));
    }
    if let Some((scheme, _)) = target.split_once(':')
        && !scheme.contains('/')
        && !scheme.is_empty()
    {
        return err(
            TP_ERR_INVALID_ARGUMENT,
            format!(
                "region URI `{target}`: unknown scheme `{scheme}`; expected a file path or `shm:file?path=...`"
            ),
        );
    }
    let path = std::path::absolute(target)
        .map_err(|e| FfiError::new(TP_ERR_INVALID_ARGUMENT, format!("{target}: {e}")))?;
    Ok((path, false))
}

fn raw(b: &[u8; SUPERBLOCK_SIZE], info: &mut tp_region_info) {
    let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap_or_default());
    let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap_or_default());
    let region = u16::from_le_bytes([b[off::REGION_TYPE_OFFSET], b[off::REGION_TYPE_OFFSET + 1]]);
    info.region_type = match RegionType::try_from(region as i16) {
        Ok(RegionType::HeaderRing) => tp_region_type::TP_REGION_HEADER_RING as u32,
        Ok(RegionType::PayloadPool) => tp_region_type::TP_REGION_PAYLOAD_POOL as u32,
        _ => tp_region_type::TP_REGION_UNKNOWN as u32,
    };
    info.layout_version = u32_at(off::LAYOUT_VERSION_OFFSET);
    info.epoch = u64_at(off::EPOCH_OFFSET);
    info.stream_id = u32_at(off::STREAM_ID_OFFSET);
    info.pool_id = u16::from_le_bytes([b[off::POOL_ID_OFFSET], b[off::POOL_ID_OFFSET + 1]]);
    info.nslots = u32_at(off::NSLOTS_OFFSET);
    info.slot_bytes = u32_at(off::SLOT_BYTES_OFFSET);
    info.stride_bytes = u32_at(off::STRIDE_BYTES_OFFSET);
    info.pid = u64_at(off::PID_OFFSET);
    info.activity_timestamp_ns = u64_at(off::ACTIVITY_TIMESTAMP_OFFSET);
}

/// What a superblock must match to be self-consistent: the values it states, this build's
/// layout version.
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

fn count_slots(ring: &HeaderRing<tensorpool_shm::ReadOnly>, info: &mut tp_region_info) {
    for index in 0..ring.nslots() {
        let word = ring.seq_commit(index);
        if word == 0 {
            continue;
        }
        if seqlock::is_committed(word) {
            info.committed_slots += 1;
            let seq = seqlock::sequence(word);
            if !info.has_latest_seq || seq > info.latest_seq {
                info.latest_seq = seq;
                info.has_latest_seq = true;
            }
        } else {
            info.in_progress_slots += 1;
        }
    }
}

fn inspect(target: &str, allowed: Option<PathBuf>, info: &mut tp_region_info) -> FfiResult {
    let (path, hugepages) = resolve(target)?;
    let dir = match allowed {
        Some(d) => d,
        None => path.parent().map(PathBuf::from).ok_or_else(|| {
            FfiError::new(
                TP_ERR_INVALID_ARGUMENT,
                format!("{target}: no parent directory"),
            )
        })?,
    };
    let shm = |e: tensorpool_shm::PathError| FfiError::new(TP_ERR_SHM, e.to_string());
    let allowed = AllowedBaseDirs::new([dir]).map_err(shm)?;
    let file = allowed
        .open(&path, Access::ReadOnly, hugepages)
        .map_err(shm)?;
    info.file_len = file.len();
    let mut bytes = [0u8; SUPERBLOCK_SIZE];
    file.file().read_exact_at(&mut bytes, 0).map_err(|e| {
        FfiError::new(
            TP_ERR_REGION_INVALID,
            format!("{}: reading the superblock: {e}", path.display()),
        )
    })?;
    raw(&bytes, info);
    let invalid =
        |what: String| FfiError::new(TP_ERR_REGION_INVALID, format!("{}: {what}", path.display()));
    let sb = superblock::decode(&bytes).map_err(|e| invalid(e.to_string()))?;
    let expected = expected(&sb);
    superblock::validate(&sb, &expected).map_err(|e| invalid(e.to_string()))?;
    if let Some(len) = expected.region_len()
        && info.file_len < len
    {
        return Err(invalid(format!(
            "file is {} bytes, shorter than the {len} its superblock needs",
            info.file_len
        )));
    }
    info.valid = true;
    if sb.region_type == RegionType::HeaderRing {
        let ring = HeaderRing::from_file(file, &expected, MapOptions::default())
            .map_err(|e| invalid(e.to_string()))?;
        count_slots(&ring, info);
    }
    Ok(())
}

/// Summarises the region file at `target` (a path or a `shm:file?path=...` URI), read-only.
/// `allowed_dir` (NULL: the file's own directory) is the directory it must lie in. `out` is
/// filled as far as the file could be read; an invalid superblock is
/// `TP_ERR_REGION_INVALID` with the rule that failed (`out->valid` false).
#[unsafe(no_mangle)]
pub extern "C" fn tp_region_inspect(
    target: *const c_char,
    allowed_dir: *const c_char,
    out: *mut tp_region_info,
) -> tp_status {
    guard("tp_region_inspect", || {
        let out = handles::out(out, "out")?;
        *out = tp_region_info::default();
        let target = handles::string(target, "target")?;
        let allowed = handles::opt_path(allowed_dir, "allowed_dir")?;
        inspect(target, allowed, out)
    })
}
