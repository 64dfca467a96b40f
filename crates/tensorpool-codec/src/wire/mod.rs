//! Schema 900 (`shm.tensorpool.control`): control, QoS and metadata messages, and the
//! structures stored in shared memory.

mod control;
mod meta;
mod shm;

pub use control::{
    ConsumerConfig, ConsumerHello, ControlResponse, FrameDescriptor, FrameProgress, PayloadPool,
    QosConsumer, QosProducer, ShmPoolAnnounce,
};
pub use meta::{
    Attribute, DataSourceAnnounce, DataSourceMeta, MetaBlobAnnounce, MetaBlobChunk,
    MetaBlobComplete,
};
pub use shm::{ShmRegionSuperblock, SlotHeader, TensorHeader, slot, superblock, tensor};

use crate::generated::driver::types as dg;
use crate::generated::merge::types as mg;
use crate::generated::wire as gw;
use crate::generated::wire::types as g;

/// Schema id of the wire schema.
pub const SCHEMA_ID: u16 = gw::FrameDescriptor::SCHEMA_ID;
/// Schema version implemented.
pub const SCHEMA_VERSION: u16 = gw::FrameDescriptor::SCHEMA_VERSION;

/// Length cap of text fields (`varAsciiEncoding`).
pub(crate) const TEXT_MAX: usize = gw::caps::varAsciiEncoding;
/// Length cap of opaque fields (`varDataEncoding`).
pub(crate) const DATA_MAX: usize = gw::caps::varDataEncoding;

wire_enum! {
    /// How a consumer wants frames delivered.
    Mode(ModeEnum): u8 in [g] { Stream, RateLimited }
}

wire_enum! {
    /// Stage of a frame being filled, in `FrameProgress`.
    FrameProgressState(FrameProgressStateEnum): u8 in [g] { Unknown, Started, Progress, Complete }
}

wire_enum! {
    /// Unit of progressive fills of a tensor.
    ProgressUnit(ProgressUnitEnum): u8 in [g] { None, Rows, Columns }
}

wire_enum! {
    /// Result code of a control request (shared by the wire and driver schemas).
    ResponseCode(ResponseCodeEnum): i32 in [g, dg] { Ok, Unsupported, InvalidParams, Rejected, InternalError }
}

wire_enum! {
    /// Clock a timestamp was taken from (shared by the wire and merge schemas).
    ClockDomain(ClockDomainEnum): u8 in [g, mg] { Monotonic, RealtimeSynced }
}

wire_enum! {
    /// What a shared-memory region holds.
    RegionType(RegionTypeEnum): i16 in [g] { HeaderRing, PayloadPool }
}

wire_enum! {
    /// Element type of a tensor (12 is unassigned).
    Dtype(DtypeEnum): i16 in [g] {
        Unknown, Uint8, Int8, Uint16, Int16, Uint32, Int32, Uint64, Int64, Float32, Float64, Boolean, Bytes, Bit,
    }
}

wire_enum! {
    /// Memory order of a tensor's dimensions.
    MajorOrder(MajorOrderEnum): i16 in [g] { Unknown, Row, Column }
}
