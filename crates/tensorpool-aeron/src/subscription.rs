//! Subscriptions: whole messages (fragments reassembled without allocating in steady state)
//! and a record of when images came and went.

use std::any::Any;
use std::os::raw::c_void;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicI32, AtomicI64, AtomicPtr, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rusteron_client::bindings as c;

use crate::client::ClientInner;
use crate::ffi::{last_error, owned_str};
use crate::{AddError, PollError};

/// What a subscriber learns about a message besides its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FragmentInfo {
    /// The publication's session id (one image per session).
    pub session_id: i32,
    /// The stream id.
    pub stream_id: i32,
    /// The term id of the message's (first) frame.
    pub term_id: i32,
    /// The term offset of the message's (first) frame.
    pub term_offset: i32,
    /// The stream position just after the message.
    pub position: i64,
    /// The frame's reserved value (set by the publisher; 0 when unused).
    pub reserved_value: i64,
    /// The frame flags (begin/end of message).
    pub flags: u8,
    /// The position at which this subscription joined the image (`-1` when unknown).
    pub join_position: i64,
}

/// When images became available and unavailable, recorded by the client conductor thread in
/// atomics. Times are [`nano_clock`](crate::nano_clock) readings (`CLOCK_MONOTONIC`, ns).
#[derive(Debug, Default)]
pub(crate) struct ImageEvents {
    available_count: AtomicU64,
    unavailable_count: AtomicU64,
    last_available_ns: AtomicI64,
    last_available_session_id: AtomicI32,
    last_available_join_position: AtomicI64,
    last_unavailable_ns: AtomicI64,
    last_unavailable_session_id: AtomicI32,
    /// Set for a subscription that skips what was published before it joined.
    backlog: Option<Backlog>,
}

/// AERON_COUNTER_PUBLISHER_POSITION_TYPE_ID: `pub-pos`, the publication's producer position,
/// kept by the media driver's conductor (its registration id is the publication's).
const PUBLISHER_POSITION_TYPE_ID: i32 = 12;

/// What a subscription skipping its backlog learns at each image's arrival (conductor
/// thread): for an image of a publication older than the subscription, the position that
/// publication had reached when the image became available. Aeron's own join position is the
/// slowest existing subscriber's position, which may lie far below it: a client killed right
/// after publishing leaves its own subscription behind its last messages for as long as the
/// media driver still counts it alive (10 s), and a new subscriber joins there.
#[derive(Debug)]
pub(crate) struct Backlog {
    reader: AtomicPtr<c::aeron_counters_reader_t>,
    /// (image correlation id, stream position when it became available).
    joined: Mutex<Vec<(i64, i64)>>,
}

impl ImageEvents {
    /// The record of a subscription that drops the messages its images held before it
    /// joined them; `reader` is the client's counters reader (live as long as the client).
    pub(crate) fn skipping_backlog(reader: *mut c::aeron_counters_reader_t) -> Self {
        Self {
            backlog: Some(Backlog {
                reader: AtomicPtr::new(reader),
                joined: Mutex::new(Vec::with_capacity(8)),
            }),
            ..Self::default()
        }
    }
}

/// The stream position the IPC publication `registration_id` has reached (its `pub-pos`
/// counter), if the counters file has it.
fn publisher_position(
    reader: *mut c::aeron_counters_reader_t,
    registration_id: i64,
) -> Option<i64> {
    if reader.is_null() {
        return None;
    }
    // SAFETY: the reader belongs to the live client (the conductor calling us runs inside it).
    let id = unsafe {
        c::aeron_counters_reader_find_by_type_id_and_registration_id(
            reader,
            PUBLISHER_POSITION_TYPE_ID,
            registration_id,
        )
    };
    if id < 0 {
        return None;
    }
    // SAFETY: `id` was just found in this reader, so its value address is in the mapped
    // values buffer, 8-aligned; the media driver writes it atomically.
    let addr = unsafe { c::aeron_counters_reader_addr(reader, id) };
    if addr.is_null() || addr.align_offset(std::mem::align_of::<AtomicI64>()) != 0 {
        return None;
    }
    // SAFETY: as above.
    Some(unsafe { AtomicI64::from_ptr(addr) }.load(Ordering::Acquire))
}

