//! The consumer role (Wire Spec §10, §11, §15.12, §15.21; Driver Model §2.3): follows
//! announces, maps the producer's files read-only, and hands the application a borrowed
//! [`Frame`] for every descriptor that passes every drop rule and the seqlock. A slow consumer
//! drops frames; it never slows the producer.
//!
//! ```no_run
//! use tensorpool::prelude::*;
//!
//! let ctx = Context::embedded()?;
//! let mut consumer = ctx.consumer(10_000).build()?;
//! let mut sum = 0u64;
//! consumer.poll(|frame: &Frame<'_>| {
//!     let s: u64 = frame.bytes().iter().map(|&b| u64::from(b)).sum();
//!     if frame.recheck().is_ok() {   // the bytes summed were the committed frame
//!         sum += s;
//!     }
//! }, 16)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! See [`crate::frame`] for the view contract. The folder has the shape of every role
//! (docs/ARCHITECTURE.md, "How to add a role"):
//!
//! | file | what |
//! |---|---|
//! | `mod.rs` | [`Consumer`] (the agent: its Aeron streams around a [`ConsumerCore`]), [`ConsumerAgent`], [`FrameHandler`], [`BuildError`] |
//! | `config.rs` | [`ConsumerConfig`] (keys, defaults, environment, validation, `from_loader`), [`ConsumerBuilder`], `Context::consumer` |
//! | `core.rs` | [`ConsumerCore`]: the logic without Aeron: `on_announce`, `on_descriptor`, `on_control`, `on_metadata` (bytes and the time in), `poll_timers` (hello, QoS, liveness into [`Sinks`]) |
//! | `state.rs` | the mapping state machine ([`ConsumerState`], [`Fallback`], [`Rejection`]), sequence tracking, remap backoffs |
//! | `handlers.rs` | one `on_<message>` per decoded message; `on_frame_descriptor` is the frame path in one place: drop rules -> slot read -> handler -> recheck |
//! | `proxy.rs` | `send_hello`, `send_qos`, through `control::send` |
//! | `work.rs` | the duty cycle: subscriptions into the core, the core's timers into the publications, stream switches, the fallback subscription, waiting for base dirs |
//! | `counters.rs` | the `counters!` tables (counters, drops per cause) |
//! | `fallback.rs` | the payload fallback (W §10.1.3, §15.12): URI resolution, `BridgeFrameChunk`s in (`on_fallback_chunk`), frames out to the same handler |
//! | `mapping.rs`, `meta.rs`, `progress.rs` | concerns: announce -> mapped regions; metadata and blobs; progress tracking |
//! | `events.rs` | signals: [`ConsumerEvent`]s derived after every poll into a fixed queue ([`Consumer::poll_event`]), [`Polled`] (frames and work of a poll) |

mod config;
mod core;
pub mod counters;
mod events;
mod fallback;
mod handlers;
mod mapping;
mod meta;
mod progress;
mod proxy;
mod state;
mod work;

pub use config::{BridgeRoute, ConsumerBuilder, ConsumerConfig, Mode, ProgressHints};
pub use core::{ConsumerCore, Sinks};
pub use counters::{ConsumerCounters, DropCause, Drops};
pub use events::{ConsumerEvent, EVENT_CAPACITY, Polled, UnmapReason};
pub use fallback::resolve_fallback;
pub use meta::{BlobDiscard, MetaBlob};
pub use progress::Progress;
pub use state::{ConsumerState, Fallback, Rejection};
pub use tensorpool_aeron::PollError;

use tensorpool_aeron::{AddError, AeronClient, PendingSubscription, Publication, Subscription};
use tensorpool_agent::{Agent, AgentError, AgentResult};
use tensorpool_shm::AllowedBaseDirs;

use crate::context::Context;
use crate::frame::{Frame, FrameKey};
use crate::meta::MetaAttribute;
use counters::{ConsumerCells, DropCells};
use work::Io;

