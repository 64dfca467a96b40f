//! The one outbound path of every role: [`send`] (and [`send_bytes`] for a message encoded
//! earlier) into a [`MessageSink`], failing with one [`SendError`].
//!
//! Every role's logic is written against [`MessageSink`]: the Aeron [`Publication`]
//! implements it (encoding straight into the publication's claim, or its reusable offer
//! buffer above the claim limit), the [`RecordingSink`] keeps the bytes for tests and
//! fuzzing. Nothing here allocates in steady state.
//!
//! # The retry rule
//!
//! A send makes at most [`SEND_ATTEMPTS`] attempts, one after the other with nothing in
//! between: it tries again only while the transport reports back pressure or an admin action
//! (a term rotation), both of which a later attempt can clear. Nobody subscribed
//! ([`SendError::is_not_connected`]), a closed publication, an exhausted position and an
//! encoding error return at once. A send never sleeps, spins on a clock or waits for a
//! subscriber: a frame descriptor in particular never waits (Wire Spec §1, §15.4); the
//! caller counts what was refused (`is_back_pressured`, `is_not_connected`) and moves on.

use tensorpool_aeron::{ClaimError, Publication, PublishError};
use tensorpool_codec::{EncodeError, Message};

/// Attempts a [`send`] makes at most (see the module docs: back pressure and admin actions
/// only; never a wait).
pub const SEND_ATTEMPTS: usize = 4;

/// Why a message was not sent. Small and `Copy`: callers count it, never allocate.
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
    /// Whether trying again later can succeed (back pressure, admin action, not yet
    /// connected).
    pub fn is_retryable(&self) -> bool {
        matches!(self, SendError::Publish(e) if e.is_retryable())
    }

    /// True when nobody subscribes: not a failure for a broadcast.
    pub fn is_not_connected(&self) -> bool {
        matches!(self, SendError::Publish(PublishError::NotConnected))
    }

    /// True when the subscribers have not kept up (or a term rotation was in progress):
    /// what [`send`] retries, [`SEND_ATTEMPTS`] times at most.
    pub fn is_back_pressured(&self) -> bool {
        matches!(
            self,
            SendError::Publish(PublishError::BackPressured | PublishError::AdminAction)
        )
    }
}

/// What a transport can take before it refuses for back pressure (see
/// [`MessageSink::send_window`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendWindow {
    /// Bytes (framing included, see [`MessageSink::framed_len`]) it takes now.
    pub available: usize,
    /// The most it can ever take at once: a batch larger than this can never be known to
    /// fit, so a caller just tries it.
    pub capacity: usize,
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

    /// What the sink can take now without back pressure; `None` (the default) when it
    /// cannot tell, and callers then just try.
    fn send_window(&self) -> Option<SendWindow> {
        None
    }

    /// Bytes a `len`-byte message takes in the [`send_window`](Self::send_window) (with
    /// the transport's headers and alignment); `len` by default.
    fn framed_len(&self, len: usize) -> usize {
        len
    }
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

    /// Its publisher limit less its position; at most half a term.
    fn send_window(&self) -> Option<SendWindow> {
        Some(SendWindow {
            available: self.available_window(),
            capacity: self.max_window(),
        })
    }

    fn framed_len(&self, len: usize) -> usize {
        Publication::framed_len(self, len)
    }
}

/// Encodes `msg` into `sink` (claim, or offer for a long message), under the retry rule of
/// the module docs: back pressure or an admin action is tried again at once, at most
/// [`SEND_ATTEMPTS`] attempts in all; anything else is returned. Never waits.
pub fn send<'a, M: Message<'a>, S: MessageSink + ?Sized>(
    sink: &mut S,
    msg: &M,
) -> Result<(), SendError> {
    let len = msg.encoded_len();
    attempts(|| sink.publish(len, &mut |buf| msg.encode(buf).map(|_| ())))
}

/// Sends `bytes`, a message encoded earlier, under the same rule as [`send`].
pub fn send_bytes<S: MessageSink + ?Sized>(sink: &mut S, bytes: &[u8]) -> Result<(), SendError> {
    attempts(|| {
        sink.publish(bytes.len(), &mut |buf| {
            buf.copy_from_slice(bytes);
            Ok(())
        })
    })
}

