//! Control-plane pieces shared by the driver, its client and (later) the other roles:
//! gating inbound messages on schema id, then version, then template id ([`gate`], PITFALLS
//! #5); bounded error texts that never allocate ([`ErrorText`]); and the outbound side
//! ([`MessageSink`]): an Aeron publication, or a recording sink in tests and fuzzing.

mod gate;
mod random;
mod sink;
mod text;

pub use gate::{Gate, gate};
pub use random::random_u64;
pub use sink::{MessageSink, RecordingSink, SendError, send, send_bytes};
pub use text::{ErrorText, truncate_utf8};