/// Receives frames (and, for consumers that asked for it, progress reports). Any
/// `FnMut(&Frame)` closure is a handler.
pub trait FrameHandler {
    /// A committed frame, valid until this returns (see [`crate::frame`]).
    fn on_frame(&mut self, frame: &Frame<'_>);

    /// A progress report on a frame still being written (never a committed frame).
    fn on_progress(&mut self, _progress: &Progress<'_>) {}
}

impl<F: FnMut(&Frame<'_>)> FrameHandler for F {
    fn on_frame(&mut self, frame: &Frame<'_>) {
        self(frame)
    }
}

/// Why a consumer could not be built. Names what was wrong.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A configuration field is invalid.
    #[error("consumer config `{field}`: expected {expected}")]
    InvalidConfig {
        /// The field.
        field: &'static str,
        /// What it must be.
        expected: &'static str,
    },
    /// An allowed base directory is unusable.
    #[error("allowed base dirs: {0}")]
    Path(#[from] tensorpool_shm::PathError),
    /// An Aeron publication or subscription could not be added.
    #[error("Aeron {what}: {source}")]
    Aeron {
        /// Which stream.
        what: &'static str,
        /// The Aeron error.
        source: AddError,
    },
}

/// A consumer of one data source. Single-threaded: poll it from the thread that owns it,
/// or run it as an agent with [`Consumer::into_agent`].
#[derive(Debug)]
pub struct Consumer {
    core: ConsumerCore,
    io: Io,
    /// State changes since the last cycle, for `poll_event` (`events.rs`).
    events: events::Events,
    _ctx: Context,
}

fn aeron(what: &'static str) -> impl FnOnce(AddError) -> BuildError {
    move |source| BuildError::Aeron { what, source }
}

/// Requests the consumer's Aeron counters (all at once; see [`finish_counters`]).
fn start_counters<'c>(
    client: &'c AeronClient,
    cfg: &ConsumerConfig,
) -> Result<crate::counters::Registrar<'c>, BuildError> {
    let scope = format!("stream={} client={}", cfg.stream_id, cfg.consumer_id);
    let mut reg = crate::counters::Registrar::new(
        client,
        crate::counters::Role::Consumer,
        cfg.stream_id,
        cfg.consumer_id,
        scope,
        cfg.aeron_timeout,
    );
    ConsumerCells::register(&mut reg).map_err(aeron("counters"))?;
    DropCells::register(&mut reg).map_err(aeron("counters"))?;
    Ok(reg)
}

/// The consumer's cells with the counters [`start_counters`] requested (bounded by
/// `aeron_timeout`).
fn finish_counters(
    reg: crate::counters::Registrar<'_>,
) -> Result<(ConsumerCells, DropCells), BuildError> {
    let counters = reg.finish().map_err(aeron("counters"))?;
    let mut it = counters.into_iter();
    let (mut cells, mut drops) = (ConsumerCells::default(), DropCells::default());
    cells.attach(&mut it);
    drops.attach(&mut it);
    Ok((cells, drops))
}

/// The consumer's subscriptions, publications and counters (the driver client's come apart).
struct AeronSide {
    announce: Option<Subscription>,
    descriptor: Subscription,
    control: Subscription,
    metadata: Option<Subscription>,
    control_pub: Publication,
    qos_pub: Publication,
    counters: ConsumerCells,
    drops: DropCells,
}

