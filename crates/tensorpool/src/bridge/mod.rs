//! The Aeron UDP bridge (Bridge Spec v1.1): a sender on one host reads committed frames of a
//! source stream as a consumer and sends them in chunks over Aeron UDP; a receiver on
//! another host reassembles them and re-materializes each into its own driver-attached
//! destination stream as a producer, which publishes the local `FrameDescriptor`.
//!
//! | file | concern |
//! |---|---|
//! | `config.rs` | [`BridgeConfig`]: the `[bridge]` table and `[[mappings]]`, environment, validation |
//! | `core.rs` | [`BridgeCore`]: both sides' decisions without transport |
//! | `state.rs` | per-mapping state: the forwarded announce, the assembler |
//! | `handlers.rs` | one `on_<message>` per inbound message (announces, chunks) |
//! | `proxy.rs` | one `send_<message>` per outbound message (the forwarded announce) |
//!
//! The chunk transport itself (the sender's chunking, the receiver's checks and preallocated
//! assembly buffers) is shared with the consumer's payload fallback: [`crate::chunks`].
//! | `counters.rs` | what it counts ([`Counters`]) |
pub mod config;
mod core;
pub mod counters;
mod handlers;
mod proxy;
pub mod state;

pub use self::core::{Assembled, BridgeCore, FrameOut};
pub use crate::chunks::{Assembler, ChunkDrop, ChunkRef, Placed, SendOutcome, SourceFrame};
pub use config::{BridgeConfig, Mapping};
pub use counters::Counters;
pub use handlers::ControlOut;
pub use state::SourceAnnounce;

mod work;

use std::path::PathBuf;
use std::time::Duration;

use tensorpool_aeron::{Publication, Subscription};
use tensorpool_agent::{Agent, AgentResult};

use crate::prelude::{Consumer, Context, Producer};
use crate::streams::DriverEndpoints;

/// Which half of the bridge this process runs (a bridge instance may run both, e.g. for
/// bidirectional mappings over IPC or on one host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Read the source streams here and send chunks.
    Sender,
    /// Receive chunks here and re-materialize into the destination streams.
    Receiver,
    /// Both.
    Both,
}

impl Side {
    fn sends(self) -> bool {
        matches!(self, Side::Sender | Side::Both)
    }
    fn receives(self) -> bool {
        matches!(self, Side::Receiver | Side::Both)
    }
}

/// Where the bridge finds its host's SHM driver and its files.
#[derive(Debug, Clone)]
pub struct LocalDriver {
    /// The driver's control and announce endpoints and client timers.
    pub endpoints: DriverEndpoints,
    /// `shm.base_dir` of the driver (the destination's files lie there).
    pub shm_base_dir: PathBuf,
    /// Directories the source's files may lie in (`shm.allowed_base_dirs`).
    pub allowed_base_dirs: Vec<PathBuf>,
}

/// Why the bridge could not start.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// Aeron could not add a subscription, publication or counter.
    #[error("aeron: {0}")]
    Aeron(#[from] tensorpool_aeron::AddError),
    /// A configured stream id is not an Aeron stream id.
    #[error("{0} is not an Aeron stream id")]
    StreamId(u32),
    /// The source consumer could not be built.
    #[error("mapping source stream {stream}: {reason}")]
    Source {
        /// Source stream id.
        stream: u32,
        /// Why.
        reason: String,
    },
    /// The destination producer could not attach (another producer holds the stream, the
    /// driver refused, every id of `dest_stream_id_range` was refused, ...).
    #[error("mapping destination stream {stream}: {reason}")]
    Destination {
        /// Destination stream id (the first tried when allocating).
        stream: u32,
        /// Why.
        reason: String,
    },
}

/// How long to wait for the media driver to register subscriptions and publications.
const REGISTER_TIMEOUT: Duration = Duration::from_secs(10);
/// Fragments read per subscription per poll.
const FRAGMENT_LIMIT: usize = 64;
/// Frames read per source consumer per poll.
const FRAME_LIMIT: usize = 16;
/// Destination ids tried from `dest_stream_id_range` before giving up.
const ALLOCATION_ATTEMPTS: u32 = 16;
/// How long one id of `dest_stream_id_range` may take to be granted.
const ALLOCATION_ATTACH_TIMEOUT: Duration = Duration::from_secs(2);