/// The retry rule, once for both.
fn attempts(mut attempt: impl FnMut() -> Result<(), SendError>) -> Result<(), SendError> {
    let mut result = attempt();
    for _ in 1..SEND_ATTEMPTS {
        match result {
            Err(e) if e.is_back_pressured() => result = attempt(),
            _ => break,
        }
    }
    result
}

/// A sink that keeps every message (for tests and fuzzing). Its buffers are reused: after
/// [`RecordingSink::clear`], recording messages no longer than before allocates nothing.
#[derive(Debug, Default)]
pub struct RecordingSink {
    messages: Vec<Vec<u8>>,
    len: usize,
    /// When set, every publish fails with this error.
    pub fail_with: Option<PublishError>,
    /// What [`MessageSink::send_window`] reports (`None`: cannot tell); publishing does
    /// not change it.
    pub window: Option<SendWindow>,
}

impl RecordingSink {
    /// A sink with room for `messages` messages of up to `bytes` bytes each.
    pub fn with_capacity(messages: usize, bytes: usize) -> Self {
        Self {
            messages: (0..messages).map(|_| Vec::with_capacity(bytes)).collect(),
            len: 0,
            fail_with: None,
            window: None,
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

    fn send_window(&self) -> Option<SendWindow> {
        self.window
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fails with the given errors, in order, then succeeds; counts the attempts.
    struct Scripted {
        errors: Vec<PublishError>,
        attempts: usize,
    }

    impl MessageSink for Scripted {
        fn publish(
            &mut self,
            len: usize,
            fill: &mut dyn FnMut(&mut [u8]) -> Result<(), EncodeError>,
        ) -> Result<(), SendError> {
            self.attempts += 1;
            if self.attempts <= self.errors.len() {
                return Err(SendError::Publish(self.errors[self.attempts - 1]));
            }
            let mut buf = vec![0; len];
            fill(&mut buf).map_err(SendError::Encode)
        }

        fn is_connected(&self) -> bool {
            true
        }
    }

    fn sink(errors: &[PublishError]) -> Scripted {
        Scripted {
            errors: errors.to_vec(),
            attempts: 0,
        }
    }

    #[test]
    fn back_pressure_and_admin_actions_are_retried_a_bounded_number_of_times() {
        use PublishError::{AdminAction, BackPressured};
        let mut s = sink(&[AdminAction, BackPressured, BackPressured]);
        assert_eq!(send_bytes(&mut s, &[1, 2, 3]), Ok(()));
        assert_eq!(s.attempts, 4);
        let mut s = sink(&[BackPressured; 10]);
        let e = send_bytes(&mut s, &[1]).unwrap_err();
        assert!(e.is_back_pressured() && e.is_retryable());
        assert_eq!(
            s.attempts, SEND_ATTEMPTS,
            "bounded: never waits for the subscriber"
        );
    }

    #[test]
    fn not_connected_closed_and_encoding_errors_return_at_once() {
        for err in [PublishError::NotConnected, PublishError::Closed] {
            let mut s = sink(&[err; 10]);
            assert_eq!(send_bytes(&mut s, &[1]), Err(SendError::Publish(err)));
            assert_eq!(s.attempts, 1, "{err:?}");
        }
        let mut s = sink(&[PublishError::NotConnected]);
        assert!(send_bytes(&mut s, &[1]).unwrap_err().is_not_connected());
        let mut tries = 0;
        let encode = SendError::Encode(EncodeError::BufferTooSmall { need: 2, have: 1 });
        assert_eq!(
            attempts(|| {
                tries += 1;
                Err(encode)
            }),
            Err(encode)
        );
        assert_eq!(tries, 1, "an encoding error is not retried");
    }

    #[test]
    fn a_publication_and_a_dyn_sink_take_the_same_path() {
        let mut r = RecordingSink::with_capacity(2, 64);
        let dynamic: &mut dyn MessageSink = &mut r;
        send_bytes(dynamic, &[7; 8]).unwrap();
        assert_eq!(r.messages().next(), Some(&[7u8; 8][..]));
    }
}