impl AeronSide {
    /// Every registration is requested before any is waited for: a build takes about one
    /// round trip to the media driver, not one per stream (each wait bounded by
    /// `aeron_timeout`).
    fn register(client: &AeronClient, cfg: &ConsumerConfig) -> Result<Self, BuildError> {
        let (t, s) = (cfg.aeron_timeout, &cfg.streams);
        let sub = |e: &crate::streams::Endpoint, what| {
            client
                .start_add_subscription(&e.channel, e.stream_id, t)
                .map_err(aeron(what))
        };
        let publication = |e: &crate::streams::Endpoint, what| {
            client
                .start_add_exclusive_publication(&e.channel, e.stream_id, t)
                .map_err(aeron(what))
        };
        // standalone producers announce on the announce stream; the driver client follows
        // the driver's
        let announce = match &cfg.driver {
            None => Some(sub(&s.announce, "announce subscription")?),
            Some(_) => None,
        };
        let descriptor = client
            .start_add_subscription(
                &crate::streams::untethered_subscription_channel(&s.descriptor.channel),
                s.descriptor.stream_id,
                t,
            )
            .map_err(aeron("descriptor subscription"))?;
        let control = sub(&s.control, "control subscription")?;
        let metadata = match cfg.metadata {
            true => Some(sub(&s.metadata, "metadata subscription")?),
            false => None,
        };
        let control_pub = publication(&s.control, "control publication")?;
        let qos_pub = publication(&s.qos, "QoS publication")?;
        let counters = match cfg.aeron_counters {
            true => Some(start_counters(client, cfg)?),
            false => None,
        };
        let wait = |p: PendingSubscription, what| p.wait().map_err(aeron(what));
        let (counters, drops) = match counters {
            Some(reg) => finish_counters(reg)?,
            None => Default::default(),
        };
        Ok(Self {
            announce: announce
                .map(|p| wait(p, "announce subscription"))
                .transpose()?,
            descriptor: wait(descriptor, "descriptor subscription")?,
            control: wait(control, "control subscription")?,
            metadata: metadata
                .map(|p| wait(p, "metadata subscription"))
                .transpose()?,
            control_pub: control_pub.wait().map_err(aeron("control publication"))?,
            qos_pub: qos_pub.wait().map_err(aeron("QoS publication"))?,
            counters,
            drops,
        })
    }
}

impl Consumer {
    fn new(ctx: Context, cfg: ConsumerConfig) -> Result<Self, BuildError> {
        // A consumer may start before its base dirs exist: it waits for them (standalone:
        // drops announces meanwhile; driver mode: does not attach meanwhile).
        let missing: Vec<_> = cfg
            .allowed_base_dirs
            .iter()
            .filter(|d| d.is_absolute() && AllowedBaseDirs::is_missing(d))
            .cloned()
            .collect();
        let (allowed, waiting_dirs) = if !missing.is_empty() {
            tracing::info!(
                dirs = ?missing,
                "consumer: allowed base dir does not exist yet; waiting for it"
            );
            (AllowedBaseDirs::none(), Some(missing))
        } else {
            (AllowedBaseDirs::new(&cfg.allowed_base_dirs)?, None)
        };
        let client = ctx.shared().client.clone();
        let t = cfg.aeron_timeout;
        let side = AeronSide::register(&client, &cfg)?;
        let driver = match &cfg.driver {
            None => None,
            Some(endpoints) => {
                let role = tensorpool_codec::driver::Role::Consumer;
                let ccfg = endpoints.client_config(cfg.stream_id, role, Some(allowed.clone()));
                let transport = crate::client::AeronTransport::new(&client, &ccfg, t)
                    .map_err(aeron("driver control streams"))?;
                let dc = crate::client::DriverClient::new(ccfg, transport);
                Some((dc, Vec::with_capacity(8)))
            }
        };
        let AeronSide {
            announce,
            descriptor,
            control,
            metadata,
            control_pub,
            qos_pub,
            counters,
            drops,
        } = side;
        let core = ConsumerCore::with_parts(
            cfg,
            allowed,
            counters,
            drops,
            tensorpool_agent::monotonic_ns(),
        );
        let io = Io {
            client,
            timeout: t,
            announce,
            driver,
            descriptor,
            next_descriptor: None,
            control,
            progress: None,
            next_progress: None,
            metadata,
            fallback: None,
            next_fallback: None,
            control_pub,
            qos_pub,
            waiting_dirs,
            dirs_refused: false,
            dirs_timer: tensorpool_agent::DeadlineTimer::periodic_immediate(work::DIRS_POLL_NS),
        };
        Ok(Self {
            core,
            io,
            events: events::Events::default(),
            _ctx: ctx,
        })
    }