fn aeron_stream_id(id: u32) -> Result<i32, BridgeError> {
    i32::try_from(id).map_err(|_| BridgeError::StreamId(id))
}

/// The sender half of one mapping: the source stream read as a consumer.
struct SourceIo {
    consumer: Consumer,
    /// The frame the payload publication's window could not take whole (the core's
    /// pending frame of this mapping), read again from its slot in the next duty cycle.
    pending: Option<crate::frame::FrameKey>,
}

/// The receiver half of one mapping: the destination stream written as a producer.
struct DestIo {
    producer: Producer,
}

/// How long a destination re-attach (a new local epoch after a source epoch change) may
/// keep being refused (the driver has not yet processed the detach) before it is retried
/// later.
const REATTACH_WINDOW: Duration = Duration::from_secs(5);
/// Pause between two refused re-attach attempts.
const REATTACH_PAUSE: Duration = Duration::from_millis(10);
/// Delay before a failed re-attach is tried again (frames are dropped meanwhile).
const REATTACH_RETRY_NS: u64 = 1_000_000_000;

/// The bridge agent: [`BridgeCore`] on its Aeron streams, a [`Consumer`] per source stream
/// and a driver-attached [`Producer`] per destination stream.
pub struct Bridge {
    core: BridgeCore,
    side: Side,
    sources: Vec<SourceIo>,
    dests: Vec<Option<DestIo>>,
    /// Sender: the local driver's announce stream (source announces to forward).
    announce_sub: Option<Subscription>,
    payload_pub: Option<Publication>,
    control_pub: Option<Publication>,
    payload_sub: Option<Subscription>,
    control_sub: Option<Subscription>,
    /// Sender: the local metadata stream; the bridge metadata channel (§7.1).
    metadata_src: Option<(Subscription, Publication)>,
    /// Receiver: the bridge metadata channel; the local metadata stream.
    metadata_dst: Option<(Subscription, Publication)>,
    /// Sender: the source control streams (progress / QoS forwarding, §9), one per id.
    control_src: Vec<Subscription>,
    /// Receiver: per mapping, its local destination control stream (if forwarding).
    control_dst: Vec<Option<Publication>>,
    header: [u8; tensorpool_shm::HEADER_SLOT_BYTES],
    /// Receiver: what a destination re-attach needs (a new local epoch, §8).
    ctx: Context,
    local: LocalDriver,
    /// Receiver, per mapping: when a failed destination re-attach is tried again.
    reattach_at: Vec<Option<u64>>,
}

impl std::fmt::Debug for Bridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bridge")
            .field("side", &self.side)
            .field("counters", &self.core.counters())
            .finish_non_exhaustive()
    }
}

