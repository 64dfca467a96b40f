//! The Aeron UDP bridge in-process (`tp_bridge`: create from a configuration, run its duty
//! cycle, read its counters and mappings, close). Issue 16; docs/bridge.md.

use std::ffi::c_char;
use std::path::PathBuf;

use tensorpool::bridge::{Bridge, BridgeConfig, Counters, LocalDriver, Side};
use tensorpool::config::ProcessEnv;
use tensorpool::streams::DriverEndpoints;
use tensorpool_agent::{Agent, AgentError};

use crate::driver::{tp_driver_endpoints, tp_driver_endpoints_init};
use crate::error::{FfiError, FfiResult, err, guard, tp_status, tp_status::*};
use crate::handles::{self, Kind};

/// Which half of the bridge an instance runs. Options take it as `uint32_t`.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum tp_bridge_side {
    /// Read the mapped source streams of this host and send their frames in chunks.
    TP_BRIDGE_SENDER = 0,
    /// Receive chunks and re-materialize the frames into this host's destination streams.
    TP_BRIDGE_RECEIVER = 1,
    /// Both halves in one instance (bidirectional mappings, or one host).
    TP_BRIDGE_BOTH = 2,
}

/// How a bridge reaches its host. Fill with [`tp_bridge_options_init`], then change fields.
/// Strings may be NULL (the default); they are read by [`tp_bridge_create`] only.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
#[allow(non_camel_case_types)]
pub struct tp_bridge_options {
    /// A [`tp_bridge_side`] (default `TP_BRIDGE_BOTH`).
    pub side: u32,
    /// `shm.base_dir` of this host's SHM driver, absolute: the destinations' files lie there
    /// (NULL: `/dev/shm/tensorpool`).
    pub shm_base_dir: *const c_char,
    /// Directory the sources' files may lie in (NULL: `shm_base_dir`).
    pub allowed_base_dir: *const c_char,
    /// Where this host's SHM driver listens (default: the Driver Model §17 defaults).
    pub driver: tp_driver_endpoints,
}

/// A bridge on the Aeron connection of a context. Opaque; run it with [`tp_bridge_do_work`]
/// and free it with [`tp_bridge_close`].
#[allow(non_camel_case_types)]
#[derive(Debug)]
pub struct tp_bridge {
    bridge: Bridge,
}

impl Drop for tp_bridge {
    fn drop(&mut self) {
        self.bridge.close();
    }
}

/// Every bridge counter since start, both sides, every mapping (docs/bridge.md,
/// `tensorpool:401`..`411` and the in-process ones).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
#[allow(non_camel_case_types)]
pub struct tp_bridge_counters {
    /// Frames sent whole (every chunk published).
    pub frames_sent: u64,
    /// Chunks published.
    pub chunks_sent: u64,
    /// Frames dropped by the sender: the payload publication refused a chunk.
    pub send_drops: u64,
    /// Frames abandoned: overwritten in SHM while being sent or pending.
    pub send_abandoned: u64,
    /// Frames assembled and committed into a destination stream.
    pub frames_received: u64,
    /// Chunks dropped by the receiver (invalid field, unknown mapping, epoch, no announce).
    pub chunk_drops: u64,
    /// Frames dropped by the receiver (conflict, CRC, header, no local pool, evicted).
    pub frame_drops: u64,
    /// Frames dropped incomplete after `bridge.assembly_timeout_ms`.
    pub assembly_timeouts: u64,
    /// Chunks whose CRC32C did not match.
    pub crc_errors: u64,
    /// Source `ShmPoolAnnounce` forwarded on the bridge control channel.
    pub announces_forwarded: u64,
    /// Pending frames (window full) superseded by a newer frame: never sent.
    pub send_window_skips: u64,
    /// Frames too large to send (more than 65535 chunks or above `max_payload_bytes`).
    pub send_too_large: u64,
    /// Forwarded announces received (receiver).
    pub announces_received: u64,
    /// Duplicate chunks ignored.
    pub duplicates: u64,
    /// Frames dropped: their slot header failed validation.
    pub header_drops: u64,
    /// Frames dropped: no destination pool fits, or the destination refused the claim.
    pub dest_drops: u64,
    /// In-flight assemblies dropped on a source epoch change.
    pub epoch_drops: u64,
    /// Chunks dropped: received before any forwarded announce.
    pub no_announce_drops: u64,
    /// Frames dropped: their source sequence was below the destination's next sequence.
    pub seq_behind_drops: u64,
    /// Source epoch changes seen in forwarded announces (receiver).
    pub source_epoch_changes: u64,
    /// Destinations moved to a new local epoch after a source epoch change (receiver).
    pub dest_remaps: u64,
    /// Destination re-attaches that failed (retried; frames dropped meanwhile).
    pub dest_remap_failures: u64,
    /// `DataSourceAnnounce` / `DataSourceMeta` forwarded (sender).
    pub metadata_forwarded: u64,
    /// Forwarded metadata republished locally (receiver).
    pub metadata_republished: u64,
    /// `FrameProgress` / QoS forwarded from a source control stream (sender).
    pub control_forwarded: u64,
    /// Forwarded progress / QoS republished on a destination control stream (receiver).
    pub control_republished: u64,
    /// Messages on the control channel that were not of a known schema.
    pub malformed: u64,
}

