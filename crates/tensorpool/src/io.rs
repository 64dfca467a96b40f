//! The producer's old name for the one send path: `crate::io::send`, `send_bytes`,
//! `SendError`, `wire_template` and `tid` are [`crate::control`]'s, re-exported so that the
//! producer compiles until its call sites name `crate::control` (TODO(i14): producer
//! migrates, then this module goes).

#[allow(unused_imports)]
pub(crate) use crate::control::{SendError, send, send_bytes, tid, wire_template};
