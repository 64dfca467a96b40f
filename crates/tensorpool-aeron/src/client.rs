//! The Aeron client: connects to a media driver and registers publications, subscriptions and
//! counters, each wait bounded by a deadline.

use std::ffi::{CStr, CString};
use std::os::raw::{c_char, c_int, c_void};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusteron_client::bindings as c;

use crate::counters::{Counter, CountersReader, MAX_KEY_LENGTH, MAX_LABEL_LENGTH};
use crate::ffi::{Deadline, last_error, path_to_cstring};
use crate::pending::{PendingCounter, PendingPublication, PendingSubscription};
use crate::publication::Publication;
use crate::subscription::{ImageEvents, Subscription};
use crate::{AddError, ConnectError, WaitingFor};

/// How a client connects. `ClientConfig::new(dir)` takes Aeron's defaults for the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// The media driver's Aeron directory.
    pub dir: PathBuf,
    /// How long to wait for the driver to answer before [`ConnectError::Timeout`].
    pub connect_timeout: Duration,
    /// How long the client tolerates a silent driver before it closes every resource
    /// (`AERON_DRIVER_TIMEOUT`; `None`: Aeron's 10 s).
    pub driver_timeout: Option<Duration>,
    /// A name shown in the driver's client heartbeat counter.
    pub client_name: Option<String>,
}

impl ClientConfig {
    /// Defaults for a driver in `dir`: a 10 s connect timeout, Aeron's driver timeout.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            connect_timeout: Duration::from_secs(10),
            driver_timeout: None,
            client_name: None,
        }
    }

    /// Sets the connect timeout.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the driver timeout.
    pub fn driver_timeout(mut self, timeout: Duration) -> Self {
        self.driver_timeout = Some(timeout);
        self
    }

    /// Sets the client name.
    pub fn client_name(mut self, name: impl Into<String>) -> Self {
        self.client_name = Some(name.into());
        self
    }
}

/// Asynchronous errors the client conductor reported (driver timeouts, lost images, ...).
#[derive(Debug, Default)]
struct ClientErrors {
    count: AtomicU64,
    last_code: AtomicI32,
    last_message: Mutex<String>,
}

/// Called by the client conductor thread for every asynchronous error. Replaces Aeron's
/// default handler, which would `exit()` the process.
unsafe extern "C" fn on_client_error(clientd: *mut c_void, code: c_int, message: *const c_char) {
    let _ = std::panic::catch_unwind(|| {
        // SAFETY: `clientd` is the `ClientErrors` this client owns; it is freed only after
        // aeron_close has joined the conductor thread that calls this.
        let errors = unsafe { &*(clientd as *const ClientErrors) };
        let text = if message.is_null() {
            String::new()
        } else {
            // SAFETY: Aeron passes a NUL-terminated message valid for this call.
            unsafe { CStr::from_ptr(message) }
                .to_string_lossy()
                .into_owned()
        };
        tracing::warn!(code, message = %text, "aeron client error");
        errors.last_code.store(code, Ordering::Relaxed);
        if let Ok(mut last) = errors.last_message.lock() {
            *last = text;
        }
        errors.count.fetch_add(1, Ordering::Release);
    });
}

/// The C client and everything that must live exactly as long as it.
pub(crate) struct ClientInner {
    pub(crate) aeron: *mut c::aeron_t,
    context: *mut c::aeron_context_t,
    errors: *mut ClientErrors,
    /// Image-event records whose pointers the conductor may still use; freed after it stops.
    keepalive: Mutex<Vec<Arc<ImageEvents>>>,
    dir: PathBuf,
}

// SAFETY: the Aeron C client is thread-safe for everything `ClientInner` exposes (registering
// resources goes through the conductor's command queue; the counters reader reads shared
// memory); the pointers are freed once, in Drop, when no handle is left.
unsafe impl Send for ClientInner {}
// SAFETY: as above.
unsafe impl Sync for ClientInner {}

impl ClientInner {
    pub(crate) fn keep_alive(&self, events: Arc<ImageEvents>) {
        if let Ok(mut list) = self.keepalive.lock() {
            list.push(events);
        } else {
            // A poisoned list cannot take the entry: leak it, which is safe, rather than
            // free memory the conductor may still write.
            std::mem::forget(events);
        }
    }
}

impl Drop for ClientInner {
    fn drop(&mut self) {
        // SAFETY: no handle refers to the client any more (each holds an Arc to this);
        // aeron_close stops and joins the conductor and frees every resource, after which the
        // context and the error record are no longer used and are freed once.
        unsafe {
            c::aeron_close(self.aeron);
            c::aeron_context_close(self.context);
            drop(Box::from_raw(self.errors));
        }
    }
}

