//! Public tensor types: [`Dtype`], [`MajorOrder`], [`TensorSpec`] (what a producer claims) and
//! [`Frame`] (the borrowed view a consumer's handler gets).
//!
//! # The view contract
//!
//! A [`Frame`] borrows the producer's shared memory in place (zero copy). The producer never
//! waits for consumers and may overwrite the slot at any moment, so:
//!
//! * the header (seq, shape, strides, dtype, timestamps) was checked under the seqlock before
//!   the handler runs and is a private, consistent copy;
//! * the payload ([`Frame::bytes`]) is read in place: it is trustworthy only once
//!   [`Frame::recheck`] returns `Ok` **after** you read it. Compute what you need (a checksum,
//!   a copy, a reduction), then `recheck()`; on `Err` discard the result;
//! * after the handler returns, the consumer rechecks the slot itself: a frame overwritten
//!   while the handler read it is counted as `drops_late` and never counted as accepted;
//! * [`Frame::copy_to`] copies the payload and rechecks in one call.
//!
//! The view is valid only inside the handler (its lifetime ends when the handler returns).
//!
//! A consumer in FALLBACK served through a bridge (docs/roles.md, "Payload fallback") hands
//! the same [`Frame`] to the same handler, but its bytes are the consumer's own assembly
//! buffer, reassembled from `BridgeFrameChunk`s and checked (CRC32C, the header block): a
//! private copy nobody overwrites, so [`Frame::recheck`] is always `Ok` there, and
//! [`Frame::publish_timestamp_ns`] is `None` (no descriptor). The same code serves both.

use std::fmt;
use std::str::FromStr;

use tensorpool_codec::wire;
use tensorpool_shm::tensor::{self, ProgressUnit, TensorHeader};
use tensorpool_shm::{DropReason, FrameView, MAX_DIMS};

/// Element type of a tensor (Wire Spec §15.8). Sizes: BOOLEAN, BYTES and BIT take one byte
/// per element (a BIT tensor stores one bit per byte in v1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Dtype {
    Uint8,
    Int8,
    Uint16,
    Int16,
    Uint32,
    Int32,
    Uint64,
    Int64,
    Float32,
    Float64,
    Boolean,
    Bytes,
    Bit,
}

impl Dtype {
    /// Every dtype.
    pub const ALL: [Dtype; 13] = [
        Dtype::Uint8,
        Dtype::Int8,
        Dtype::Uint16,
        Dtype::Int16,
        Dtype::Uint32,
        Dtype::Int32,
        Dtype::Uint64,
        Dtype::Int64,
        Dtype::Float32,
        Dtype::Float64,
        Dtype::Boolean,
        Dtype::Bytes,
        Dtype::Bit,
    ];

    /// Bytes per element.
    pub const fn size_bytes(self) -> usize {
        match self {
            Dtype::Uint8 | Dtype::Int8 | Dtype::Boolean | Dtype::Bytes | Dtype::Bit => 1,
            Dtype::Uint16 | Dtype::Int16 => 2,
            Dtype::Uint32 | Dtype::Int32 | Dtype::Float32 => 4,
            Dtype::Uint64 | Dtype::Int64 | Dtype::Float64 => 8,
        }
    }

    /// Short name (`u8`, `i16`, `f32`, `bool`, `bytes`, `bit`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            Dtype::Uint8 => "u8",
            Dtype::Int8 => "i8",
            Dtype::Uint16 => "u16",
            Dtype::Int16 => "i16",
            Dtype::Uint32 => "u32",
            Dtype::Int32 => "i32",
            Dtype::Uint64 => "u64",
            Dtype::Int64 => "i64",
            Dtype::Float32 => "f32",
            Dtype::Float64 => "f64",
            Dtype::Boolean => "bool",
            Dtype::Bytes => "bytes",
            Dtype::Bit => "bit",
        }
    }

    pub(crate) fn to_wire(self) -> wire::Dtype {
        match self {
            Dtype::Uint8 => wire::Dtype::Uint8,
            Dtype::Int8 => wire::Dtype::Int8,
            Dtype::Uint16 => wire::Dtype::Uint16,
            Dtype::Int16 => wire::Dtype::Int16,
            Dtype::Uint32 => wire::Dtype::Uint32,
            Dtype::Int32 => wire::Dtype::Int32,
            Dtype::Uint64 => wire::Dtype::Uint64,
            Dtype::Int64 => wire::Dtype::Int64,
            Dtype::Float32 => wire::Dtype::Float32,
            Dtype::Float64 => wire::Dtype::Float64,
            Dtype::Boolean => wire::Dtype::Boolean,
            Dtype::Bytes => wire::Dtype::Bytes,
            Dtype::Bit => wire::Dtype::Bit,
        }
    }

    pub(crate) fn from_wire(d: wire::Dtype) -> Option<Self> {
        Dtype::ALL.into_iter().find(|x| x.to_wire() == d)
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A dtype name was not recognised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown dtype `{0}`: expected u8, i8, u16, i16, u32, i32, u64, i64, f32, f64, bool, bytes or bit"
)]
pub struct ParseDtypeError(pub String);

