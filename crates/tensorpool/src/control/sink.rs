//! The outbound side of a control plane: something a message can be encoded into.
//!
//! The agent code is written against [`MessageSink`]; the Aeron implementation encodes into
//! the publication's claim (or its reusable offer buffer above the claim limit), the
//! [`RecordingSink`] keeps the bytes for tests and fuzzing.

use tensorpool_aeron::{ClaimError, Publication, PublishError};
use tensorpool_codec::{EncodeError, Message};

/// Why a message was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The transport refused it (not connected, back-pressured, closed, ...).
    #[error(transparent)]
    Publish(#[from] PublishError),
    /// The message could not be encoded.
    #[error("encoding failed: {0}")]
    Encode(#[from] EncodeError),
}

impl SendError {
    /// Whether trying again can succeed (back-pressure, admin action, not yet connected).
    pub fn is_retryable(&self) -> bool {
        matches!(self, SendError::Publish(e) if e.is_retryable())
    }

    /// True when nobody subscribes: not a failure for a broadcast.
    pub fn is_not_connected(self) -> bool {
        matches!(self, SendError::Publish(PublishError::NotConnected))
    }

    /// True when the subscribers have not kept up (or a term rotation was in progress).
    pub fn is_back_pressured(self) -> bool {
        matches!(
            self,
            SendError::Publish(PublishError::BackPressured | PublishError::AdminAction)
        )
    }
}

/// Something messages are published to.
pub trait MessageSink {
    /// Publishes one `len`-byte message that `fill` encodes.
    fn publish(
        &mut self,
        len: usize,
        fill: &mut dyn FnMut(&mut [u8]) -> Result<(), EncodeError>,
    ) -> Result<(), SendError>;

    /// Whether a subscriber is connected (false for a sink that cannot tell).
    fn is_connected(&self) -> bool;
}

impl MessageSink for Publication {
    fn publish(
        &mut self,
        len: usize,
        fill: &mut dyn FnMut(&mut [u8]) -> Result<(), EncodeError>,
    ) -> Result<(), SendError> {
        match Publication::publish(self, len, fill) {
            Ok(_) => Ok(()),
            Err(ClaimError::Publish(e)) => Err(SendError::Publish(e)),
            Err(ClaimError::Fill(e)) => Err(SendError::Encode(e)),
        }
    }

    fn is_connected(&self) -> bool {
        Publication::is_connected(self)
    }
}

/// Encodes `msg` into `sink`, retrying a few times on back-pressure (never blocking).
pub fn send<'a, M: Message<'a>>(sink: &mut dyn MessageSink, msg: &M) -> Result<(), SendError> {
    let len = msg.encoded_len();
    let mut last = SendError::Publish(PublishError::BackPressured);
    for _ in 0..4 {
        match sink.publish(len, &mut |buf| msg.encode(buf).map(|_| ())) {
            Ok(()) => return Ok(()),
            Err(e)
                if e.is_retryable()
                    && !matches!(e, SendError::Publish(PublishError::NotConnected)) =>
            {
                last = e
            }
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

/// Sends bytes encoded earlier (a pre-encoded message), with the retries of [`send`].
pub fn send_bytes(sink: &mut dyn MessageSink, bytes: &[u8]) -> Result<(), SendError> {
    let mut last = SendError::Publish(PublishError::BackPressured);
    for _ in 0..4 {
        let fill = &mut |buf: &mut [u8]| {
            buf.copy_from_slice(bytes);
            Ok(())
        };
        match sink.publish(bytes.len(), fill) {
            Ok(()) => return Ok(()),
            Err(e)
                if e.is_retryable()
                    && !matches!(e, SendError::Publish(PublishError::NotConnected)) =>
            {
                last = e
            }
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

/// A sink that keeps every message (for tests and fuzzing). Its buffers are reused: after
/// [`RecordingSink::clear`], recording messages no longer than before allocates nothing.
#[derive(Debug, Default)]
pub struct RecordingSink {
    messages: Vec<Vec<u8>>,
    len: usize,
    /// When set, every publish fails with this error.
    pub fail_with: Option<PublishError>,
}

impl RecordingSink {
    /// A sink with room for `messages` messages of up to `bytes` bytes each.
    pub fn with_capacity(messages: usize, bytes: usize) -> Self {
        Self {
            messages: (0..messages).map(|_| Vec::with_capacity(bytes)).collect(),
            len: 0,
            fail_with: None,
        }
    }

    /// The messages recorded since the last clear.
    pub fn messages(&self) -> impl Iterator<Item = &[u8]> {
        self.messages[..self.len].iter().map(Vec::as_slice)
    }

    /// Number of messages recorded.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Forgets the messages, keeping the buffers.
    pub fn clear(&mut self) {
        self.len = 0;
    }
}

impl MessageSink for RecordingSink {
    fn publish(
        &mut self,
        len: usize,
        fill: &mut dyn FnMut(&mut [u8]) -> Result<(), EncodeError>,
    ) -> Result<(), SendError> {
        if let Some(e) = self.fail_with {
            return Err(SendError::Publish(e));
        }
        if self.len == self.messages.len() {
            self.messages.push(Vec::new());
        }
        let buf = &mut self.messages[self.len];
        buf.clear();
        buf.resize(len, 0);
        fill(buf)?;
        self.len += 1;
        Ok(())
    }

    fn is_connected(&self) -> bool {
        self.fail_with.is_none()
    }
}