impl Bridge {
    /// Builds the bridge: on the sender side a consumer per source stream (attached through
    /// `local`'s driver) and the payload and control publications; on the receiver side a
    /// driver-attached producer per destination stream (`dest_stream_id`, or the first id
    /// of `dest_stream_id_range` the driver grants) and the payload and control
    /// subscriptions.
    pub fn new(
        cfg: &BridgeConfig,
        side: Side,
        ctx: &Context,
        local: &LocalDriver,
    ) -> Result<Self, BridgeError> {
        let aeron = ctx.client();
        let mut core = BridgeCore::new(cfg);
        let mut sources = Vec::new();
        let mut dests = Vec::new();
        let (mut announce_sub, mut payload_pub, mut control_pub) = (None, None, None);
        let (mut payload_sub, mut control_sub) = (None, None);
        let (mut metadata_src, mut metadata_dst) = (None, None);
        let (mut control_src, mut control_dst) = (Vec::new(), Vec::new());
        let forward_control = cfg.forward_progress || cfg.forward_qos;
        let forward_metadata = cfg.metadata_enabled();
        let local_metadata = (
            crate::streams::DEFAULT_CHANNEL,
            aeron_stream_id(cfg.source_metadata_stream_id)?,
        );
        let bridge_metadata = (
            cfg.metadata_channel.as_str(),
            aeron_stream_id(cfg.metadata_stream_id)?,
        );
        if side.sends() {
            for m in &cfg.mappings {
                let mut b = ctx
                    .consumer(m.source_stream_id)
                    .driver(local.endpoints.clone());
                for d in &local.allowed_base_dirs {
                    b = b.allowed_base_dir(d.clone());
                }
                let consumer = b.build().map_err(|e| BridgeError::Source {
                    stream: m.source_stream_id,
                    reason: e.to_string(),
                })?;
                sources.push(SourceIo {
                    consumer,
                    pending: None,
                });
            }
            let a = &local.endpoints.announce;
            announce_sub =
                Some(aeron.add_subscription(&a.channel, a.stream_id, REGISTER_TIMEOUT)?);
            payload_pub = Some(aeron.add_publication(
                &cfg.payload_channel,
                aeron_stream_id(cfg.payload_stream_id)?,
                REGISTER_TIMEOUT,
            )?);
            control_pub = Some(aeron.add_publication(
                &cfg.control_channel,
                aeron_stream_id(cfg.control_stream_id)?,
                REGISTER_TIMEOUT,
            )?);
            if forward_control {
                let mut ids: Vec<u32> = Vec::new();
                for m in &cfg.mappings {
                    if m.source_control_stream_id != 0 && !ids.contains(&m.source_control_stream_id)
                    {
                        ids.push(m.source_control_stream_id);
                        control_src.push(aeron.add_subscription(
                            crate::streams::DEFAULT_CHANNEL,
                            aeron_stream_id(m.source_control_stream_id)?,
                            REGISTER_TIMEOUT,
                        )?);
                    }
                }
            }
            if forward_metadata {
                metadata_src = Some((
                    aeron.add_subscription(local_metadata.0, local_metadata.1, REGISTER_TIMEOUT)?,
                    aeron.add_publication(
                        bridge_metadata.0,
                        bridge_metadata.1,
                        REGISTER_TIMEOUT,
                    )?,
                ));
            }
        }
        if side.receives() {
            for (i, m) in cfg.mappings.iter().enumerate() {
                let producer = attach_destination(cfg, m, ctx, local)?;
                let dest = producer.config().stream_id;
                core.set_dest_stream_id(i, dest);
                tracing::info!(
                    source = m.source_stream_id,
                    dest,
                    epoch = producer.epoch().unwrap_or(0),
                    "bridge destination attached"
                );
                dests.push(Some(DestIo { producer }));
            }
            payload_sub = Some(aeron.add_subscription(
                &cfg.payload_channel,
                aeron_stream_id(cfg.payload_stream_id)?,
                REGISTER_TIMEOUT,
            )?);
            control_sub = Some(aeron.add_subscription(
                &cfg.control_channel,
                aeron_stream_id(cfg.control_stream_id)?,
                REGISTER_TIMEOUT,
            )?);
            for m in &cfg.mappings {
                control_dst.push(if forward_control && m.dest_control_stream_id != 0 {
                    Some(aeron.add_publication(
                        crate::streams::DEFAULT_CHANNEL,
                        aeron_stream_id(m.dest_control_stream_id)?,
                        REGISTER_TIMEOUT,
                    )?)
                } else {
                    None
                });
            }
            if forward_metadata {
                metadata_dst = Some((
                    aeron.add_subscription(
                        bridge_metadata.0,
                        bridge_metadata.1,
                        REGISTER_TIMEOUT,
                    )?,
                    aeron.add_publication(local_metadata.0, local_metadata.1, REGISTER_TIMEOUT)?,
                ));
            }
        }
        core.attach_aeron_counters(
            aeron,
            format!("bridge={} side={side:?}", cfg.instance_id),
            REGISTER_TIMEOUT,
        )?;
        tracing::info!(
            instance = %cfg.instance_id,
            ?side,
            mappings = cfg.mappings.len(),
            chunk_bytes = cfg.effective_chunk_bytes(),
            "bridge running"
        );
        Ok(Self {
            core,
            side,
            sources,
            dests,
            announce_sub,
            payload_pub,
            control_pub,
            payload_sub,
            control_sub,
            metadata_src,
            metadata_dst,
            control_src,
            control_dst,
            header: [0; tensorpool_shm::HEADER_SLOT_BYTES],
            reattach_at: vec![None; cfg.mappings.len()],
            ctx: ctx.clone(),
            local: local.clone(),
        })
    }