/// Records, for a subscription skipping its backlog, where `image` stood when it joined.
fn record_join(
    backlog: &Backlog,
    subscription: *mut c::aeron_subscription_t,
    k: &c::aeron_image_constants_t,
) {
    // SAFETY: all-zero is a valid constants struct.
    let mut sub: c::aeron_subscription_constants_t = unsafe { std::mem::zeroed() };
    // SAFETY: `subscription` is live for the callback (checked non-null); `sub` is writable.
    let known = !subscription.is_null()
        && unsafe { c::aeron_subscription_constants(subscription, &mut sub) } >= 0;
    if known && k.correlation_id >= sub.registration_id {
        // a publication added after the subscription: everything on it is news
        return;
    }
    // An older publication: skip what it held. Always recorded (unknown: nothing skipped),
    // so that the poll side never waits for a record that will not come.
    let reader = backlog.reader.load(Ordering::Relaxed);
    let until = match known {
        true => publisher_position(reader, k.correlation_id).unwrap_or(k.join_position),
        false => k.join_position,
    }
    .max(k.join_position);
    if let Ok(mut joined) = backlog.joined.lock() {
        match joined.iter_mut().find(|(id, _)| *id == k.correlation_id) {
            Some(e) => e.1 = until,
            None => joined.push((k.correlation_id, until)),
        }
    }
}

/// A snapshot of a subscription's image events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ImageEventsSnapshot {
    /// How many images became available.
    pub available_count: u64,
    /// How many images became unavailable.
    pub unavailable_count: u64,
    /// When the last image became available (monotonic ns; 0: never).
    pub last_available_ns: i64,
    /// The session id of that image.
    pub last_available_session_id: i32,
    /// The position at which the subscription joined that image.
    pub last_available_join_position: i64,
    /// When the last image became unavailable (monotonic ns; 0: never).
    pub last_unavailable_ns: i64,
    /// The session id of that image.
    pub last_unavailable_session_id: i32,
}

fn image_constants(image: *mut c::aeron_image_t) -> Option<c::aeron_image_constants_t> {
    if image.is_null() {
        return None;
    }
    // SAFETY: all-zero is a valid constants struct.
    let mut constants: c::aeron_image_constants_t = unsafe { std::mem::zeroed() };
    // SAFETY: `image` is a live image handed to us by Aeron for the duration of the callback.
    (unsafe { c::aeron_image_constants(image, &mut constants) } >= 0).then_some(constants)
}

/// Client conductor callback: an image joined a subscription.
pub(crate) unsafe extern "C" fn on_available_image(
    clientd: *mut c_void,
    _subscription: *mut c::aeron_subscription_t,
    image: *mut c::aeron_image_t,
) {
    // SAFETY: reads the monotonic clock.
    let now = unsafe { c::aeron_nano_clock() };
    // SAFETY: `clientd` is the subscription's `ImageEvents`, kept alive by the client until
    // its conductor (the caller) has stopped.
    let events = unsafe { &*(clientd as *const ImageEvents) };
    let constants = image_constants(image);
    if let (Some(backlog), Some(k)) = (events.backlog.as_ref(), constants.as_ref()) {
        record_join(backlog, _subscription, k);
    }
    let (session_id, join_position) =
        constants.map_or((0, -1), |k| (k.session_id, k.join_position));
    events
        .last_available_session_id
        .store(session_id, Ordering::Relaxed);
    events
        .last_available_join_position
        .store(join_position, Ordering::Relaxed);
    events.last_available_ns.store(now, Ordering::Relaxed);
    events.available_count.fetch_add(1, Ordering::Release);
}

/// Client conductor callback: an image left a subscription.
pub(crate) unsafe extern "C" fn on_unavailable_image(
    clientd: *mut c_void,
    _subscription: *mut c::aeron_subscription_t,
    image: *mut c::aeron_image_t,
) {
    // SAFETY: reads the monotonic clock.
    let now = unsafe { c::aeron_nano_clock() };
    // SAFETY: as in `on_available_image`.
    let events = unsafe { &*(clientd as *const ImageEvents) };
    let session_id = image_constants(image).map_or(0, |k| k.session_id);
    events
        .last_unavailable_session_id
        .store(session_id, Ordering::Relaxed);
    events.last_unavailable_ns.store(now, Ordering::Relaxed);
    events.unavailable_count.fetch_add(1, Ordering::Release);
}