    /// One duty cycle with a closure handler: announces, control, up to `limit` descriptors,
    /// metadata and timers. Returns the work done (0: idle).
    pub fn poll<F: FnMut(&Frame<'_>)>(
        &mut self,
        mut f: F,
        limit: usize,
    ) -> Result<usize, PollError> {
        self.poll_at(tensorpool_agent::monotonic_ns(), &mut f, limit)
    }

    /// One duty cycle with a [`FrameHandler`] (frames and progress).
    pub fn poll_handler<H: FrameHandler + ?Sized>(
        &mut self,
        handler: &mut H,
        limit: usize,
    ) -> Result<usize, PollError> {
        self.poll_at(tensorpool_agent::monotonic_ns(), handler, limit)
    }

    /// One duty cycle at `now_ns` (`CLOCK_MONOTONIC`). Returns the work done.
    pub fn poll_at<H: FrameHandler + ?Sized>(
        &mut self,
        now_ns: u64,
        handler: &mut H,
        limit: usize,
    ) -> Result<usize, PollError> {
        self.poll_frames_at(now_ns, handler, limit).map(|p| p.work)
    }

    /// One duty cycle that says how many frames it delivered ([`Polled::frames`]) next to
    /// the work done ([`Polled::work`], what `poll` returns). Records state changes for
    /// [`Self::poll_event`]. [`PollError::MediaDriverLost`] once the Aeron client has lost
    /// its media driver.
    pub fn poll_frames<H: FrameHandler + ?Sized>(
        &mut self,
        handler: &mut H,
        limit: usize,
    ) -> Result<Polled, PollError> {
        self.poll_frames_at(tensorpool_agent::monotonic_ns(), handler, limit)
    }

    /// [`Self::poll_frames`] at `now_ns` (`CLOCK_MONOTONIC`).
    pub fn poll_frames_at<H: FrameHandler + ?Sized>(
        &mut self,
        now_ns: u64,
        handler: &mut H,
        limit: usize,
    ) -> Result<Polled, PollError> {
        if self.io.client.is_closed() {
            self.events.driver_lost();
            return Err(PollError::MediaDriverLost);
        }
        let mut counting = events::Counting {
            inner: handler,
            frames: 0,
        };
        let result = self.io.cycle(&mut self.core, now_ns, &mut counting, limit);
        self.events.observe(&self.core);
        let work = result?;
        Ok(Polled {
            frames: counting.frames,
            work,
        })
    }

    /// Polls until at least one frame is delivered or `timeout` has passed; returns the
    /// frames delivered (0: timed out). Between idle cycles it backs off from spinning to
    /// yielding to sleeps of at most 1 ms (never past the deadline). `timeout` zero: one
    /// cycle.
    pub fn poll_wait<H: FrameHandler + ?Sized>(
        &mut self,
        handler: &mut H,
        limit: usize,
        timeout: std::time::Duration,
    ) -> Result<usize, PollError> {
        let deadline = std::time::Instant::now() + timeout;
        let mut idle_rounds = 0u32;
        loop {
            let p = self.poll_frames(handler, limit)?;
            if p.frames > 0 {
                return Ok(p.frames);
            }
            let now = std::time::Instant::now();
            if now >= deadline {
                return Ok(0);
            }
            if p.work > 0 {
                idle_rounds = 0;
                continue;
            }
            idle_rounds = idle_rounds.saturating_add(1);
            match idle_rounds {
                0..=10 => std::hint::spin_loop(),
                11..=20 => std::thread::yield_now(),
                n => {
                    let park = std::time::Duration::from_micros(1u64 << (n - 20).min(10));
                    std::thread::sleep(park.min(deadline - now));
                }
            }
        }
    }