    /// The logic (read-only).
    pub fn core(&self) -> &BridgeCore {
        &self.core
    }

    /// Counters since start.
    pub fn counters(&self) -> Counters {
        self.core.counters()
    }

    /// Destination stream ids, per mapping (0 on the sender side).
    pub fn dest_stream_ids(&self) -> Vec<u32> {
        self.core
            .mappings()
            .iter()
            .map(|m| m.dest_stream_id)
            .collect()
    }

    /// Detaches the destination producers (the driver reclaims their leases).
    pub fn close(&mut self) {
        for d in self.dests.iter_mut().flatten() {
            d.producer.close();
        }
    }
}

/// Moves destination `dest` to a new local epoch: detaches its producer and attaches a new
/// one (the driver bumps the stream's epoch when a producer attaches, Driver Model §6; the
/// new producer's sequence restarts at 0). An attach refused because the driver has not yet
/// processed the detach is retried for [`REATTACH_WINDOW`]. Blocks the duty cycle for that
/// round trip only: it happens at a source epoch change, never in the steady state.
fn reattach_destination(
    ctx: &Context,
    local: &LocalDriver,
    dest: u32,
    old: Option<DestIo>,
) -> Result<Producer, String> {
    if let Some(mut d) = old {
        d.producer.close();
    }
    let deadline = std::time::Instant::now() + REATTACH_WINDOW;
    loop {
        match ctx
            .producer(dest)
            .driver(local.endpoints.clone(), local.shm_base_dir.clone())
            .build()
        {
            Ok(p) => return Ok(p),
            Err(e) if std::time::Instant::now() >= deadline => return Err(e.to_string()),
            Err(e) => {
                tracing::debug!(dest, error = %e, "destination re-attach refused, retrying");
                std::thread::sleep(REATTACH_PAUSE);
            }
        }
    }
}

/// Attaches a producer for the mapping's destination: its `dest_stream_id`, or the ids of
/// `dest_stream_id_range` in order until the driver grants one (Bridge Spec §4).
fn attach_destination(
    cfg: &BridgeConfig,
    m: &Mapping,
    ctx: &Context,
    local: &LocalDriver,
) -> Result<Producer, BridgeError> {
    let build = |id: u32, endpoints: DriverEndpoints| {
        ctx.producer(id)
            .driver(endpoints, local.shm_base_dir.clone())
            .build()
    };
    if m.dest_stream_id != 0 {
        return build(m.dest_stream_id, local.endpoints.clone()).map_err(|e| {
            BridgeError::Destination {
                stream: m.dest_stream_id,
                reason: e.to_string(),
            }
        });
    }
    // each id of the range gets a short attach: a refusal (another producer) moves on
    let mut endpoints = local.endpoints.clone();
    endpoints.attach_timeout = endpoints.attach_timeout.min(ALLOCATION_ATTACH_TIMEOUT);
    let Some(range) = cfg.dest_stream_id_range else {
        return Err(BridgeError::Destination {
            stream: 0,
            reason: "dest_stream_id = 0 without bridge.dest_stream_id_range".into(),
        });
    };
    let mut last = String::new();
    let taken: Vec<u32> = cfg.mappings.iter().map(|o| o.dest_stream_id).collect();
    let mut tried = 0;
    for id in range.start..=range.end {
        if taken.contains(&id) {
            continue;
        }
        match build(id, endpoints.clone()) {
            Ok(p) => return Ok(p),
            Err(e) => last = e.to_string(),
        }
        tried += 1;
        if tried == ALLOCATION_ATTEMPTS {
            break;
        }
    }
    Err(BridgeError::Destination {
        stream: range.start,
        reason: format!("no id of {range} granted ({tried} tried; last: {last})"),
    })
}

impl Agent for Bridge {
    fn do_work(&mut self, now_ns: u64) -> AgentResult {
        self.duty_cycle(now_ns)
    }

    fn role_name(&self) -> &str {
        "bridge"
    }
}
