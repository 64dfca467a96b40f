//! Publications: encode straight into a `try_claim` buffer, or `offer` a byte slice.

use std::sync::Arc;

use rusteron_client::bindings as c;

use crate::client::ClientInner;
use crate::ffi::owned_str;
use crate::{ClaimError, PublishError};

/// Which C publication a [`Publication`] wraps.
pub(crate) enum Kind {
    /// `aeron_publication_t`: thread-safe in C, used here through `&mut self` like the other.
    Concurrent(*mut c::aeron_publication_t),
    /// `aeron_exclusive_publication_t`: one writer, no atomics on the claim path.
    Exclusive(*mut c::aeron_exclusive_publication_t),
}

/// Which path [`Publication::publish`] took.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PublishPath {
    /// Encoded straight into the term buffer (`try_claim` + commit).
    Claim,
    /// Encoded into the publication's scratch buffer, then copied in by `offer` (messages
    /// longer than [`Publication::max_claim_len`]; Aeron fragments them).
    Offer,
}

/// A message [`Publication::publish`] sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Published {
    /// The stream position after the message.
    pub position: i64,
    /// How it was sent.
    pub path: PublishPath,
}

/// An Aeron publication (concurrent or exclusive). Closed on drop; keeps its client alive.
pub struct Publication {
    kind: Kind,
    closed: bool,
    channel: String,
    stream_id: i32,
    session_id: i32,
    registration_id: i64,
    max_claim_len: usize,
    max_message_len: usize,
    term_buffer_length: usize,
    /// Reusable buffer for `publish` of messages longer than the claim limit; grows only when a
    /// longer message comes.
    scratch: Vec<u8>,
    _client: Arc<ClientInner>,
}

// SAFETY: the C publication may be used from any thread; every use goes through `&mut self`
// or reads that Aeron makes thread-safe (position, connection flag), and the client it belongs
// to is kept alive by the Arc.
unsafe impl Send for Publication {}

impl std::fmt::Debug for Publication {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publication")
            .field("channel", &self.channel)
            .field("stream_id", &self.stream_id)
            .field("session_id", &self.session_id)
            .field("exclusive", &self.is_exclusive())
            .field("closed", &self.closed)
            .finish()
    }
}

/// Maps an Aeron offer/claim result to a position or a typed error.
fn position_or_error(result: i64) -> Result<i64, PublishError> {
    if result >= 0 {
        return Ok(result);
    }
    Err(match result {
        r if r == i64::from(c::AERON_PUBLICATION_NOT_CONNECTED) => PublishError::NotConnected,
        r if r == i64::from(c::AERON_PUBLICATION_BACK_PRESSURED) => PublishError::BackPressured,
        r if r == i64::from(c::AERON_PUBLICATION_ADMIN_ACTION) => PublishError::AdminAction,
        r if r == i64::from(c::AERON_PUBLICATION_CLOSED) => PublishError::Closed,
        r if r == i64::from(c::AERON_PUBLICATION_MAX_POSITION_EXCEEDED) => {
            PublishError::MaxPositionExceeded
        }
        r => PublishError::Failed { result: r },
    })
}

/// Aborts a claim unless disarmed, so a panicking fill releases the term slot at once.
struct ClaimGuard {
    claim: c::aeron_buffer_claim_t,
    armed: bool,
}

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        if self.armed {
            // SAFETY: the claim was granted by try_claim and neither committed nor aborted.
            unsafe { c::aeron_buffer_claim_abort(&mut self.claim) };
        }
    }
}

impl Publication {
    pub(crate) fn new(client: Arc<ClientInner>, kind: Kind) -> Self {
        // SAFETY: all-zero is a valid constants struct (NULL channel, zero numbers).
        let mut constants: c::aeron_publication_constants_t = unsafe { std::mem::zeroed() };
        // SAFETY: the publication was just registered and is live; `constants` is writable.
        let rc = unsafe {
            match kind {
                Kind::Concurrent(p) => c::aeron_publication_constants(p, &mut constants),
                Kind::Exclusive(p) => c::aeron_exclusive_publication_constants(p, &mut constants),
            }
        };
        if rc < 0 {
            tracing::warn!("aeron publication constants unavailable");
        }
        // SAFETY: the channel string belongs to the live publication; it is copied at once.
        let channel = unsafe { owned_str(constants.channel) };
        Self {
            kind,
            closed: false,
            channel,
            stream_id: constants.stream_id,
            session_id: constants.session_id,
            registration_id: constants.registration_id,
            max_claim_len: constants.max_payload_length,
            max_message_len: constants.max_message_length,
            term_buffer_length: constants.term_buffer_length,
            scratch: Vec::new(),
            _client: client,
        }
    }