impl FromStr for Dtype {
    type Err = ParseDtypeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let l = s.trim().to_ascii_lowercase();
        let alias = match l.as_str() {
            "uint8" => "u8",
            "int8" => "i8",
            "uint16" => "u16",
            "int16" => "i16",
            "uint32" => "u32",
            "int32" => "i32",
            "uint64" => "u64",
            "int64" => "i64",
            "float32" | "float" => "f32",
            "float64" | "double" => "f64",
            "boolean" => "bool",
            other => other,
        };
        Dtype::ALL
            .into_iter()
            .find(|d| d.name() == alias)
            .ok_or_else(|| ParseDtypeError(s.to_owned()))
    }
}

/// Memory order of a tensor's dimensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MajorOrder {
    /// Row-major (C order): the last dimension varies fastest.
    #[default]
    Row,
    /// Column-major (Fortran order): the first dimension varies fastest.
    Column,
}

impl MajorOrder {
    pub(crate) fn to_wire(self) -> wire::MajorOrder {
        match self {
            MajorOrder::Row => wire::MajorOrder::Row,
            MajorOrder::Column => wire::MajorOrder::Column,
        }
    }
}

/// Why a [`TensorSpec`] is invalid. Every variant names what was wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// The shape has no dimension or more than 8.
    #[error("a tensor has 1 to 8 dimensions; {0} given")]
    Ndims(usize),
    /// `strides` and `shape` differ in length.
    #[error("{strides} strides given for {ndims} dimensions")]
    StridesLen {
        /// Number of dimensions.
        ndims: usize,
        /// Number of strides.
        strides: usize,
    },
    /// A dimension or stride does not fit the header's signed 32-bit fields.
    #[error("dimension or stride {0} exceeds 2^31 - 1")]
    TooLarge(usize),
    /// A dimension is 0 (a `{480, 0}` shape holds no element; use a 1-element dimension or
    /// an empty payload through `Producer::claim_len`).
    #[error("dimension {index} is 0: every dimension of a tensor spec is at least 1")]
    ZeroDim {
        /// Which dimension.
        index: usize,
    },
    /// The header would be rejected by consumers (Wire Spec §8.2).
    #[error("invalid tensor header: {0}")]
    Header(DropReason),
}

/// What a producer claims a slot for: dtype, shape, optional strides (0 = contiguous), major
/// order and optional progress unit. Validated once when built; claiming reuses it.
///
/// ```
/// use tensorpool::frame::{Dtype, TensorSpec};
/// let spec = TensorSpec::new(Dtype::Uint16, &[480, 640])?;
/// assert_eq!(spec.len_bytes(), 480 * 640 * 2);
/// # Ok::<(), tensorpool::frame::SpecError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct TensorSpec {
    header: TensorHeader,
    len_bytes: usize,
}

fn to_i32(v: usize) -> Result<i32, SpecError> {
    i32::try_from(v).map_err(|_| SpecError::TooLarge(v))
}

impl TensorSpec {
    /// A contiguous row-major tensor.
    pub fn new(dtype: Dtype, shape: &[usize]) -> Result<Self, SpecError> {
        Self::build(dtype, MajorOrder::Row, shape, None)
    }

    /// A contiguous tensor in `order`.
    pub fn with_order(dtype: Dtype, order: MajorOrder, shape: &[usize]) -> Result<Self, SpecError> {
        Self::build(dtype, order, shape, None)
    }

    /// A tensor with explicit byte strides (0 entries are inferred contiguous).
    pub fn strided(
        dtype: Dtype,
        order: MajorOrder,
        shape: &[usize],
        strides: &[usize],
    ) -> Result<Self, SpecError> {
        Self::build(dtype, order, shape, Some(strides))
    }