/// The per-poll state the reassembled-message trampoline reaches through the assembler.
struct PollContext<'a> {
    handler: &'a mut dyn FnMut(&[u8], FragmentInfo),
    panic: Option<Box<dyn Any + Send>>,
    /// A subscription skipping its backlog: the images' join records and the drop count.
    backlog: Option<BacklogCheck<'a>>,
}

/// The poll-side view of a [`Backlog`].
struct BacklogCheck<'a> {
    registration_id: i64,
    joined: &'a [(i64, i64)],
    dropped: &'a mut u64,
}

impl BacklogCheck<'_> {
    /// Whether a message ending at `position` on the image `correlation_id` was published
    /// before the subscription joined that image. An image of an older publication whose join
    /// the conductor has not recorded yet counts as all backlog: whatever it holds now was
    /// published before that record is taken.
    fn before_join(&self, correlation_id: i64, position: i64) -> bool {
        if correlation_id < 0 || correlation_id >= self.registration_id {
            return false;
        }
        match self.joined.iter().find(|(id, _)| *id == correlation_id) {
            Some(&(_, until)) => position <= until,
            None => true,
        }
    }
}

/// The poll-side copy of the join records (refreshed when an image arrives).
#[derive(Debug, Default)]
struct BacklogLocal {
    seen: u64,
    joined: Vec<(i64, i64)>,
    dropped: u64,
}

/// A stable heap cell the fragment assembler's delegate reads to find the current poll.
struct PollSlot {
    context: *mut c_void,
}

/// Delegate of the C fragment assembler: one call per whole message.
unsafe extern "C-unwind" fn deliver(
    clientd: *mut c_void,
    buffer: *const u8,
    length: usize,
    header: *mut c::aeron_header_t,
) {
    // SAFETY: `clientd` is the subscription's `PollSlot`; during `poll` its `context` points
    // to that call's live `PollContext` (no other reference to it exists meanwhile).
    let context = unsafe { &mut *((*(clientd as *mut PollSlot)).context as *mut PollContext<'_>) };
    if context.panic.is_some() {
        return;
    }
    let message: &[u8] = if buffer.is_null() || length == 0 {
        &[]
    } else {
        // SAFETY: Aeron passes `length` readable bytes at `buffer`, valid for this call.
        unsafe { std::slice::from_raw_parts(buffer, length) }
    };
    // SAFETY: `header` is valid for this call.
    let (info, image_correlation_id) = unsafe { fragment_info(header) };
    if let Some(b) = context.backlog.as_mut()
        && b.before_join(image_correlation_id, info.position)
    {
        *b.dropped += 1;
        return;
    }
    let handler = &mut context.handler;
    if let Err(payload) = std::panic::catch_unwind(AssertUnwindSafe(|| handler(message, info))) {
        context.panic = Some(payload);
    }
}

/// The fragment handler given to `aeron_subscription_poll`: Aeron's fragment assembler, which
/// calls [`deliver`] once per whole message.
unsafe extern "C-unwind" fn reassemble(
    clientd: *mut c_void,
    buffer: *const u8,
    length: usize,
    header: *mut c::aeron_header_t,
) {
    // SAFETY: `clientd` is the subscription's live assembler; the fragment arguments come
    // straight from Aeron's poll, valid for this call.
    unsafe { c::aeron_fragment_assembler_handler(clientd, buffer, length, header) }
}

/// Reads the header of a delivered message, and the correlation id of its image (`-1` when
/// unknown).
///
/// # Safety
/// `header` must be NULL or a header Aeron passed to a fragment handler, still in that call.
unsafe fn fragment_info(header: *mut c::aeron_header_t) -> (FragmentInfo, i64) {
    let mut info = FragmentInfo {
        session_id: 0,
        stream_id: 0,
        term_id: 0,
        term_offset: 0,
        position: -1,
        reserved_value: 0,
        flags: 0,
        join_position: -1,
    };
    if header.is_null() {
        return (info, -1);
    }
    // SAFETY: all-zero is a valid values struct.
    let mut values: c::aeron_header_values_t = unsafe { std::mem::zeroed() };
    // SAFETY: `header` is valid (caller); `values` is writable.
    if unsafe { c::aeron_header_values(header, &mut values) } >= 0 {
        info.session_id = values.frame.session_id;
        info.stream_id = values.frame.stream_id;
        info.term_id = values.frame.term_id;
        info.term_offset = values.frame.term_offset;
        info.reserved_value = values.frame.reserved_value;
        info.flags = values.frame.flags;
    }
    // SAFETY: `header` is valid (caller).
    info.position = unsafe { c::aeron_header_position(header) };
    // SAFETY: `header` is valid; its context is the image the message came from, live for
    // the call.
    let image = unsafe { c::aeron_header_context(header) } as *mut c::aeron_image_t;
    let mut correlation_id = -1;
    if let Some(constants) = image_constants(image) {
        info.join_position = constants.join_position;
        correlation_id = constants.correlation_id;
    }
    (info, correlation_id)
}

/// An Aeron subscription delivering whole messages. Closed on drop; keeps its client alive.
pub struct Subscription {
    ptr: *mut c::aeron_subscription_t,
    assembler: *mut c::aeron_fragment_assembler_t,
    /// Owned (from `Box::into_raw`), freed in `close`; only ever accessed through this pointer,
    /// which the assembler's delegate also holds.
    slot: *mut PollSlot,
    events: Arc<ImageEvents>,
    channel: String,
    stream_id: i32,
    registration_id: i64,
    closed: bool,
    /// Set when the subscription skips what was published before it joined.
    backlog: Option<BacklogLocal>,
    _client: Arc<ClientInner>,
}

// SAFETY: the C subscription and assembler are used only through `&mut self` (polling) or by
// reads Aeron makes thread-safe (connection flag, image count); the client stays alive.
unsafe impl Send for Subscription {}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("channel", &self.channel)
            .field("stream_id", &self.stream_id)
            .field("closed", &self.closed)
            .finish()
    }
}

