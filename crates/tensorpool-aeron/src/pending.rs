//! Registrations in flight: add a publication, subscription or counter without blocking the caller's
//! duty cycle, then poll until the media driver has answered (or the deadline passed).

use std::sync::Arc;
use std::time::{Duration, Instant};

use rusteron_client::bindings as c;

use crate::client::{ClientInner, rejected};
use crate::counters::Counter;
use crate::publication::{Kind, Publication};
use crate::subscription::{ImageEvents, Subscription};
use crate::{AddError, WaitingFor};

/// The C handle of a registration in flight.
enum Handle {
    Publication(*mut c::aeron_async_add_publication_t),
    Exclusive(*mut c::aeron_async_add_exclusive_publication_t),
    Subscription(*mut c::aeron_async_add_subscription_t, Arc<ImageEvents>),
    Counter(*mut c::aeron_async_add_counter_t),
}

/// State shared by both kinds of pending registration.
struct Pending {
    client: Arc<ClientInner>,
    handle: Option<Handle>,
    started: Instant,
    timeout: Duration,
}

// SAFETY: the async-add handles are owned exclusively by this value and only used through
// `&mut self`; the client they belong to is kept alive by the Arc.
unsafe impl Send for Pending {}

/// What one poll of the C registration said.
enum Polled<T> {
    Done(*mut T),
    NotYet,
    Failed,
}

fn classify<T>(rc: std::os::raw::c_int, resource: *mut T) -> Polled<T> {
    match rc {
        0 => Polled::NotYet,
        rc if rc > 0 && !resource.is_null() => Polled::Done(resource),
        _ => Polled::Failed,
    }
}

impl Pending {
    fn new(client: Arc<ClientInner>, handle: Handle, timeout: Duration) -> Self {
        Self {
            client,
            handle: Some(handle),
            started: Instant::now(),
            timeout,
        }
    }

    fn waiting_for(handle: &Handle) -> (WaitingFor, &'static str) {
        match handle {
            Handle::Publication(_) => (WaitingFor::Publication, "aeron_async_add_publication_poll"),
            Handle::Exclusive(_) => (
                WaitingFor::ExclusivePublication,
                "aeron_async_add_exclusive_publication_poll",
            ),
            Handle::Subscription(..) => (
                WaitingFor::Subscription,
                "aeron_async_add_subscription_poll",
            ),
            Handle::Counter(_) => (WaitingFor::Counter, "aeron_async_add_counter_poll"),
        }
    }

    /// Cancels a registration that has not completed, handing it back to the conductor.
    fn cancel(&mut self) {
        let aeron = self.client.aeron;
        // SAFETY (all arms): the handle has neither completed nor been cancelled (it is taken
        // out of `self.handle` exactly once).
        match self.handle.take() {
            Some(Handle::Publication(p)) => unsafe {
                c::aeron_async_add_publication_cancel(aeron, p);
            },
            Some(Handle::Exclusive(p)) => unsafe {
                c::aeron_async_add_exclusive_publication_cancel(aeron, p);
            },
            Some(Handle::Subscription(p, _)) => unsafe {
                c::aeron_async_add_subscription_cancel(aeron, p);
            },
            Some(Handle::Counter(p)) => unsafe {
                c::aeron_async_add_counter_cancel(aeron, p);
            },
            None => {}
        }
    }

    /// Not yet answered: `Ok(false)`; past the deadline: cancelled and a timeout error.
    fn check_deadline(&mut self) -> Result<(), AddError> {
        let waited = self.started.elapsed();
        if waited < self.timeout {
            return Ok(());
        }
        let waiting_for = self
            .handle
            .as_ref()
            .map_or(WaitingFor::Publication, |h| Self::waiting_for(h).0);
        self.cancel();
        Err(AddError::Timeout {
            waiting_for,
            waited,
        })
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.cancel();
    }
}

/// Error for a pending registration polled again after it finished.
fn finished() -> AddError {
    AddError::Rejected {
        op: "poll of a finished registration",
        code: 0,
        message: "the registration already completed or failed".to_owned(),
    }
}

/// A publication being registered by the media driver; [`PendingPublication::poll`] it from
/// the duty cycle until it yields the [`Publication`]. Dropping it cancels the registration.
pub struct PendingPublication(Pending);

impl std::fmt::Debug for PendingPublication {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingPublication")
            .field("in_flight", &self.0.handle.is_some())
            .finish()
    }
}

impl PendingPublication {
    pub(crate) fn concurrent(
        client: Arc<ClientInner>,
        handle: *mut c::aeron_async_add_publication_t,
        timeout: Duration,
    ) -> Self {
        Self(Pending::new(client, Handle::Publication(handle), timeout))
    }

    pub(crate) fn exclusive(
        client: Arc<ClientInner>,
        handle: *mut c::aeron_async_add_exclusive_publication_t,
        timeout: Duration,
    ) -> Self {
        Self(Pending::new(client, Handle::Exclusive(handle), timeout))
    }

