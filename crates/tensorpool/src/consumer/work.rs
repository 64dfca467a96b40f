//! The consumer's duty cycle ([`Io::cycle`]), the agent side of [`ConsumerCore`]: poll the
//! announce stream (or run the driver client), the control streams (config, progress), the
//! descriptor stream (frames to the handler) and the metadata stream into the core's entry
//! points, then the core's timers (hello, QoS, liveness) into the publications. Also what
//! only the Aeron side can do: switching subscriptions to a per-consumer assignment in the
//! background, subscribing the payload fallback's chunk stream while a fallback is served
//! (its chunks go to [`ConsumerCore::on_fallback_chunk`]), and waiting for allowed base dirs
//! that do not exist yet.

use std::time::Duration;

use tensorpool_aeron::{AeronClient, PendingSubscription, PollError, Publication, Subscription};
use tensorpool_agent::DeadlineTimer;

use super::FrameHandler;
use super::core::{ConsumerCore, Sinks};
use crate::client::{AeronTransport, ClientEvent, DriverClient};
use crate::control::{tid, wire_template};

const CONTROL_LIMIT: usize = 16;
/// Fallback chunks read per duty cycle (a frame is one or more chunks).
const FALLBACK_LIMIT: usize = 256;
/// How often a consumer waiting for its base dirs looks for them (one `lstat` each).
pub(crate) const DIRS_POLL_NS: u64 = 100_000_000;

/// The consumer's Aeron side, apart from [`ConsumerCore`] so that poll callbacks can borrow it.
#[derive(Debug)]
pub(crate) struct Io {
    pub client: AeronClient,
    pub timeout: Duration,
    /// The announce stream (standalone producers); `None` in driver mode, where the driver
    /// client follows the driver's announces.
    pub announce: Option<Subscription>,
    /// Driver mode: the lease, and the events of one client cycle (capacity kept).
    pub driver: Option<(DriverClient<AeronTransport>, Vec<ClientEvent>)>,
    pub descriptor: Subscription,
    /// The descriptor stream being switched to (per-consumer, or back to the shared one),
    /// registered in the background; `descriptor` stays in use until it is ready.
    pub next_descriptor: Option<(PendingSubscription, bool)>,
    pub control: Subscription,
    pub progress: Option<Subscription>,
    /// The per-consumer control stream being registered.
    pub next_progress: Option<PendingSubscription>,
    pub metadata: Option<Subscription>,
    /// The served payload fallback's chunk stream (`fallback.rs`), while in FALLBACK.
    pub fallback: Option<Subscription>,
    /// The fallback stream being registered.
    pub next_fallback: Option<PendingSubscription>,
    pub control_pub: Publication,
    pub qos_pub: Publication,
    /// Configured base dirs that did not exist at start; until they all do (and pass
    /// [`tensorpool_shm::AllowedBaseDirs::check_appeared`]) nothing is mapped: standalone,
    /// announces are read and dropped; in driver mode the driver client does not run (no
    /// attach is sent, so no lease is taken that could not be mapped).
    pub waiting_dirs: Option<Vec<std::path::PathBuf>>,
    /// A base dir that appeared was refused: in driver mode the driver client never runs
    /// (attaching would only take leases to give back).
    pub dirs_refused: bool,
    pub dirs_timer: DeadlineTimer,
}