impl From<Counters> for tp_bridge_counters {
    fn from(c: Counters) -> Self {
        // No `..`: a counter added to the bridge fails to compile here until it is exposed.
        let Counters {
            frames_sent,
            chunks_sent,
            send_drops,
            send_abandoned,
            frames_received,
            chunk_drops,
            frame_drops,
            assembly_timeouts,
            crc_errors,
            announces_forwarded,
            send_window_skips,
            send_too_large,
            announces_received,
            duplicates,
            header_drops,
            dest_drops,
            epoch_drops,
            no_announce_drops,
            seq_behind_drops,
            source_epoch_changes,
            dest_remaps,
            dest_remap_failures,
            metadata_forwarded,
            metadata_republished,
            control_forwarded,
            control_republished,
            malformed,
        } = c;
        Self {
            frames_sent,
            chunks_sent,
            send_drops,
            send_abandoned,
            frames_received,
            chunk_drops,
            frame_drops,
            assembly_timeouts,
            crc_errors,
            announces_forwarded,
            send_window_skips,
            send_too_large,
            announces_received,
            duplicates,
            header_drops,
            dest_drops,
            epoch_drops,
            no_announce_drops,
            seq_behind_drops,
            source_epoch_changes,
            dest_remaps,
            dest_remap_failures,
            metadata_forwarded,
            metadata_republished,
            control_forwarded,
            control_republished,
            malformed,
        }
    }
}

/// One mapping of a bridge.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
#[allow(non_camel_case_types)]
pub struct tp_bridge_mapping {
    /// Source stream id (on the sending host).
    pub source_stream_id: u32,
    /// Destination stream id on the receiving host: the configured one, or the id granted
    /// from `bridge.dest_stream_id_range`; 0 on a sender-only bridge.
    pub dest_stream_id: u32,
}

fn get<'a>(b: *mut tp_bridge) -> FfiResult<&'a mut tp_bridge> {
    handles::get(b, Kind::Bridge, "bridge")
}

/// Fills `out` with the defaults: both sides, `/dev/shm/tensorpool`, the Driver Model §17
/// endpoints.
#[unsafe(no_mangle)]
pub extern "C" fn tp_bridge_options_init(out: *mut tp_bridge_options) -> tp_status {
    guard("tp_bridge_options_init", || {
        let out = handles::out(out, "out")?;
        let mut driver = std::mem::MaybeUninit::<tp_driver_endpoints>::uninit();
        let status = tp_driver_endpoints_init(driver.as_mut_ptr());
        if status != TP_OK {
            return err(status, "driver endpoints defaults");
        }
        *out = tp_bridge_options {
            side: tp_bridge_side::TP_BRIDGE_BOTH as u32,
            shm_base_dir: std::ptr::null(),
            allowed_base_dir: std::ptr::null(),
            // SAFETY: `tp_driver_endpoints_init` returned TP_OK, so it wrote every field.
            driver: unsafe { driver.assume_init() },
        };
        Ok(())
    })
}

fn local_driver(o: Option<&tp_bridge_options>) -> FfiResult<(Side, LocalDriver)> {
    let Some(o) = o else {
        let d = PathBuf::from(tensorpool_shm::layout::DEFAULT_BASE_DIR);
        return Ok((
            Side::Both,
            LocalDriver {
                endpoints: DriverEndpoints::default(),
                shm_base_dir: d.clone(),
                allowed_base_dirs: vec![d],
            },
        ));
    };
    let side = match o.side {
        0 => Side::Sender,
        1 => Side::Receiver,
        2 => Side::Both,
        s => {
            return err(
                TP_ERR_INVALID_ARGUMENT,
                format!(
                    "side {s} is not TP_BRIDGE_SENDER (0), TP_BRIDGE_RECEIVER (1) or TP_BRIDGE_BOTH (2)"
                ),
            );
        }
    };
    let shm_base_dir = handles::opt_path(o.shm_base_dir, "shm_base_dir")?
        .unwrap_or_else(|| PathBuf::from(tensorpool_shm::layout::DEFAULT_BASE_DIR));
    if !shm_base_dir.is_absolute() {
        return err(
            TP_ERR_INVALID_ARGUMENT,
            format!("shm_base_dir {} is not absolute", shm_base_dir.display()),
        );
    }
    let allowed = handles::opt_path(o.allowed_base_dir, "allowed_base_dir")?
        .unwrap_or_else(|| shm_base_dir.clone());
    Ok((
        side,
        LocalDriver {
            endpoints: crate::driver::endpoints(&o.driver)?,
            shm_base_dir,
            allowed_base_dirs: vec![allowed],
        },
    ))
}