impl Subscription {
    pub(crate) fn new(
        client: Arc<ClientInner>,
        ptr: *mut c::aeron_subscription_t,
        events: Arc<ImageEvents>,
    ) -> Result<Self, AddError> {
        let slot = Box::into_raw(Box::new(PollSlot {
            context: std::ptr::null_mut(),
        }));
        let mut assembler = std::ptr::null_mut();
        // SAFETY: `assembler` is a valid out-pointer; the delegate's clientd (the slot) lives
        // as long as the assembler: both are freed together in `close`.
        let rc = unsafe {
            c::aeron_fragment_assembler_create(&mut assembler, Some(deliver), slot.cast())
        };
        if rc < 0 || assembler.is_null() {
            let (code, message) = last_error();
            // SAFETY: the subscription is live and closed once here; the slot was never handed
            // to a live assembler and is freed once.
            unsafe {
                c::aeron_subscription_close(ptr, None, std::ptr::null_mut());
                drop(Box::from_raw(slot));
            }
            return Err(AddError::Rejected {
                op: "aeron_fragment_assembler_create",
                code,
                message,
            });
        }
        // SAFETY: all-zero is a valid constants struct.
        let mut constants: c::aeron_subscription_constants_t = unsafe { std::mem::zeroed() };
        // SAFETY: the subscription is live; `constants` is writable; the channel is copied.
        let channel = unsafe {
            if c::aeron_subscription_constants(ptr, &mut constants) < 0 {
                String::new()
            } else {
                owned_str(constants.channel)
            }
        };
        let backlog = events.backlog.as_ref().map(|_| BacklogLocal {
            seen: u64::MAX,
            joined: Vec::with_capacity(8),
            dropped: 0,
        });
        Ok(Self {
            ptr,
            assembler,
            slot,
            events,
            channel,
            stream_id: constants.stream_id,
            registration_id: constants.registration_id,
            closed: false,
            backlog,
            _client: client,
        })
    }