    /// One non-blocking check: `Ok(Some(_))` once registered, `Ok(None)` while the media driver
    /// has not answered, an error if it refused or the deadline passed (then it is cancelled).
    pub fn poll(&mut self) -> Result<Option<Publication>, AddError> {
        let p = &mut self.0;
        let (kind, op) = match p.handle.as_ref() {
            None => return Err(finished()),
            Some(Handle::Publication(h)) => {
                let mut out = std::ptr::null_mut();
                // SAFETY: `h` is live until its poll completes or it is cancelled.
                let rc = unsafe { c::aeron_async_add_publication_poll(&mut out, *h) };
                (
                    classify(rc, out).map(Kind::Concurrent),
                    "aeron_async_add_publication_poll",
                )
            }
            Some(Handle::Exclusive(h)) => {
                let mut out = std::ptr::null_mut();
                // SAFETY: `h` is live until its poll completes or it is cancelled.
                let rc = unsafe { c::aeron_async_add_exclusive_publication_poll(&mut out, *h) };
                (
                    classify(rc, out).map(Kind::Exclusive),
                    "aeron_async_add_exclusive_publication_poll",
                )
            }
            Some(Handle::Subscription(..) | Handle::Counter(_)) => return Err(finished()),
        };
        match kind {
            PolledKind::Done(kind) => {
                // A completed poll frees the async handle: never cancel it.
                p.handle = None;
                Ok(Some(Publication::new(p.client.clone(), kind)))
            }
            PolledKind::Failed => {
                p.handle = None;
                Err(rejected(op))
            }
            PolledKind::NotYet => p.check_deadline().map(|()| None),
        }
    }

    /// Polls until registered, sleeping a little between polls; for callers that may block.
    pub fn wait(mut self) -> Result<Publication, AddError> {
        wait_for(|| self.poll())
    }
}

/// A subscription being registered by the media driver; [`PendingSubscription::poll`] it
/// until it yields the [`Subscription`]. Dropping it cancels the registration.
pub struct PendingSubscription(Pending);

impl std::fmt::Debug for PendingSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingSubscription")
            .field("in_flight", &self.0.handle.is_some())
            .finish()
    }
}

impl PendingSubscription {
    pub(crate) fn new(
        client: Arc<ClientInner>,
        handle: *mut c::aeron_async_add_subscription_t,
        events: Arc<ImageEvents>,
        timeout: Duration,
    ) -> Self {
        Self(Pending::new(
            client,
            Handle::Subscription(handle, events),
            timeout,
        ))
    }

    /// One non-blocking check; see [`PendingPublication::poll`].
    pub fn poll(&mut self) -> Result<Option<Subscription>, AddError> {
        let p = &mut self.0;
        let Some(Handle::Subscription(h, events)) = p.handle.as_ref() else {
            return Err(finished());
        };
        let mut out = std::ptr::null_mut();
        // SAFETY: `h` is live until its poll completes or it is cancelled.
        let rc = unsafe { c::aeron_async_add_subscription_poll(&mut out, *h) };
        match classify(rc, out) {
            Polled::Done(ptr) => {
                let events = events.clone();
                p.handle = None;
                Subscription::new(p.client.clone(), ptr, events).map(Some)
            }
            Polled::Failed => {
                p.handle = None;
                Err(rejected("aeron_async_add_subscription_poll"))
            }
            Polled::NotYet => p.check_deadline().map(|()| None),
        }
    }

    /// Polls until registered, sleeping a little between polls; for callers that may block.
    pub fn wait(mut self) -> Result<Subscription, AddError> {
        wait_for(|| self.poll())
    }
}

/// A counter being allocated by the media driver; [`PendingCounter::poll`] it until it
/// yields the [`Counter`]. Dropping it cancels the allocation.
pub struct PendingCounter(Pending);

impl std::fmt::Debug for PendingCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingCounter")
            .field("in_flight", &self.0.handle.is_some())
            .finish()
    }
}

impl PendingCounter {
    pub(crate) fn new(
        client: Arc<ClientInner>,
        handle: *mut c::aeron_async_add_counter_t,
        timeout: Duration,
    ) -> Self {
        Self(Pending::new(client, Handle::Counter(handle), timeout))
    }

    /// One non-blocking check; see [`PendingPublication::poll`].
    pub fn poll(&mut self) -> Result<Option<Counter>, AddError> {
        let p = &mut self.0;
        let Some(Handle::Counter(h)) = p.handle.as_ref() else {
            return Err(finished());
        };
        let mut out = std::ptr::null_mut();
        // SAFETY: `h` is live until its poll completes or it is cancelled.
        let rc = unsafe { c::aeron_async_add_counter_poll(&mut out, *h) };
        match classify(rc, out) {
            Polled::Done(ptr) => {
                p.handle = None;
                Ok(Some(Counter::new(p.client.clone(), ptr)))
            }
            Polled::Failed => {
                p.handle = None;
                Err(rejected("aeron_async_add_counter_poll"))
            }
            Polled::NotYet => p.check_deadline().map(|()| None),
        }
    }

    /// Polls until allocated, sleeping a little between polls; for callers that may block.
    pub fn wait(mut self) -> Result<Counter, AddError> {
        wait_for(|| self.poll())
    }
}

/// `Polled` mapped to a publication kind.
enum PolledKind {
    Done(Kind),
    NotYet,
    Failed,
}

impl<T> Polled<T> {
    fn map(self, f: impl FnOnce(*mut T) -> Kind) -> PolledKind {
        match self {
            Polled::Done(p) => PolledKind::Done(f(p)),
            Polled::NotYet => PolledKind::NotYet,
            Polled::Failed => PolledKind::Failed,
        }
    }
}

/// Drives a poll function to completion; the deadline lives in the pending registration.
fn wait_for<T>(mut poll: impl FnMut() -> Result<Option<T>, AddError>) -> Result<T, AddError> {
    let mut backoff = crate::ffi::Deadline::after(Duration::MAX);
    loop {
        if let Some(done) = poll()? {
            return Ok(done);
        }
        backoff.idle();
    }
}
