//! SBE codecs of the SHM Tensor Pool protocol.
//!
//! The wire layout is generated at build time by `sbe_gen` from the schemas in `schemas/`
//! (never committed); this crate wraps it in a small typed facade so that no generated type
//! appears in its API:
//!
//! * one plain struct per message, with `pub` fields: integers, `Option<T>` for optional
//!   fields (mapped from each schema's null value, so `Some(null)` reads back as `None`),
//!   Rust enums, [`Bytes`] for var data and [`Group`] for repeating groups;
//! * the [`Message`] trait: exact [`Message::encoded_len`], in-place [`Message::encode`]
//!   into a caller's buffer, and [`Message::decode`] that checks schema id, template id and
//!   version and honours the sender's blockLength. Decoding never panics and never
//!   allocates; encoding never panics;
//! * the shared-memory structures that have no message header
//!   ([`wire::ShmRegionSuperblock`], [`wire::SlotHeader`]) and their byte offsets;
//! * [`AnyMessage`], which decodes any message of any schema by its header.
//!
//! ```
//! use tensorpool_codec::{Message, wire::FrameDescriptor};
//!
//! let fd = FrameDescriptor {
//!     stream_id: 10_000,
//!     epoch: 7,
//!     seq: 42,
//!     timestamp_ns: None,
//!     meta_version: Some(1),
//!     trace_id: None,
//! };
//! let mut buf = [0u8; 64];
//! let n = fd.encode(&mut buf)?;
//! assert_eq!(n, fd.encoded_len());
//! assert_eq!(FrameDescriptor::decode(&buf[..n])?, fd);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Modules by schema: [`wire`] (900), [`driver`] (901), [`bridge`] (902), [`merge`] (903),
//! [`tracelink`] (904), [`discovery`] (910), and our own [`admin`] (990).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[macro_use]
mod macros;

mod any;
mod bytes;
mod cursor;
mod error;
mod group;
mod header;
mod message;
#[cfg(feature = "serde")]
mod serde_impls;

pub mod admin;
pub mod bridge;
pub mod discovery;
pub mod driver;
pub mod merge;
pub mod tracelink;
pub mod wire;

pub use any::AnyMessage;
pub use bytes::Bytes;
pub use error::{DecodeError, EncodeError};
pub use group::{EncodedGroup, Entry, Group, GroupIter, WireGroup};
pub use header::{HEADER_LEN, MessageHeader, peek_header};
pub use message::Message;

/// Longest var-data value the schemas allow (`maxValue` of the var-data length, 2^30).
pub const VAR_DATA_MAX_LEN: usize = generated::wire::caps::varDataEncoding;

/// The code sbe_gen generates from `schemas/` (see build.rs). Private: the facade above is
/// the only API.
#[allow(warnings, clippy::all, clippy::pedantic, missing_docs, unreachable_pub)]
mod generated {
    include!(concat!(env!("OUT_DIR"), "/sbe_gen.rs"));
}