    /// Claims `len` bytes in the term buffer, hands them to `fill` to encode into, and commits
    /// them. If `fill` fails (or panics) the claim is aborted and nothing is published.
    /// `len` must be at most [`max_claim_len`](Self::max_claim_len). Returns the new position.
    pub fn try_claim<E>(
        &mut self,
        len: usize,
        fill: impl FnOnce(&mut [u8]) -> Result<(), E>,
    ) -> Result<i64, ClaimError<E>> {
        if self.closed {
            return Err(PublishError::Closed.into());
        }
        if len > self.max_claim_len {
            return Err(PublishError::TooLong {
                len,
                max: self.max_claim_len,
            }
            .into());
        }
        let mut guard = ClaimGuard {
            // SAFETY: all-zero is a valid empty claim (NULL pointers, zero length).
            claim: unsafe { std::mem::zeroed() },
            armed: false,
        };
        // SAFETY: the publication is live (not closed); `claim` is writable.
        let result = unsafe {
            match self.kind {
                Kind::Concurrent(p) => c::aeron_publication_try_claim(p, len, &mut guard.claim),
                Kind::Exclusive(p) => {
                    c::aeron_exclusive_publication_try_claim(p, len, &mut guard.claim)
                }
            }
        };
        let position = position_or_error(result)?;
        guard.armed = true;
        if guard.claim.data.is_null() || guard.claim.length < len {
            return Err(PublishError::Failed { result }.into());
        }
        // SAFETY: a successful claim grants exclusive use of `length` bytes at `data` in the
        // mapped term buffer until commit or abort; the slice does not outlive this call.
        let buffer = unsafe { std::slice::from_raw_parts_mut(guard.claim.data, len) };
        match fill(buffer) {
            Ok(()) => {
                guard.armed = false;
                // SAFETY: the claim is granted, filled and not yet committed or aborted.
                unsafe { c::aeron_buffer_claim_commit(&mut guard.claim) };
                Ok(position)
            }
            Err(e) => Err(ClaimError::Fill(e)),
        }
    }

    /// Copies `message` into the stream (fragmenting it when longer than
    /// [`max_claim_len`](Self::max_claim_len)). Returns the new position.
    pub fn offer(&mut self, message: &[u8]) -> Result<i64, PublishError> {
        if self.closed {
            return Err(PublishError::Closed);
        }
        if message.len() > self.max_message_len {
            return Err(PublishError::TooLong {
                len: message.len(),
                max: self.max_message_len,
            });
        }
        // SAFETY: the publication is live; Aeron copies `message` during the call and takes
        // no reserved-value supplier.
        let result = unsafe {
            match self.kind {
                Kind::Concurrent(p) => c::aeron_publication_offer(
                    p,
                    message.as_ptr(),
                    message.len(),
                    None,
                    std::ptr::null_mut(),
                ),
                Kind::Exclusive(p) => c::aeron_exclusive_publication_offer(
                    p,
                    message.as_ptr(),
                    message.len(),
                    None,
                    std::ptr::null_mut(),
                ),
            }
        };
        position_or_error(result)
    }