/// A connected Aeron client: a cheap handle (clones share one C client). Its conductor runs
/// on its own thread and sleeps when idle. Publications, subscriptions and counters keep the
/// client alive.
#[derive(Clone)]
pub struct AeronClient {
    inner: Arc<ClientInner>,
}

impl std::fmt::Debug for AeronClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AeronClient")
            .field("dir", &self.inner.dir)
            .finish()
    }
}

fn connect_failure(op: &'static str) -> ConnectError {
    let (code, message) = last_error();
    ConnectError::Aeron { op, code, message }
}

/// Waits (bounded) until the CnC file in `dir` is complete and the driver's heartbeat is fresh.
fn await_live_driver(
    dir: &Path,
    c_dir: &CStr,
    driver_timeout: Duration,
    deadline: &mut Deadline,
) -> Result<(), ConnectError> {
    let timeout = |waiting_for, deadline: &Deadline| ConnectError::Timeout {
        dir: dir.display().to_string(),
        waiting_for,
        waited: deadline.elapsed(),
    };
    let mut cnc: *mut c::aeron_cnc_t = std::ptr::null_mut();
    let remaining = deadline.remaining();
    let remaining_ms = i64::try_from(remaining.as_millis()).unwrap_or(i64::MAX);
    let called = std::time::Instant::now();
    // SAFETY: `cnc` is a valid out-pointer, `c_dir` a NUL-terminated path; the call waits at
    // most `remaining_ms`.
    if unsafe { c::aeron_cnc_init(&mut cnc, c_dir.as_ptr(), remaining_ms) } < 0 || cnc.is_null() {
        // Aeron measures the wait with its own clock: a failure after (about) the whole
        // remaining time is our timeout even if our deadline has a few microseconds left.
        let used_it_all = called.elapsed() + Duration::from_millis(5) >= remaining;
        return Err(if deadline.expired() || used_it_all {
            timeout(WaitingFor::CncFile, deadline)
        } else {
            connect_failure("aeron_cnc_init")
        });
    }
    let stale_ms = i64::try_from(driver_timeout.as_millis()).unwrap_or(i64::MAX);
    let result = loop {
        // SAFETY: `cnc` is a live mapping of the CnC file.
        let heartbeat_ms = unsafe { c::aeron_cnc_to_driver_heartbeat(cnc) };
        // SAFETY: reads the wall clock.
        let now_ms = unsafe { c::aeron_epoch_clock() };
        if heartbeat_ms > 0 && now_ms.saturating_sub(heartbeat_ms) <= stale_ms {
            break Ok(());
        }
        if deadline.expired() {
            break Err(timeout(WaitingFor::DriverHeartbeat, deadline));
        }
        deadline.idle();
    };
    // SAFETY: `cnc` is live and closed once.
    unsafe { c::aeron_cnc_close(cnc) };
    result
}

