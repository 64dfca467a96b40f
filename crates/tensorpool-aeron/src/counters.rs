//! Aeron counters: allocated in the media driver's counters file (so AeronStat shows them),
//! written through their atomic value, read back through a [`CountersReader`].

use std::any::Any;
use std::os::raw::{c_char, c_void};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use rusteron_client::bindings as c;

use crate::client::ClientInner;

/// First counter type id reserved for tensorpool: `0x5450_0000` ("TP" in the high bytes).
/// Aeron reserves type ids below 1000 for itself; this range is far above them and above the
/// archive and cluster ranges.
pub const TENSORPOOL_COUNTER_TYPE_ID_BASE: i32 = 0x5450_0000;

/// Last counter type id reserved for tensorpool (`0x5450_FFFF`): 65,536 ids in all.
pub const TENSORPOOL_COUNTER_TYPE_ID_LAST: i32 = 0x5450_FFFF;

/// The tensorpool counter type id number `n` of the reserved range.
pub const fn tensorpool_counter_type_id(n: u16) -> i32 {
    TENSORPOOL_COUNTER_TYPE_ID_BASE | n as i32
}

/// Whether `type_id` lies in the range reserved for tensorpool.
pub const fn is_tensorpool_counter_type_id(type_id: i32) -> bool {
    type_id >= TENSORPOOL_COUNTER_TYPE_ID_BASE && type_id <= TENSORPOOL_COUNTER_TYPE_ID_LAST
}

/// Longest counter key Aeron stores (bytes).
pub const MAX_KEY_LENGTH: usize = 112;
/// Longest counter label Aeron stores (bytes).
pub const MAX_LABEL_LENGTH: usize = 380;

/// A counter this client allocated. Writes are single-writer with release ordering, as
/// Aeron's `setRelease`; reads are acquire. Freed (returned to the driver) on drop.
pub struct Counter {
    ptr: *mut c::aeron_counter_t,
    value: *const AtomicI64,
    id: i32,
    registration_id: i64,
    _client: Arc<ClientInner>,
}

// SAFETY: the value is an 8-byte aligned i64 in the mapped counters file, only touched through
// atomic operations; the mapping lives as long as the client, which the Arc keeps alive. The C
// counter handle is only used again to close it, once, in Drop.
unsafe impl Send for Counter {}
// SAFETY: as above; every `&self` method is an atomic access.
unsafe impl Sync for Counter {}

impl std::fmt::Debug for Counter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counter")
            .field("id", &self.id)
            .field("registration_id", &self.registration_id)
            .field("value", &self.get())
            .finish()
    }
}

/// A counter cell nothing else refers to, used if Aeron hands back no value address (it
/// always does for a registered counter; this keeps that case safe without a panic).
static DETACHED: AtomicI64 = AtomicI64::new(0);

impl Counter {
    pub(crate) fn new(client: Arc<ClientInner>, ptr: *mut c::aeron_counter_t) -> Self {
        // SAFETY: all-zero is a valid constants struct.
        let mut constants: c::aeron_counter_constants_t = unsafe { std::mem::zeroed() };
        // SAFETY: the counter was just registered and is live.
        let (addr, rc) = unsafe {
            (
                c::aeron_counter_addr(ptr),
                c::aeron_counter_constants(ptr, &mut constants),
            )
        };
        let aligned = !addr.is_null() && addr.align_offset(std::mem::align_of::<AtomicI64>()) == 0;
        let value: *const AtomicI64 = if aligned {
            addr.cast()
        } else {
            tracing::warn!("aeron counter has no usable value address");
            &DETACHED
        };
        Self {
            ptr,
            value,
            id: if rc < 0 { -1 } else { constants.counter_id },
            registration_id: constants.registration_id,
            _client: client,
        }
    }

    fn cell(&self) -> &AtomicI64 {
        // SAFETY: `value` points to an aligned i64 in the mapped counters file (or to
        // DETACHED), valid while the client lives; other writers use atomics too.
        unsafe { &*self.value }
    }

    /// Sets the value (release store).
    pub fn set(&self, value: i64) {
        self.cell().store(value, Ordering::Release);
    }

    /// Adds one; returns the previous value.
    pub fn increment(&self) -> i64 {
        self.cell().fetch_add(1, Ordering::Release)
    }

    /// Adds `delta`; returns the previous value.
    pub fn add(&self, delta: i64) -> i64 {
        self.cell().fetch_add(delta, Ordering::Release)
    }

    /// Reads the value (acquire load).
    pub fn get(&self) -> i64 {
        self.cell().load(Ordering::Acquire)
    }

    /// The counter id (its slot in the counters file).
    pub fn id(&self) -> i32 {
        self.id
    }

    /// The registration id the driver gave this counter.
    pub fn registration_id(&self) -> i64 {
        self.registration_id
    }
}

impl Drop for Counter {
    fn drop(&mut self) {
        // SAFETY: the counter is live and closed once; Aeron frees it on the conductor thread.
        unsafe { c::aeron_counter_close(self.ptr, None, std::ptr::null_mut()) };
    }
}