    fn build(
        dtype: Dtype,
        order: MajorOrder,
        shape: &[usize],
        strides: Option<&[usize]>,
    ) -> Result<Self, SpecError> {
        let n = shape.len();
        if n == 0 || n > MAX_DIMS {
            return Err(SpecError::Ndims(n));
        }
        let mut dims = [0i32; MAX_DIMS];
        let mut st = [0i32; MAX_DIMS];
        for (index, (d, &s)) in dims.iter_mut().zip(shape).enumerate() {
            if s == 0 {
                return Err(SpecError::ZeroDim { index });
            }
            *d = to_i32(s)?;
        }
        if let Some(strides) = strides {
            if strides.len() != n {
                return Err(SpecError::StridesLen {
                    ndims: n,
                    strides: strides.len(),
                });
            }
            for (d, &s) in st.iter_mut().zip(strides) {
                *d = to_i32(s)?;
            }
        }
        let header = tensor::new_header(dtype.to_wire(), order.to_wire(), &dims[..n], &st[..n])
            .map_err(SpecError::Header)?;
        Self::from_header(header)
    }

    /// The tensor a received `TensorHeader` describes (a bridge or rate limiter re-claiming
    /// a frame it read elsewhere), validated against the local limits as any spec is.
    pub fn from_tensor_header(header: TensorHeader) -> Result<Self, SpecError> {
        Self::from_header(header)
    }

    fn from_header(header: TensorHeader) -> Result<Self, SpecError> {
        let layout = tensor::validate_tensor(&header, 0).map_err(SpecError::Header)?;
        let len_bytes =
            usize::try_from(layout.extent_bytes).map_err(|_| SpecError::TooLarge(usize::MAX))?;
        Ok(Self { header, len_bytes })
    }

    /// The same tensor, declaring progress in rows (dimension 0) for `FrameProgress` consumers.
    pub fn progress_rows(self) -> Result<Self, SpecError> {
        self.progress(ProgressUnit::Rows)
    }

    /// The same tensor, declaring progress in columns (dimension 1).
    pub fn progress_columns(self) -> Result<Self, SpecError> {
        self.progress(ProgressUnit::Columns)
    }

    fn progress(self, unit: ProgressUnit) -> Result<Self, SpecError> {
        let header = tensor::with_progress(self.header, unit).map_err(SpecError::Header)?;
        Self::from_header(header)
    }

    /// Bytes the tensor spans (the payload length a claim reserves).
    pub fn len_bytes(&self) -> usize {
        self.len_bytes
    }

    /// Number of dimensions.
    pub fn ndims(&self) -> usize {
        usize::from(self.header.ndims)
    }

    /// The element type.
    pub fn dtype(&self) -> Dtype {
        Dtype::from_wire(self.header.dtype).unwrap_or(Dtype::Bytes)
    }

    pub(crate) fn header(&self) -> &TensorHeader {
        &self.header
    }
}

/// Up to 8 sizes (shape or strides) held by value.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Dims {
    values: [usize; MAX_DIMS],
    len: usize,
}

impl Dims {
    fn from_iter<I: IntoIterator<Item = usize>>(it: I) -> Self {
        let mut d = Dims::default();
        for (slot, v) in d.values.iter_mut().zip(it) {
            *slot = v;
            d.len += 1;
        }
        d
    }
}

impl std::ops::Deref for Dims {
    type Target = [usize];
    fn deref(&self) -> &[usize] {
        &self.values[..self.len]
    }
}

impl fmt::Debug for Dims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// What a `FrameDescriptor` adds to the slot header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DescriptorInfo {
    pub stream_id: u32,
    pub epoch: u64,
    pub publish_timestamp_ns: Option<u64>,
    pub trace_id: Option<u64>,
}

/// What names a committed frame once its handler has returned (stream, epoch, seq and what
/// its descriptor said): [`crate::prelude::Consumer::reread`] reads the frame again from its
/// slot, under the seqlock, as long as the slot still holds it. Copy, no allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameKey {
    seq: u64,
    info: DescriptorInfo,
}

impl FrameKey {
    /// Logical sequence number.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Epoch of the regions the frame lives in.
    pub fn epoch(&self) -> u64 {
        self.info.epoch
    }

    /// Data source (pool stream id).
    pub fn stream_id(&self) -> u32 {
        self.info.stream_id
    }

    pub(crate) fn info(&self) -> DescriptorInfo {
        self.info
    }
}

/// A committed frame, borrowed in place from shared memory for the duration of a handler.
/// See the [module docs](self) for the contract: read, then [`Frame::recheck`].
#[derive(Debug)]
pub struct Frame<'a> {
    view: FrameView<'a>,
    info: DescriptorInfo,
    dtype: Dtype,
    order: MajorOrder,
    shape: Dims,
    strides: Dims,
}

impl<'a> Frame<'a> {
    pub(crate) fn new(view: FrameView<'a>, info: DescriptorInfo) -> Self {
        let t = view.tensor();
        let layout = *view.layout();
        let n = layout.ndims.min(MAX_DIMS);
        let shape = Dims::from_iter(t.dims[..n].iter().map(|&d| d.max(0) as usize));
        let strides = Dims::from_iter(layout.strides[..n].iter().map(|&s| s as usize));
        let order = if layout.order == wire::MajorOrder::Column {
            MajorOrder::Column
        } else {
            MajorOrder::Row
        };
        Self {
            dtype: Dtype::from_wire(layout.dtype).unwrap_or(Dtype::Bytes),
            order,
            shape,
            strides,
            view,
            info,
        }
    }