/// Creates a bridge on the Aeron connection of `ctx`: on the sender side a consumer per
/// mapped source stream and the payload and control publications, on the receiver side a
/// driver-attached producer per destination stream and the payload and control
/// subscriptions (Bridge Spec v1.1, docs/bridge.md). Its configuration (`[bridge]` and
/// `[[mappings]]`; `BRIDGE_*` environment variables override the `[bridge]` keys) comes
/// from `config_toml` (TOML text) or else `config_path` (a file); one of them is required.
/// `opts` (may be NULL: [`tp_bridge_options_init`]'s defaults) gives the side and this
/// host's SHM driver. Returns `TP_ERR_CONFIG` for a bad configuration,
/// `TP_ERR_INVALID_ARGUMENT` for bad options, `TP_ERR_AERON` when a source, a destination
/// or a stream cannot be set up (no SHM driver, destination already has a producer, ...).
#[unsafe(no_mangle)]
pub extern "C" fn tp_bridge_create(
    ctx: *mut crate::context::tp_context,
    config_toml: *const c_char,
    config_path: *const c_char,
    opts: *const tp_bridge_options,
    out: *mut *mut tp_bridge,
) -> tp_status {
    guard("tp_bridge_create", || {
        let out = handles::out(out, "out")?;
        *out = std::ptr::null_mut();
        let context = crate::context::get(ctx)?.ctx.clone();
        let cfg = match (
            handles::opt_string(config_toml, "config_toml")?,
            handles::opt_path(config_path, "config_path")?,
        ) {
            (Some(text), _) => BridgeConfig::from_toml(text, &ProcessEnv),
            (None, Some(path)) => BridgeConfig::load(Some(&path), &ProcessEnv),
            (None, None) => {
                return err(
                    TP_ERR_CONFIG,
                    "bridge configuration: config_toml or config_path is required",
                );
            }
        }
        .map_err(|e| FfiError::new(TP_ERR_CONFIG, format!("bridge configuration: {e}")))?;
        let opts = if opts.is_null() {
            None
        } else {
            Some(handles::input(opts, "opts")?)
        };
        let (side, local) = local_driver(opts)?;
        let bridge = Bridge::new(&cfg, side, &context, &local)
            .map_err(|e| FfiError::new(TP_ERR_AERON, format!("bridge: {e}")))?;
        *out = handles::register(tp_bridge { bridge }, Kind::Bridge);
        Ok(())
    })
}

/// One duty cycle: source frames chunked and sent, chunks received and assembled, frames
/// committed into the destinations, announces, metadata and control forwarded, timers.
/// `work` (may be NULL) receives the amount of work done (0: idle).
#[unsafe(no_mangle)]
pub extern "C" fn tp_bridge_do_work(b: *mut tp_bridge, work: *mut u32) -> tp_status {
    guard("tp_bridge_do_work", || {
        let b = get(b)?;
        let done = match b.bridge.do_work(tensorpool_agent::monotonic_ns()) {
            Ok(n) => n,
            Err(AgentError::Terminate) => 0,
            Err(e) => return Err(FfiError::new(TP_ERR_AERON, format!("bridge: {e}"))),
        };
        handles::write_opt(work, u32::try_from(done).unwrap_or(u32::MAX));
        Ok(())
    })
}

/// The number of mappings into `out`.
#[unsafe(no_mangle)]
pub extern "C" fn tp_bridge_mapping_count(b: *mut tp_bridge, out: *mut usize) -> tp_status {
    guard("tp_bridge_mapping_count", || {
        let b = get(b)?;
        *handles::out(out, "out")? = b.bridge.core().mappings().len();
        Ok(())
    })
}

/// Mapping `index`'s stream ids into `out` (`TP_ERR_INVALID_ARGUMENT` for an index past the
/// mappings).
#[unsafe(no_mangle)]
pub extern "C" fn tp_bridge_get_mapping(
    b: *mut tp_bridge,
    index: usize,
    out: *mut tp_bridge_mapping,
) -> tp_status {
    guard("tp_bridge_get_mapping", || {
        let b = get(b)?;
        let out = handles::out(out, "out")?;
        let mappings = b.bridge.core().mappings();
        let Some(m) = mappings.get(index) else {
            return err(
                TP_ERR_INVALID_ARGUMENT,
                format!("mapping {index}: the bridge has {}", mappings.len()),
            );
        };
        *out = tp_bridge_mapping {
            source_stream_id: m.source_stream_id,
            dest_stream_id: m.dest_stream_id,
        };
        Ok(())
    })
}

/// A snapshot of the bridge's counters into `out`.
#[unsafe(no_mangle)]
pub extern "C" fn tp_bridge_get_counters(
    b: *mut tp_bridge,
    out: *mut tp_bridge_counters,
) -> tp_status {
    guard("tp_bridge_get_counters", || {
        let b = get(b)?;
        *handles::out(out, "out")? = b.bridge.counters().into();
        Ok(())
    })
}

/// Closes the bridge (detaches its destinations, closes its sources and streams). NULL is a
/// no-op.
#[unsafe(no_mangle)]
pub extern "C" fn tp_bridge_close(b: *mut tp_bridge) -> tp_status {
    guard("tp_bridge_close", || {
        handles::free(b, Kind::Bridge, "bridge")
    })
}