    /// Reads a frame delivered earlier ([`Frame::key`]) again from its slot, under the
    /// seqlock, and hands it to `f`; `None` if the consumer no longer maps the key's epoch or
    /// the slot no longer holds that frame (the producer overwrote it). As in a handler, what
    /// `f` reads from [`Frame::bytes`] is the frame only if [`Frame::recheck`] is `Ok`
    /// afterwards. Never waits, allocates nothing, counts nothing (the frame was delivered
    /// once). For a reader that keeps a frame for later, e.g. the bridge sender holding a
    /// frame until its publication's window takes it.
    pub fn reread<R>(&self, key: &FrameKey, f: impl FnOnce(&Frame<'_>) -> R) -> Option<R> {
        let frame = self.core.frame_at(key.seq(), Some(key.info())).ok()?;
        Some(f(&frame))
    }

    /// The oldest state change not yet read ([`ConsumerEvent`]; recorded by every poll).
    pub fn poll_event(&mut self) -> Option<ConsumerEvent> {
        self.events.pop()
    }

    /// Hands every state change not yet read to `f`, oldest first; returns how many.
    pub fn drain_events(&mut self, mut f: impl FnMut(ConsumerEvent)) -> usize {
        let mut n = 0;
        while let Some(e) = self.events.pop() {
            f(e);
            n += 1;
        }
        n
    }

    /// Events dropped because [`EVENT_CAPACITY`] were waiting unread.
    pub fn events_lost(&self) -> u64 {
        self.events.lost()
    }

    /// Whether the Aeron client has lost its media driver (no heartbeat within its driver
    /// timeout: [`tensorpool_aeron::ClientConfig::driver_timeout`], Aeron's default 10 s).
    pub fn media_driver_lost(&self) -> bool {
        self.io.client.is_closed()
    }

    /// The consumer as an agent delivering to `handler`, `limit` frames per cycle.
    pub fn into_agent<H: FrameHandler>(self, handler: H, limit: usize) -> ConsumerAgent<H> {
        ConsumerAgent {
            consumer: self,
            handler,
            limit,
        }
    }

    /// Mapping state (Wire Spec §15.12).
    pub fn state(&self) -> ConsumerState {
        self.core.state()
    }

    /// The fallback, when in FALLBACK.
    pub fn fallback(&self) -> Option<&Fallback> {
        self.core.fallback.as_ref()
    }

    /// The channel and stream id fallback frames are read from, while a fallback is served.
    pub fn fallback_source(&self) -> Option<(&str, i32)> {
        self.core.fallback_source()
    }

    /// The last mapping diagnostic.
    pub fn last_error(&self) -> Option<&str> {
        self.core.last_error.as_deref()
    }

    /// The last announce, region or mapping refused, with its reason and epoch (also logged
    /// through `tracing`, at `warn` once per epoch).
    pub fn last_rejection(&self) -> Option<&Rejection> {
        self.core.last_rejection.as_ref()
    }

    /// Times the mapping was lost (producer stopped or revoked, lease lost, driver gone,
    /// region dead) rather than replaced by a newer epoch; see [`ConsumerCore::outages`].
    pub fn outages(&self) -> u64 {
        self.core.outages()
    }

    /// Counters.
    pub fn counters(&self) -> ConsumerCounters {
        self.core.counters()
    }

    /// Drops per cause and sequence gaps.
    pub fn drops(&self) -> Drops {
        self.core.drops()
    }

    /// The configuration.
    pub fn config(&self) -> &ConsumerConfig {
        &self.core.cfg
    }

    /// Last sequence seen in the current epoch.
    pub fn last_seq(&self) -> Option<u64> {
        self.core.seqs.last
    }

    /// Reads committed frame `seq` of the current mapping again, on demand (a join stage
    /// reads the frames a set needs after their descriptors arrived): the slot is validated
    /// under the seqlock and must hold exactly `seq`, as on the descriptor path; the payload
    /// is trustworthy only after [`Frame::recheck`]. The frame carries no descriptor fields
    /// ([`Frame::publish_timestamp_ns`] and [`Frame::trace_id`] are `None`). No counter
    /// moves and the handler path is untouched. `Err(DropCause::Unmapped)` without a
    /// mapping, `Err(DropCause::Slot(_))` when the slot no longer (or not yet) holds `seq`.
    pub fn read_frame(&self, seq: u64) -> Result<Frame<'_>, DropCause> {
        self.core.frame_at(seq, None)
    }