    /// The same frame with the descriptor fields a caller kept from its descriptor (a
    /// frame read again by seq, [`crate::consumer::Consumer::read_frame`], has none).
    pub(crate) fn with_descriptor(
        mut self,
        publish_timestamp_ns: Option<u64>,
        trace_id: Option<u64>,
    ) -> Self {
        self.info.publish_timestamp_ns = publish_timestamp_ns;
        self.info.trace_id = trace_id;
        self
    }

    /// Logical sequence number.
    pub fn seq(&self) -> u64 {
        self.view.seq()
    }

    /// Epoch of the regions the frame lives in.
    pub fn epoch(&self) -> u64 {
        self.info.epoch
    }

    /// Data source (pool stream id).
    pub fn stream_id(&self) -> u32 {
        self.info.stream_id
    }

    /// The frame's key: what [`crate::prelude::Consumer::reread`] needs to read it again
    /// after the handler returned.
    pub fn key(&self) -> FrameKey {
        FrameKey {
            seq: self.seq(),
            info: self.info,
        }
    }

    /// Element type.
    pub fn dtype(&self) -> Dtype {
        self.dtype
    }

    /// Major order.
    pub fn major_order(&self) -> MajorOrder {
        self.order
    }

    /// Shape (dimension sizes).
    pub fn shape(&self) -> Dims {
        self.shape
    }

    /// Byte strides per dimension, zero strides replaced by their inferred value.
    pub fn strides(&self) -> Dims {
        self.strides
    }

    /// The payload in place. **Racy until [`Frame::recheck`] returns `Ok` after reading.**
    pub fn bytes(&self) -> &'a [u8] {
        self.view.payload()
    }

    /// Source / capture time (`SlotHeader.timestamp_ns`, producer's clock domain).
    pub fn timestamp_ns(&self) -> u64 {
        self.view.header().timestamp_ns
    }

    /// Publish time from the descriptor, if the producer sent one.
    pub fn publish_timestamp_ns(&self) -> Option<u64> {
        self.info.publish_timestamp_ns
    }

    /// `DataSourceMeta` version the frame belongs to.
    pub fn meta_version(&self) -> u32 {
        self.view.header().meta_version
    }

    /// TraceLink id, if any.
    pub fn trace_id(&self) -> Option<u64> {
        self.info.trace_id
    }

    /// The frame's tensor as a [`TensorSpec`] a producer can claim with: the embedded
    /// TensorHeader exactly as the slot holds it (dtype, order, dims, strides, progress
    /// unit), so a re-publisher writes the same tensor (RateLimiter §5).
    pub fn tensor_spec(&self) -> Result<TensorSpec, SpecError> {
        TensorSpec::from_header(self.view.tensor().clone())
    }

    /// `Ok` if the slot still holds this committed frame: everything read from
    /// [`Frame::bytes`] before this call is the committed frame.
    pub fn recheck(&self) -> Result<(), DropReason> {
        self.view.recheck()
    }

    /// The frame's 256-byte slot header block (SlotHeader + embedded TensorHeader), encoded
    /// from the private copy checked under the seqlock (what a bridge sends ahead of the
    /// payload). `false` if it could not be encoded (never for a header that was read).
    pub fn slot_header_bytes(&self, out: &mut [u8; tensorpool_shm::HEADER_SLOT_BYTES]) -> bool {
        tensorpool_shm::slot::encode_slot(self.view.header(), out).is_ok()
    }

    /// Copies the payload into `out` and rechecks; returns the bytes copied.
    pub fn copy_to(&self, out: &mut [u8]) -> Result<usize, CopyError> {
        match self.view.copy_payload_to(out) {
            None => Err(CopyError::BufferTooSmall {
                need: self.view.payload().len(),
                have: out.len(),
            }),
            Some(Ok(n)) => Ok(n),
            Some(Err(r)) => Err(CopyError::Late(r)),
        }
    }
}

/// Why [`Frame::copy_to`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CopyError {
    /// The destination is shorter than the payload; nothing was copied.
    #[error("buffer of {have} bytes cannot hold the {need}-byte payload")]
    BufferTooSmall {
        /// Payload length.
        need: usize,
        /// Buffer length.
        have: usize,
    },
    /// The frame was overwritten while it was copied: discard the copy.
    #[error("frame overwritten while copying: {0}")]
    Late(DropReason),
}