impl AeronClient {
    /// How long ago the media driver of the CnC file in `dir` last wrote its heartbeat (wall
    /// clock, millisecond resolution); `None` while the file holds no heartbeat (none written
    /// yet, or cleared by a driver that closed). A client
    /// connects only while this age is within its driver timeout. Waits at most `timeout` for
    /// the CnC file to be complete.
    pub fn driver_heartbeat_age(
        dir: impl AsRef<Path>,
        timeout: Duration,
    ) -> Result<Option<Duration>, ConnectError> {
        let dir = dir.as_ref();
        let c_dir = path_to_cstring(dir).map_err(|reason| ConnectError::InvalidArgument {
            what: "Aeron directory",
            value: dir.display().to_string(),
            reason,
        })?;
        let mut cnc: *mut c::aeron_cnc_t = std::ptr::null_mut();
        let timeout_ms = i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX);
        // SAFETY: `cnc` is a valid out-pointer, `c_dir` a NUL-terminated path; the call waits at
        // most `timeout_ms`.
        if unsafe { c::aeron_cnc_init(&mut cnc, c_dir.as_ptr(), timeout_ms) } < 0 || cnc.is_null() {
            return Err(connect_failure("aeron_cnc_init"));
        }
        // SAFETY: `cnc` is a live mapping of the CnC file.
        let heartbeat_ms = unsafe { c::aeron_cnc_to_driver_heartbeat(cnc) };
        // SAFETY: reads the wall clock.
        let now_ms = unsafe { c::aeron_epoch_clock() };
        // SAFETY: `cnc` is live and closed once.
        unsafe { c::aeron_cnc_close(cnc) };
        Ok((heartbeat_ms > 0).then(|| {
            Duration::from_millis(u64::try_from(now_ms.saturating_sub(heartbeat_ms)).unwrap_or(0))
        }))
    }

    /// Connects to the media driver in `dir`, waiting at most `timeout` for it to answer.
    pub fn connect(dir: impl AsRef<Path>, timeout: Duration) -> Result<Self, ConnectError> {
        Self::connect_with(&ClientConfig::new(dir.as_ref()).connect_timeout(timeout))
    }

    /// Connects with a full configuration.
    pub fn connect_with(config: &ClientConfig) -> Result<Self, ConnectError> {
        let dir = &config.dir;
        let c_dir = path_to_cstring(dir).map_err(|reason| ConnectError::InvalidArgument {
            what: "Aeron directory",
            value: dir.display().to_string(),
            reason,
        })?;
        let driver_timeout = config.driver_timeout.unwrap_or(Duration::from_secs(10));
        let mut deadline = Deadline::after(config.connect_timeout);
        await_live_driver(dir, &c_dir, driver_timeout, &mut deadline)?;

        let mut context = std::ptr::null_mut();
        // SAFETY: valid out-pointer; on success Aeron stores an owned context.
        if unsafe { c::aeron_context_init(&mut context) } < 0 || context.is_null() {
            return Err(connect_failure("aeron_context_init"));
        }
        let errors = Box::into_raw(Box::<ClientErrors>::default());
        // SAFETY: the context is live; `errors` outlives every callback (freed after close).
        match unsafe { configure_and_start(context, &c_dir, config, driver_timeout, errors) } {
            Ok(aeron) => Ok(Self {
                inner: Arc::new(ClientInner {
                    aeron,
                    context,
                    errors,
                    keepalive: Mutex::new(Vec::new()),
                    dir: dir.clone(),
                }),
            }),
            Err(e) => {
                // SAFETY: no client uses the context or the error record any more.
                unsafe {
                    c::aeron_context_close(context);
                    drop(Box::from_raw(errors));
                }
                Err(e)
            }
        }
    }

    /// The Aeron directory of the driver this client talks to.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Whether the client is closed (for instance because its driver timed out).
    pub fn is_closed(&self) -> bool {
        // SAFETY: the client is live while `self` exists.
        unsafe { c::aeron_is_closed(self.inner.aeron) }
    }

    /// How many asynchronous errors the client conductor has reported.
    pub fn error_count(&self) -> u64 {
        self.errors().count.load(Ordering::Acquire)
    }

    /// The last asynchronous error (code and message), if any.
    pub fn last_error(&self) -> Option<(i32, String)> {
        let errors = self.errors();
        if errors.count.load(Ordering::Acquire) == 0 {
            return None;
        }
        let message = errors
            .last_message
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default();
        Some((errors.last_code.load(Ordering::Relaxed), message))
    }

    fn errors(&self) -> &ClientErrors {
        // SAFETY: the error record lives as long as the client, which `self` keeps alive.
        unsafe { &*self.inner.errors }
    }

    /// Adds a (concurrent) publication on `channel` / `stream_id`, waiting at most `timeout`
    /// for the driver to register it. The channel string goes to Aeron unchanged.
    pub fn add_publication(
        &self,
        channel: &str,
        stream_id: i32,
        timeout: Duration,
    ) -> Result<Publication, AddError> {
        self.start_add_publication(channel, stream_id, timeout)?
            .wait()
    }

    /// Adds an exclusive (single-writer) publication, waiting at most `timeout`.
    pub fn add_exclusive_publication(
        &self,
        channel: &str,
        stream_id: i32,
        timeout: Duration,
    ) -> Result<Publication, AddError> {
        self.start_add_exclusive_publication(channel, stream_id, timeout)?
            .wait()
    }

    /// Adds a subscription on `channel` / `stream_id`, waiting at most `timeout` for the driver
    /// to register it. Image availability is recorded (see [`Subscription::image_events`]).
    pub fn add_subscription(
        &self,
        channel: &str,
        stream_id: i32,
        timeout: Duration,
    ) -> Result<Subscription, AddError> {
        self.start_add_subscription(channel, stream_id, timeout)?
            .wait()
    }

    /// Starts registering a (concurrent) publication without waiting: poll the returned
    /// [`PendingPublication`] from a duty cycle; it gives up (cancelled) after `timeout`.
    pub fn start_add_publication(
        &self,
        channel: &str,
        stream_id: i32,
        timeout: Duration,
    ) -> Result<PendingPublication, AddError> {
        let c_channel = channel_cstring(channel)?;
        let mut pending = std::ptr::null_mut();
        // SAFETY: the client is live; Aeron copies the channel string.
        let rc = unsafe {
            c::aeron_async_add_publication(
                &mut pending,
                self.inner.aeron,
                c_channel.as_ptr(),
                stream_id,
            )
        };
        if rc < 0 || pending.is_null() {
            return Err(rejected("aeron_async_add_publication"));
        }
        Ok(PendingPublication::concurrent(
            self.inner.clone(),
            pending,
            timeout,
        ))
    }

    /// Starts registering an exclusive publication without waiting (see
    /// [`AeronClient::start_add_publication`]).
    pub fn start_add_exclusive_publication(
        &self,
        channel: &str,
        stream_id: i32,
        timeout: Duration,
    ) -> Result<PendingPublication, AddError> {
        let c_channel = channel_cstring(channel)?;
        let mut pending = std::ptr::null_mut();
        // SAFETY: the client is live; Aeron copies the channel string.
        let rc = unsafe {
            c::aeron_async_add_exclusive_publication(
                &mut pending,
                self.inner.aeron,
                c_channel.as_ptr(),
                stream_id,
            )
        };
        if rc < 0 || pending.is_null() {
            return Err(rejected("aeron_async_add_exclusive_publication"));
        }
        Ok(PendingPublication::exclusive(
            self.inner.clone(),
            pending,
            timeout,
        ))
    }

    /// Starts registering a subscription without waiting: poll the returned
    /// [`PendingSubscription`] from a duty cycle; it gives up (cancelled) after `timeout`.
    pub fn start_add_subscription(
        &self,
        channel: &str,
        stream_id: i32,
        timeout: Duration,
    ) -> Result<PendingSubscription, AddError> {
        self.start_subscription(channel, stream_id, timeout, ImageEvents::default())
    }

    /// Adds a subscription that drops every message its images held before it joined them
    /// (counted: [`Subscription::backlog_dropped`]), waiting at most `timeout`.
    pub fn add_subscription_skipping_backlog(
        &self,
        channel: &str,
        stream_id: i32,
        timeout: Duration,
    ) -> Result<Subscription, AddError> {
        self.start_add_subscription_skipping_backlog(channel, stream_id, timeout)?
            .wait()
    }

    /// Starts registering a subscription that drops the backlog of the publications it
    /// joins. Aeron starts a new subscriber of an IPC publication at the slowest existing
    /// subscriber's position, so it may be handed messages published long before it existed
    /// (a request from a process killed since, whose own subscription the media driver keeps
    /// for its client timeout). For an image of a publication registered before this
    /// subscription, the position the publication had reached when the image became
    /// available (its `pub-pos` counter) is recorded, and messages ending at or below it are
    /// dropped; images of later publications are delivered whole. A message published by a
    /// live peer between the media driver linking the subscription and the client learning
    /// of the image counts as backlog too: peers that retry (the driver clients do) lose one
    /// attempt.
    pub fn start_add_subscription_skipping_backlog(
        &self,
        channel: &str,
        stream_id: i32,
        timeout: Duration,
    ) -> Result<PendingSubscription, AddError> {
        // SAFETY: the client is live; its counters reader lives as long as it does, and the
        // record holding it is kept alive no longer than the client (see `start_subscription`).
        let reader = unsafe { c::aeron_counters_reader(self.inner.aeron) };
        let events = ImageEvents::skipping_backlog(reader);
        self.start_subscription(channel, stream_id, timeout, events)
    }

    fn start_subscription(
        &self,
        channel: &str,
        stream_id: i32,
        timeout: Duration,
        events: ImageEvents,
    ) -> Result<PendingSubscription, AddError> {
        let c_channel = channel_cstring(channel)?;
        let events = Arc::new(events);
        // The conductor may call the image handlers until the client closes, so the record
        // lives as long as the client.
        self.inner.keep_alive(events.clone());
        let clientd = Arc::as_ptr(&events) as *mut c_void;
        let mut pending = std::ptr::null_mut();
        // SAFETY: the client is live; Aeron copies the channel; `clientd` stays valid for as
        // long as the conductor may call the handlers (kept alive above).
        let rc = unsafe {
            c::aeron_async_add_subscription(
                &mut pending,
                self.inner.aeron,
                c_channel.as_ptr(),
                stream_id,
                Some(crate::subscription::on_available_image),
                clientd,
                Some(crate::subscription::on_unavailable_image),
                clientd,
            )
        };
        if rc < 0 || pending.is_null() {
            return Err(rejected("aeron_async_add_subscription"));
        }
        Ok(PendingSubscription::new(
            self.inner.clone(),
            pending,
            events,
            timeout,
        ))
    }

    /// Allocates a counter in the driver's counters file (visible to AeronStat), waiting at
    /// most `timeout`. `key` is at most 112 bytes, `label` at most 380 bytes.
    pub fn add_counter(
        &self,
        type_id: i32,
        key: &[u8],
        label: &str,
        timeout: Duration,
    ) -> Result<Counter, AddError> {
        self.start_add_counter(type_id, key, label, timeout)?.wait()
    }

    /// Starts allocating a counter without waiting: poll the returned [`PendingCounter`]
    /// (a role registers all its counters at once, then polls them together); it gives up
    /// (cancelled) after `timeout`. `key` is at most 112 bytes, `label` at most 380 bytes.
    pub fn start_add_counter(
        &self,
        type_id: i32,
        key: &[u8],
        label: &str,
        timeout: Duration,
    ) -> Result<PendingCounter, AddError> {
        if key.len() > MAX_KEY_LENGTH {
            return Err(AddError::TooLong {
                what: "counter key",
                len: key.len(),
                max: MAX_KEY_LENGTH,
            });
        }
        if label.len() > MAX_LABEL_LENGTH {
            return Err(AddError::TooLong {
                what: "counter label",
                len: label.len(),
                max: MAX_LABEL_LENGTH,
            });
        }
        let mut pending = std::ptr::null_mut();
        // SAFETY: the client is live; key and label are read (copied) during the call, with
        // explicit lengths, so the label needs no NUL terminator.
        let rc = unsafe {
            c::aeron_async_add_counter(
                &mut pending,
                self.inner.aeron,
                type_id,
                key.as_ptr(),
                key.len(),
                label.as_ptr().cast(),
                label.len(),
            )
        };
        if rc < 0 || pending.is_null() {
            return Err(rejected("aeron_async_add_counter"));
        }
        Ok(PendingCounter::new(self.inner.clone(), pending, timeout))
    }

    /// A read-only view of every counter in the driver's counters file.
    pub fn counters_reader(&self) -> CountersReader {
        CountersReader::new(self.inner.clone())
    }
}

