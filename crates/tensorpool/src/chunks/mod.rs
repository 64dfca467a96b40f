//! `BridgeFrameChunk` transport (Bridge Spec v1.1 §5), shared by every role that sends or
//! receives frames in chunks: the bridge (sender and receiver) and the consumer served
//! through a payload fallback (Wire Spec §10.1.3, §15.12). No role is named here (the role
//! shape of docs/ARCHITECTURE.md: what two roles share lives outside both).
//!
//! | file | what |
//! |---|---|
//! | `send.rs` | the sender's chunking, CRC32C and seqlock recheck ([`send_frame`]) |
//! | `receive.rs` | the receiver's per-chunk checks of §5.2 / §5.4 ([`decode_chunk`], [`check_fields`], [`ChunkDrop`]) |
//! | `assembly.rs` | the preallocated assembly buffers, out-of-order placement, duplicates, timeout ([`Assembler`]) |

pub mod assembly;
pub mod receive;
pub mod send;

pub use assembly::{Assembler, ChunkRef, Expired, Placed, Slot, SlotState};
pub use receive::{ChunkDrop, ChunkLimits, check_fields, decode_chunk};
pub use send::{MAX_CHUNKS, Plan, SendOutcome, SourceFrame, chunk_crc, plan, send_frame};