    /// Publishes a `len`-byte message that `fill` encodes: into the claim when it fits
    /// ([`PublishPath::Claim`]), else into a reusable scratch buffer that is then offered
    /// ([`PublishPath::Offer`]). The scratch buffer is allocated on first use and grows only
    /// for a longer message than any before.
    pub fn publish<E>(
        &mut self,
        len: usize,
        fill: impl FnOnce(&mut [u8]) -> Result<(), E>,
    ) -> Result<Published, ClaimError<E>> {
        if len <= self.max_claim_len {
            let position = self.try_claim(len, fill)?;
            return Ok(Published {
                position,
                path: PublishPath::Claim,
            });
        }
        if self.closed {
            return Err(PublishError::Closed.into());
        }
        if len > self.max_message_len {
            return Err(PublishError::TooLong {
                len,
                max: self.max_message_len,
            }
            .into());
        }
        if self.scratch.len() < len {
            self.scratch.resize(len, 0);
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        let result = match fill(&mut scratch[..len]) {
            Ok(()) => self.offer(&scratch[..len]).map_err(ClaimError::Publish),
            Err(e) => Err(ClaimError::Fill(e)),
        };
        self.scratch = scratch;
        result.map(|position| Published {
            position,
            path: PublishPath::Offer,
        })
    }

    /// The longest message [`try_claim`](Self::try_claim) takes: Aeron's max payload length
    /// (the MTU less the frame header).
    pub fn max_claim_len(&self) -> usize {
        self.max_claim_len
    }

    /// The longest message [`offer`](Self::offer) takes: Aeron's max message length.
    pub fn max_message_len(&self) -> usize {
        self.max_message_len
    }

    /// Whether a subscriber is connected.
    pub fn is_connected(&self) -> bool {
        if self.closed {
            return false;
        }
        // SAFETY: the publication is live (not closed by us).
        unsafe {
            match self.kind {
                Kind::Concurrent(p) => c::aeron_publication_is_connected(p),
                Kind::Exclusive(p) => c::aeron_exclusive_publication_is_connected(p),
            }
        }
    }

    /// Whether the publication is closed (by [`close`](Self::close) or by its client).
    pub fn is_closed(&self) -> bool {
        if self.closed {
            return true;
        }
        // SAFETY: the publication is live (not closed by us).
        unsafe {
            match self.kind {
                Kind::Concurrent(p) => c::aeron_publication_is_closed(p),
                Kind::Exclusive(p) => c::aeron_exclusive_publication_is_closed(p),
            }
        }
    }

    /// The current stream position, or [`PublishError::Closed`].
    pub fn position(&self) -> Result<i64, PublishError> {
        if self.closed {
            return Err(PublishError::Closed);
        }
        // SAFETY: the publication is live (not closed by us).
        let result = unsafe {
            match self.kind {
                Kind::Concurrent(p) => c::aeron_publication_position(p),
                Kind::Exclusive(p) => c::aeron_exclusive_publication_position(p),
            }
        };
        position_or_error(result)
    }

    /// The position the publication may reach before back pressure (its publisher limit,
    /// moved by the driver as subscribers and flow control progress), or
    /// [`PublishError::Closed`].
    pub fn position_limit(&self) -> Result<i64, PublishError> {
        if self.closed {
            return Err(PublishError::Closed);
        }
        // SAFETY: the publication is live (not closed by us).
        let result = unsafe {
            match self.kind {
                Kind::Concurrent(p) => c::aeron_publication_position_limit(p),
                Kind::Exclusive(p) => c::aeron_exclusive_publication_position_limit(p),
            }
        };
        position_or_error(result)
    }

    /// Bytes the publication can take now before it reports back pressure: its
    /// [`position_limit`](Self::position_limit) less its [`position`](Self::position), 0 when
    /// past it (or closed).
    pub fn available_window(&self) -> usize {
        match (self.position(), self.position_limit()) {
            (Ok(pos), Ok(limit)) => usize::try_from(limit.saturating_sub(pos)).unwrap_or(0),
            _ => 0,
        }
    }

    /// The term buffer length of the publication's log.
    pub fn term_buffer_length(&self) -> usize {
        self.term_buffer_length
    }

    /// The most bytes the publication's window can ever hold: Aeron's producer window is at
    /// most half a term (less when the driver sets a smaller publication window).
    pub fn max_window(&self) -> usize {
        self.term_buffer_length / 2
    }

    /// Bytes a `len`-byte message takes in the log: each fragment (of at most
    /// [`max_claim_len`](Self::max_claim_len) bytes) with its 32-byte data header, aligned to
    /// 32 bytes.
    pub fn framed_len(&self, len: usize) -> usize {
        const HEADER: usize = 32; // AERON_DATA_HEADER_LENGTH
        const ALIGN: usize = 32;
        let frame = |n: usize| (n + HEADER).div_ceil(ALIGN) * ALIGN;
        let mpl = self.max_claim_len.max(1);
        let (full, rest) = (len / mpl, len % mpl);
        let last = if rest > 0 || full == 0 {
            frame(rest)
        } else {
            0
        };
        full * frame(mpl) + last
    }

    /// The channel, as the driver registered it.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// The stream id.
    pub fn stream_id(&self) -> i32 {
        self.stream_id
    }

    /// The session id.
    pub fn session_id(&self) -> i32 {
        self.session_id
    }

    /// The registration id the driver gave this publication.
    pub fn registration_id(&self) -> i64 {
        self.registration_id
    }

    /// Whether this is an exclusive publication.
    pub fn is_exclusive(&self) -> bool {
        matches!(self.kind, Kind::Exclusive(_))
    }

    /// Closes the publication now; later calls return [`PublishError::Closed`]. Idempotent.
    pub fn close(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        // SAFETY: the publication is live and closed once (the flag guards every later use);
        // Aeron frees it on the conductor thread.
        unsafe {
            match self.kind {
                Kind::Concurrent(p) => {
                    c::aeron_publication_close(p, None, std::ptr::null_mut());
                }
                Kind::Exclusive(p) => {
                    c::aeron_exclusive_publication_close(p, None, std::ptr::null_mut());
                }
            }
        }
    }
}

impl Drop for Publication {
    fn drop(&mut self) {
        self.close();
    }
}
