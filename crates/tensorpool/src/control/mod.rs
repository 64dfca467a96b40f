//! Control-plane pieces every role and the driver client share: gating inbound messages on
//! schema id, then version, then template id ([`gate`], [`wire_template`] and [`tid`],
//! PITFALLS #5); bounded error texts that never allocate ([`ErrorText`]); and the one
//! outbound path ([`send`], [`send_bytes`], [`SendError`]) into a [`MessageSink`]: an Aeron
//! publication, or a recording sink in tests and fuzzing. The retry rule is written once, on
//! [`send`]: bounded ([`SEND_ATTEMPTS`]), never a wait.

mod gate;
mod random;
mod sink;
mod text;

pub use gate::{Gate, gate, tid, wire_template};
pub use random::random_u64;
pub use sink::{
    MessageSink, RecordingSink, SEND_ATTEMPTS, SendError, SendWindow, send, send_bytes,
};
/// Why the transport refused a message ([`SendError::Publish`]).
pub use tensorpool_aeron::PublishError;
pub use text::{ErrorText, truncate_utf8};