    /// Polls for messages, calling `handler` once per whole message (fragments of a longer
    /// message are reassembled in a reusable per-session buffer). Reads at most
    /// `fragment_limit` fragments; returns how many it read. A panic in `handler` stops the
    /// delivery and is resumed after the poll.
    pub fn poll(
        &mut self,
        mut handler: impl FnMut(&[u8], FragmentInfo),
        fragment_limit: usize,
    ) -> Result<usize, PollError> {
        if self.closed {
            return Err(PollError::Closed);
        }
        let registration_id = self.registration_id;
        let backlog = match (self.backlog.as_mut(), self.events.backlog.as_ref()) {
            (Some(local), Some(shared)) => {
                let arrived = self.events.available_count.load(Ordering::Acquire);
                if arrived != local.seen
                    && let Ok(joined) = shared.joined.lock()
                {
                    local.joined.clear();
                    local.joined.extend_from_slice(&joined);
                    local.seen = arrived;
                }
                Some(BacklogCheck {
                    registration_id,
                    joined: &local.joined,
                    dropped: &mut local.dropped,
                })
            }
            _ => None,
        };
        let mut context = PollContext {
            handler: &mut handler,
            panic: None,
            backlog,
        };
        // SAFETY: the slot is live (not closed) and only accessed through its raw pointer;
        // the subscription and assembler are live; the assembler's delegate reaches `context`
        // through the slot only during the poll, and the slot is cleared right after.
        let read = unsafe {
            (*self.slot).context = (&mut context as *mut PollContext<'_>).cast();
            let read = c::aeron_subscription_poll(
                self.ptr,
                Some(reassemble),
                self.assembler.cast(),
                fragment_limit,
            );
            (*self.slot).context = std::ptr::null_mut();
            read
        };
        if let Some(payload) = context.panic.take() {
            std::panic::resume_unwind(payload);
        }
        if read < 0 {
            return Err(PollError::Failed {
                code: last_error().0,
            });
        }
        Ok(usize::try_from(read).unwrap_or(0))
    }

    /// Whether at least one publication's image is connected.
    pub fn is_connected(&self) -> bool {
        // SAFETY: the subscription is live (not closed by us).
        !self.closed && unsafe { c::aeron_subscription_is_connected(self.ptr) }
    }

    /// How many images (publisher sessions) the subscription has.
    pub fn image_count(&self) -> usize {
        if self.closed {
            return 0;
        }
        // SAFETY: the subscription is live (not closed by us).
        usize::try_from(unsafe { c::aeron_subscription_image_count(self.ptr) }).unwrap_or(0)
    }

    /// When images came and went (monotonic ns, recorded by the client conductor).
    pub fn image_events(&self) -> ImageEventsSnapshot {
        let e = &self.events;
        let available_count = e.available_count.load(Ordering::Acquire);
        let unavailable_count = e.unavailable_count.load(Ordering::Acquire);
        ImageEventsSnapshot {
            available_count,
            unavailable_count,
            last_available_ns: e.last_available_ns.load(Ordering::Relaxed),
            last_available_session_id: e.last_available_session_id.load(Ordering::Relaxed),
            last_available_join_position: e.last_available_join_position.load(Ordering::Relaxed),
            last_unavailable_ns: e.last_unavailable_ns.load(Ordering::Relaxed),
            last_unavailable_session_id: e.last_unavailable_session_id.load(Ordering::Relaxed),
        }
    }

    /// When the last image became available (monotonic ns; 0 if none has): the subscriber's
    /// join time.
    pub fn last_image_available_ns(&self) -> i64 {
        self.events.last_available_ns.load(Ordering::Acquire)
    }

    /// How many messages were dropped as published before this subscription joined their
    /// image (always 0 unless it was added with
    /// [`AeronClient::start_add_subscription_skipping_backlog`](crate::AeronClient::start_add_subscription_skipping_backlog)).
    pub fn backlog_dropped(&self) -> u64 {
        self.backlog.as_ref().map_or(0, |b| b.dropped)
    }

    /// The channel, as the driver registered it.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// The stream id.
    pub fn stream_id(&self) -> i32 {
        self.stream_id
    }

    /// The registration id the driver gave this subscription.
    pub fn registration_id(&self) -> i64 {
        self.registration_id
    }

    /// Closes the subscription now; later polls return [`PollError::Closed`]. Idempotent.
    pub fn close(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        // SAFETY: all three are live and released once (the flag guards every later use); no
        // poll is running (we hold `&mut self`), so the assembler no longer reaches the slot.
        unsafe {
            c::aeron_subscription_close(self.ptr, None, std::ptr::null_mut());
            c::aeron_fragment_assembler_delete(self.assembler);
            drop(Box::from_raw(self.slot));
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.close();
    }
}