/// Configures a fresh client context, creates the client and starts its conductor thread.
///
/// # Safety
/// `context` must be a live context, and `errors` must stay valid until the client is closed.
unsafe fn configure_and_start(
    context: *mut c::aeron_context_t,
    c_dir: &CStr,
    config: &ClientConfig,
    driver_timeout: Duration,
    errors: *mut ClientErrors,
) -> Result<*mut c::aeron_t, ConnectError> {
    // SAFETY: the context is live (caller); Aeron copies strings it is given.
    unsafe {
        if c::aeron_context_set_dir(context, c_dir.as_ptr()) < 0 {
            return Err(connect_failure("aeron_context_set_dir"));
        }
        let ms = u64::try_from(driver_timeout.as_millis()).unwrap_or(u64::MAX);
        if c::aeron_context_set_driver_timeout_ms(context, ms) < 0 {
            return Err(connect_failure("aeron_context_set_driver_timeout_ms"));
        }
        if let Some(name) = &config.client_name {
            let name = CString::new(name.as_str()).map_err(|_| ConnectError::InvalidArgument {
                what: "client name",
                value: name.clone(),
                reason: "it must not contain a NUL byte",
            })?;
            if c::aeron_context_set_client_name(context, name.as_ptr()) < 0 {
                return Err(connect_failure("aeron_context_set_client_name"));
            }
        }
        if c::aeron_context_set_error_handler(context, Some(on_client_error), errors.cast()) < 0 {
            return Err(connect_failure("aeron_context_set_error_handler"));
        }
        let mut aeron = std::ptr::null_mut();
        if c::aeron_init(&mut aeron, context) < 0 || aeron.is_null() {
            return Err(connect_failure("aeron_init"));
        }
        if c::aeron_start(aeron) < 0 {
            let failure = connect_failure("aeron_start");
            c::aeron_close(aeron);
            return Err(failure);
        }
        Ok(aeron)
    }
}

fn channel_cstring(channel: &str) -> Result<CString, AddError> {
    CString::new(channel).map_err(|_| AddError::ContainsNul { what: "channel" })
}

pub(crate) fn rejected(op: &'static str) -> AddError {
    let (code, message) = last_error();
    AddError::Rejected { op, code, message }
}
