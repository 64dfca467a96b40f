//! Subscriptions: whole messages (fragments reassembled without allocating in steady state)
//! and a record of when images came and went.

use std::any::Any;
use std::os::raw::c_void;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, AtomicI64, AtomicU64, Ordering};

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
    let (session_id, join_position) =
        image_constants(image).map_or((0, -1), |k| (k.session_id, k.join_position));
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
    let info = unsafe { fragment_info(header) };
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

/// Reads the header of a delivered message.
///
/// # Safety
/// `header` must be NULL or a header Aeron passed to a fragment handler, still in that call.
unsafe fn fragment_info(header: *mut c::aeron_header_t) -> FragmentInfo {
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
        return info;
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
    if let Some(constants) = image_constants(image) {
        info.join_position = constants.join_position;
    }
    info
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
        Ok(Self {
            ptr,
            assembler,
            slot,
            events,
            channel,
            stream_id: constants.stream_id,
            registration_id: constants.registration_id,
            closed: false,
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
        let mut context = PollContext {
            handler: &mut handler,
            panic: None,
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
