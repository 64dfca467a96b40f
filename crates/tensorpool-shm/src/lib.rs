//! The shared-memory layer of the SHM Tensor Pool protocol (Wire Spec v1.2 §6-§9, §15).
//!
//! A producer writes tensors into a file-backed ring: a **header ring** of 256-byte slots and
//! one or more **payload pools**, each file starting with a 64-byte superblock. Every slot is
//! committed with a seqlock (`seq_commit`); consumers map the same files read-only and accept
//! a frame only if the seqlock proves it was not overwritten while they read it.
//!
//! | concern | module |
//! |---|---|
//! | region URIs (§15.22) | [`uri`] |
//! | path containment before mapping (§15.21a.5) | [`paths`] |
//! | canonical layout, permissions, atomic creation (§15.21a.3) | [`layout`] |
//! | superblock (§7.1, §15.1) | [`superblock`] |
//! | header slots and their validation (§8.1, §8.2) | [`slot`], [`tensor`] |
//! | the `seq_commit` seqlock (§8.3, §15.3) | [`seqlock`] |
//! | payload pools (§9, §15.5) | [`pool`] |
//! | mappings and mapped regions | [`mapping`], [`region`] |
//! | whole-frame write / read paths | [`frame`] |
//! | surviving a truncated file (SIGBUS) | [`sigbus`] |
//!
//! `unsafe` is confined to the system calls and the mapped-memory accessors, each block with a
//! `// SAFETY:` comment. Only the aligned 8-byte words (`seq_commit`, the superblock's
//! `activity_timestamp_ns`) are accessed as atomics; everything else is copied word-wise into
//! private buffers and decoded from there (PITFALLS #1).
#![warn(missing_docs)]

#[cfg(not(target_os = "linux"))]
compile_error!(
    "tensorpool-shm supports Linux only (O_NOFOLLOW + fstat identity, fstatfs hugetlbfs check)"
);
#[cfg(not(target_endian = "little"))]
compile_error!("the SHM layout is little-endian only (Wire Spec §15.1)");
#[cfg(not(target_has_atomic = "64"))]
compile_error!("seq_commit needs 64-bit atomics");

pub mod frame;
pub mod layout;
pub mod mapping;
pub mod paths;
pub mod pool;
pub mod region;
pub mod seqlock;
pub mod sigbus;
pub mod slot;
pub mod superblock;
pub mod tensor;
pub mod uri;

#[cfg(test)]
pub(crate) mod testutil;

pub use frame::{FrameMeta, FrameView, FrameWriter, PoolSet, WriteError, WrittenFrame};
pub use layout::{CreateOptions, CreatedEpoch, EpochSpec, FileModes, LayoutError, ShmLayout};
pub use mapping::{MapError, MapOptions};
pub use paths::{Access, AllowedBaseDirs, CheckedPath, PathError, ValidatedFile};
pub use pool::{PoolError, PoolGeometry, select_pool};
pub use region::{
    HeaderRing, Mode, OpenChecks, PayloadPool, ReadOnly, ReadWrite, RegionError, read_superblock_of,
};
pub use slot::{DropReason, SlotHeader};
pub use superblock::{ExpectedRegion, RegionType, Superblock, SuperblockError, SuperblockField};
pub use tensor::{Dtype, MajorOrder, ProgressUnit, TensorHeader, TensorLayout};
pub use uri::{RegionUri, UriError};

/// `superblock_size`: exactly 64 bytes, never derived from SBE metadata (§6).
pub const SUPERBLOCK_SIZE: usize = 64;
/// Size of one header slot (§8.1).
pub const HEADER_SLOT_BYTES: usize = 256;
/// `MAX_DIMS` of v1.2 (§8.2).
pub const MAX_DIMS: usize = tensorpool_codec::wire::tensor::MAX_DIMS;
/// Superblock magic `0x544F504C53484D31` (§7.1), stored little-endian: the file bytes read
/// `1MHSLPOT`, as the C peer writes them. (§7.1 calls it ASCII `TPOLSHM1`; the number, not the
/// name, is what peers compare.)
pub const MAGIC: u64 = tensorpool_codec::wire::superblock::MAGIC;
/// SHM layout version written and accepted (§7.1, §15.20).
pub const LAYOUT_VERSION: u32 = 1;
/// TensorHeader blockLength (184).
pub const TENSOR_HEADER_BLOCK_LENGTH: usize = tensorpool_codec::wire::tensor::LEN;
/// `headerBytes` length: message header (8) + TensorHeader blockLength (184) = 192.
pub const TENSOR_HEADER_BYTES: usize = tensorpool_codec::wire::slot::HEADER_BYTES_LEN;
/// TensorHeader templateId (52).
pub const TENSOR_HEADER_TEMPLATE_ID: u16 =
    <tensorpool_codec::wire::TensorHeader as tensorpool_codec::Message>::TEMPLATE_ID;
/// Wire schema id (900).
pub const WIRE_SCHEMA_ID: u16 = tensorpool_codec::wire::SCHEMA_ID;
/// Wire schema version (1).
pub const WIRE_SCHEMA_VERSION: u16 = tensorpool_codec::wire::SCHEMA_VERSION;

// The normative constants of §6 / §8.1 must agree with the schema-generated layout.
const _: () = assert!(SUPERBLOCK_SIZE == tensorpool_codec::wire::superblock::LEN);
const _: () = assert!(HEADER_SLOT_BYTES == tensorpool_codec::wire::slot::LEN);
const _: () = assert!(MAGIC == 0x544F_504C_5348_4D31);
const _: () = assert!(tensorpool_codec::wire::slot::SEQ_COMMIT_OFFSET == 0);