impl Io {
    /// One duty cycle; returns the work done (messages read, frames delivered, messages sent).
    pub fn cycle<H: FrameHandler + ?Sized>(
        &mut self,
        core: &mut ConsumerCore,
        now_ns: u64,
        handler: &mut H,
        limit: usize,
    ) -> Result<usize, PollError> {
        let mut work = 0;
        if self.waiting_dirs.is_some() && self.dirs_timer.poll(now_ns) {
            self.look_for_dirs(core);
        }
        let waiting = self.waiting_dirs.is_some() || self.dirs_refused;
        if let Some(a) = self.announce.as_mut() {
            let join = u64::try_from(a.last_image_available_ns()).unwrap_or(0);
            work += a.poll(
                |m, _| {
                    if !waiting {
                        core.on_announce(m, now_ns, join)
                    }
                },
                CONTROL_LIMIT,
            )?;
        }
        if let Some((client, events)) = self.driver.as_mut().filter(|_| !waiting) {
            work += client.do_work(now_ns, &mut |e| events.push(e));
            for e in events.drain(..) {
                core.on_client_event(e, now_ns);
            }
        }
        // Standalone: announces on the control stream too (Driver Model §17's default announce
        // stream is the control stream), judged against that subscription's join time.
        let announces_here = self.announce.is_some()
            && !waiting
            && core.cfg.announce_on_control
            && core.cfg.streams.announce != core.cfg.streams.control;
        let join = u64::try_from(self.control.last_image_available_ns()).unwrap_or(0);
        work += self.control.poll(
            |m, _| match wire_template(m) {
                Some(tid::ANNOUNCE) if announces_here => core.on_announce(m, now_ns, join),
                _ => core.on_control(m, handler),
            },
            CONTROL_LIMIT,
        )?;
        if let Some(p) = self.progress.as_mut() {
            // A per-consumer control stream carries FrameProgress only (Wire Spec §5).
            work += p.poll(
                |m, _| {
                    if wire_template(m) == Some(tid::PROGRESS) {
                        core.on_control(m, handler);
                    }
                },
                CONTROL_LIMIT,
            )?;
        }
        if core.assignment_changed {
            core.assignment_changed = false;
            self.apply_assignment(core);
        }
        if core.fallback_changed {
            core.fallback_changed = false;
            self.apply_fallback(core);
        }
        work += self.poll_switches(core);
        if let Some(f) = self.fallback.as_mut() {
            work += f.poll(
                |m, _| {
                    core.on_fallback_chunk(m, now_ns, handler);
                },
                FALLBACK_LIMIT,
            )?;
        }
        work += self.descriptor.poll(
            |m, _| {
                core.on_descriptor(m, now_ns, handler);
            },
            limit,
        )?;
        if let Some(md) = self.metadata.as_mut() {
            work += md.poll(|m, _| core.on_metadata(m), CONTROL_LIMIT)?;
        }
        work += core.poll_timers(
            now_ns,
            &mut Sinks {
                control: &mut self.control_pub,
                qos: &mut self.qos_pub,
            },
        );
        Ok(work)
    }

    /// Waiting for base dirs: once every one exists, each that appeared is checked (a
    /// directory, not a symlink, ours or root's) and the set is validated as at start, then
    /// given to the driver client too (driver mode), before it runs in this same cycle; a
    /// refused one is reported in `last_error` and nothing is ever mapped (driver mode: the
    /// driver client never attaches).
    fn look_for_dirs(&mut self, core: &mut ConsumerCore) {
        let Some(dirs) = self.waiting_dirs.as_ref() else {
            return;
        };
        if dirs
            .iter()
            .any(|d| tensorpool_shm::AllowedBaseDirs::is_missing(d))
        {
            return;
        }
        let checked = dirs
            .iter()
            .try_for_each(|d| tensorpool_shm::AllowedBaseDirs::check_appeared(d))
            .and_then(|()| tensorpool_shm::AllowedBaseDirs::new(&core.cfg.allowed_base_dirs));
        self.waiting_dirs = None;
        match checked {
            Ok(allowed) => {
                tracing::info!(dirs = ?allowed.dirs(), "consumer: allowed base dirs present");
                if let Some((client, _)) = self.driver.as_mut() {
                    client.set_allowed_base_dirs(Some(allowed.clone()));
                }
                core.allowed = allowed;
            }
            Err(e) => {
                let text = e.to_string();
                tracing::warn!(error = %text, "consumer: allowed base dir refused");
                core.last_error = Some(text);
                self.dirs_refused = true;
            }
        }
    }