/// One counter as seen by [`CountersReader::for_each`].
#[derive(Debug, Clone, Copy)]
pub struct CounterInfo<'a> {
    /// The counter id.
    pub id: i32,
    /// The counter type id.
    pub type_id: i32,
    /// The value when read.
    pub value: i64,
    /// The key bytes.
    pub key: &'a [u8],
    /// The label bytes (normally UTF-8).
    pub label_bytes: &'a [u8],
}

impl<'a> CounterInfo<'a> {
    /// The label as text: its longest valid UTF-8 prefix.
    pub fn label(&self) -> &'a str {
        match std::str::from_utf8(self.label_bytes) {
            Ok(s) => s,
            Err(e) => std::str::from_utf8(&self.label_bytes[..e.valid_up_to()]).unwrap_or(""),
        }
    }
}

/// A read-only view of the driver's counters file, as AeronStat reads it.
pub struct CountersReader {
    client: Arc<ClientInner>,
}

impl std::fmt::Debug for CountersReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CountersReader").finish()
    }
}

struct ForEachContext<'a> {
    f: &'a mut dyn FnMut(CounterInfo<'_>),
    panic: Option<Box<dyn Any + Send>>,
}

unsafe extern "C" fn for_each_trampoline(
    value: i64,
    id: i32,
    type_id: i32,
    key: *const u8,
    key_length: usize,
    label: *const c_char,
    label_length: usize,
    clientd: *mut c_void,
) {
    // SAFETY: `clientd` is the live `ForEachContext` of the running `for_each`.
    let context = unsafe { &mut *(clientd as *mut ForEachContext<'_>) };
    if context.panic.is_some() {
        return;
    }
    // SAFETY: Aeron passes `key_length` bytes at `key` and `label_length` bytes at `label`
    // inside the mapped metadata, valid for this call (lengths bounded by the record sizes).
    let (key, label_bytes) = unsafe {
        (
            bytes(key, key_length.min(MAX_KEY_LENGTH)),
            bytes(label.cast(), label_length.min(MAX_LABEL_LENGTH)),
        )
    };
    let info = CounterInfo {
        id,
        type_id,
        value,
        key,
        label_bytes,
    };
    let f = &mut context.f;
    if let Err(payload) = std::panic::catch_unwind(AssertUnwindSafe(|| f(info))) {
        context.panic = Some(payload);
    }
}

/// # Safety
/// `ptr` must be NULL or point to `len` readable bytes valid for `'a`.
unsafe fn bytes<'a>(ptr: *const u8, len: usize) -> &'a [u8] {
    if ptr.is_null() || len == 0 {
        &[]
    } else {
        // SAFETY: guaranteed by the caller.
        unsafe { std::slice::from_raw_parts(ptr, len) }
    }
}

impl CountersReader {
    pub(crate) fn new(client: Arc<ClientInner>) -> Self {
        Self { client }
    }

    fn reader(&self) -> *mut c::aeron_counters_reader_t {
        // SAFETY: the client is live; the reader belongs to it.
        unsafe { c::aeron_counters_reader(self.client.aeron) }
    }

    /// Calls `f` for every allocated counter.
    pub fn for_each(&self, mut f: impl FnMut(CounterInfo<'_>)) {
        let reader = self.reader();
        if reader.is_null() {
            return;
        }
        let mut context = ForEachContext {
            f: &mut f,
            panic: None,
        };
        // SAFETY: the reader is live; the trampoline reaches `context` only during the call.
        unsafe {
            c::aeron_counters_reader_foreach_counter(
                reader,
                Some(for_each_trampoline),
                (&mut context as *mut ForEachContext<'_>).cast(),
            );
        }
        if let Some(payload) = context.panic.take() {
            std::panic::resume_unwind(payload);
        }
    }

    /// The value of counter `id`, or `None` if `id` is out of range.
    pub fn value(&self, id: i32) -> Option<i64> {
        let reader = self.reader();
        // SAFETY: the reader is live; reading the max id has no preconditions.
        if reader.is_null()
            || id < 0
            || id > unsafe { c::aeron_counters_reader_max_counter_id(reader) }
        {
            return None;
        }
        // SAFETY: `id` is in range, so the address is an aligned i64 in the mapped values
        // buffer, live while the client is; other writers use atomics.
        let addr = unsafe { c::aeron_counters_reader_addr(reader, id) };
        if addr.is_null() || addr.align_offset(std::mem::align_of::<AtomicI64>()) != 0 {
            return None;
        }
        // SAFETY: as above.
        Some(unsafe { AtomicI64::from_ptr(addr) }.load(Ordering::Acquire))
    }

    /// The id of the counter with this type id and registration id, if allocated.
    pub fn find(&self, type_id: i32, registration_id: i64) -> Option<i32> {
        let reader = self.reader();
        if reader.is_null() {
            return None;
        }
        // SAFETY: the reader is live.
        let id = unsafe {
            c::aeron_counters_reader_find_by_type_id_and_registration_id(
                reader,
                type_id,
                registration_id,
            )
        };
        (id >= 0).then_some(id)
    }
}