    /// The epoch of the current mapping (`None` while unmapped).
    pub fn mapped_epoch(&self) -> Option<u64> {
        self.core.mapped.as_ref().map(|m| m.epoch)
    }

    /// Driver mode: the driver client's state (`None` in standalone mode).
    pub fn driver_state(&self) -> Option<crate::client::ClientState> {
        self.io.driver.as_ref().map(|(c, _)| c.state())
    }

    /// Whether descriptors come from a per-consumer stream.
    pub fn on_per_consumer_stream(&self) -> bool {
        self.core.per_consumer_descriptor
    }

    /// The delivery mode in force: the configured one until a `ConsumerConfig` sets another
    /// (W §10.1.3, e.g. a supervisor forcing RATE_LIMITED).
    pub fn effective_mode(&self) -> tensorpool_codec::wire::Mode {
        self.core.effective_mode
    }

    /// The per-consumer descriptor stream assigned by the last `ConsumerConfig` (channel,
    /// stream id), if any.
    pub fn descriptor_assignment(&self) -> Option<(&str, i32)> {
        self.core
            .assignment
            .descriptor
            .as_ref()
            .map(|(ch, id)| (ch.as_str(), *id))
    }

    /// Whether a per-consumer control (progress) stream is subscribed.
    pub fn on_per_consumer_control(&self) -> bool {
        self.io.progress.is_some()
    }

    /// Join time of the announce subscription (monotonic ns; 0 before any image).
    pub fn join_time_ns(&self) -> u64 {
        self.io.announce.as_ref().map_or(0, |a| {
            u64::try_from(a.last_image_available_ns()).unwrap_or(0)
        })
    }

    /// Latest `DataSourceMeta` version and attributes.
    pub fn meta(&self) -> Option<(u32, &[MetaAttribute])> {
        self.core
            .meta
            .version
            .map(|v| (v, self.core.meta.attributes.as_slice()))
    }

    /// Data source name from `DataSourceAnnounce`.
    pub fn source_name(&self) -> Option<&str> {
        self.core.meta.name.as_deref()
    }

    /// The last meta blob reassembled and verified.
    pub fn meta_blob(&self) -> Option<&MetaBlob> {
        self.core.meta.blob.as_ref()
    }

    /// Why the last meta blob was discarded.
    pub fn last_blob_discard(&self) -> Option<BlobDiscard> {
        self.core.meta.last_discard
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        // Driver mode: best-effort detach (Driver Model §4.9), one cycle sends it.
        if let Some((client, _)) = self.io.driver.as_mut() {
            client.close();
            client.do_work(tensorpool_agent::monotonic_ns(), &mut |_| {});
        }
    }
}

/// A [`Consumer`] with its handler, as an [`Agent`].
#[derive(Debug)]
pub struct ConsumerAgent<H> {
    consumer: Consumer,
    handler: H,
    limit: usize,
}

impl<H> ConsumerAgent<H> {
    /// The consumer.
    pub fn consumer(&self) -> &Consumer {
        &self.consumer
    }

    /// The handler.
    pub fn handler(&self) -> &H {
        &self.handler
    }

    /// The handler, mutably.
    pub fn handler_mut(&mut self) -> &mut H {
        &mut self.handler
    }
}

impl<H: FrameHandler> Agent for ConsumerAgent<H> {
    fn do_work(&mut self, now_ns: u64) -> AgentResult {
        self.consumer
            .poll_at(now_ns, &mut self.handler, self.limit)
            .map_err(AgentError::failed)
    }

    fn role_name(&self) -> &str {
        "consumer"
    }
}