    /// Starts switching subscriptions to match the last `ConsumerConfig` (§5, §10.1.3): the
    /// per-consumer descriptor stream *instead of* the shared one, a per-consumer control
    /// stream for progress next to the shared control stream. The registrations complete in
    /// the background ([`Io::poll_switches`]); the duty cycle never waits for them.
    fn apply_assignment(&mut self, core: &mut ConsumerCore) {
        let shared = &core.cfg.streams.descriptor;
        let target = match &core.assignment.descriptor {
            Some((ch, id)) => Some((ch.as_str(), *id, true)),
            None if core.per_consumer_descriptor => {
                Some((shared.channel.as_str(), shared.stream_id, false))
            }
            None => None,
        };
        // A switch in flight to an older assignment is cancelled (dropped).
        self.next_descriptor = None;
        if let Some((ch, id, per_consumer)) = target {
            let ch = &crate::streams::untethered_subscription_channel(ch);
            match self.client.start_add_subscription(ch, id, self.timeout) {
                Ok(p) => self.next_descriptor = Some((p, per_consumer)),
                Err(e) => tracing::warn!(channel = %ch, id, error = %e, "descriptor stream switch"),
            }
        }
        self.progress = None;
        self.next_progress = None;
        if let Some((ch, id)) = &core.assignment.control {
            match self.client.start_add_subscription(ch, *id, self.timeout) {
                Ok(p) => self.next_progress = Some(p),
                Err(e) => {
                    tracing::warn!(channel = %ch, id, error = %e, "per-consumer control stream")
                }
            }
        }
    }

    /// Follows the fallback the core serves: its chunk stream is subscribed in the background
    /// (the duty cycle never waits), the previous one dropped; leaving FALLBACK drops it.
    /// A channel Aeron refuses is reported in `last_rejection`.
    fn apply_fallback(&mut self, core: &mut ConsumerCore) {
        self.fallback = None;
        self.next_fallback = None;
        let Some((ch, id)) = core.fallback_source() else {
            return;
        };
        match self.client.start_add_subscription(ch, id, self.timeout) {
            Ok(p) => self.next_fallback = Some(p),
            Err(e) => {
                let reason = format!("payload fallback channel {ch} stream {id}: {e}");
                core.reject(0, "cannot serve the payload fallback", reason);
            }
        }
    }

    /// Polls the subscriptions being registered (never blocks): a ready descriptor stream
    /// replaces the current one, a ready control stream starts carrying progress; a refused
    /// or timed-out one is logged and the consumer stays where it is.
    fn poll_switches(&mut self, core: &mut ConsumerCore) -> usize {
        let mut work = 0;
        if let Some((pending, per_consumer)) = self.next_descriptor.as_mut() {
            let per_consumer = *per_consumer;
            match pending.poll() {
                Ok(None) => {}
                Ok(Some(sub)) => {
                    self.descriptor = sub;
                    core.per_consumer_descriptor = per_consumer;
                    self.next_descriptor = None;
                    work += 1;
                }
                Err(e) => {
                    tracing::warn!(error = %e, per_consumer, "descriptor stream switch");
                    self.next_descriptor = None;
                }
            }
        }
        if let Some(pending) = self.next_fallback.as_mut() {
            match pending.poll() {
                Ok(None) => {}
                Ok(Some(sub)) => {
                    self.fallback = Some(sub);
                    self.next_fallback = None;
                    work += 1;
                }
                Err(e) => {
                    let reason = format!("payload fallback subscription: {e}");
                    core.reject(0, "cannot serve the payload fallback", reason);
                    self.next_fallback = None;
                }
            }
        }
        if let Some(pending) = self.next_progress.as_mut() {
            match pending.poll() {
                Ok(None) => {}
                Ok(Some(sub)) => {
                    self.progress = Some(sub);
                    self.next_progress = None;
                    work += 1;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "per-consumer control stream");
                    self.next_progress = None;
                }
            }
        }
        work
    }
}
