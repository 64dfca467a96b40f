//! Bounds-checked reading and writing over byte slices, and the conversions between the
//! generated wire structs' field types and the facade's plain Rust types.

use zerocopy::byteorder::little_endian::{I16, I32, I64, U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Ref, Unaligned};

use crate::generated::wire::types::groupSizeEncoding as GroupHeader;
use crate::{Bytes, DecodeError, EncodeError, Entry, Group};

/// Length of a repeating group's header (blockLength u16, numInGroup u16).
pub(crate) const GROUP_HEADER_LEN: usize = size_of::<GroupHeader>();
/// Length of a var-data length prefix (u32).
pub(crate) const VAR_LEN_PREFIX: usize = size_of::<u32>();

/// Reads forward through a borrowed buffer; every read is bounds-checked.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    /// Bytes not read yet.
    pub(crate) fn rest(&self) -> &'a [u8] {
        self.buf
    }

    pub(crate) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let have = self.buf.len();
        match self.buf.split_at_checked(n) {
            Some((head, tail)) => {
                self.buf = tail;
                Ok(head)
            }
            None => Err(DecodeError::Truncated {
                what,
                need: n,
                have,
            }),
        }
    }

    /// Takes a fixed block of `len` bytes (the acting blockLength) and views its first
    /// `size_of::<G>()` bytes as `G`; bytes past `G` (a newer sender's extension) are skipped.
    pub(crate) fn block<G>(&mut self, what: &'static str, len: usize) -> Result<&'a G, DecodeError>
    where
        G: FromBytes + KnownLayout + Immutable + Unaligned,
    {
        let block = self.take(len, what)?;
        match Ref::<_, G>::from_prefix(block) {
            Ok((r, _)) => Ok(Ref::into_ref(r)),
            Err(_) => Err(DecodeError::Truncated {
                what,
                need: size_of::<G>(),
                have: block.len(),
            }),
        }
    }

    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        let v: &U32 = self.block(what, VAR_LEN_PREFIX)?;
        Ok(v.get())
    }

    /// A var-data field: u32 length, then that many bytes (at most `max`).
    pub(crate) fn var_data(
        &mut self,
        field: &'static str,
        max: usize,
    ) -> Result<Bytes<'a>, DecodeError> {
        let len = self.u32(field)? as usize;
        if len > max {
            return Err(DecodeError::VarDataTooLong { field, len, max });
        }
        Ok(Bytes::new(self.take(len, field)?))
    }

    /// A repeating group: validates every entry once and keeps the raw bytes, so that
    /// iterating later cannot fail and decoding allocates nothing.
    pub(crate) fn group<E: Entry<'a>>(
        &mut self,
        group: &'static str,
    ) -> Result<Group<'a, E>, DecodeError> {
        let header: &GroupHeader = self.block(group, GROUP_HEADER_LEN)?;
        let (block_length, count) = (header.block_length.get(), header.num_in_group.get());
        if !E::accepts_block_length(block_length) {
            return Err(DecodeError::GroupBlockLength {
                group,
                min: E::MIN_BLOCK_LENGTH,
                found: block_length,
            });
        }
        let start = self.buf;
        for _ in 0..count {
            let (_, used) = E::decode_entry(self.buf, block_length)?;
            self.take(used, group)?;
        }
        let len = start.len() - self.buf.len();
        let bytes = start.get(..len).unwrap_or_default();
        Ok(Group::Wire(crate::group::WireGroup::new(
            bytes,
            count,
            block_length,
        )))
    }
}

/// Writes forward into a caller's buffer; every write is bounds-checked.
#[derive(Debug)]
pub(crate) struct Writer<'b> {
    buf: &'b mut [u8],
    pos: usize,
}

impl<'b> Writer<'b> {
    pub(crate) fn new(buf: &'b mut [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Bytes written so far.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// The unwritten part of the buffer.
    pub(crate) fn rest(&mut self) -> &mut [u8] {
        self.buf.get_mut(self.pos..).unwrap_or_default()
    }

    /// Marks `n` more bytes as written (after writing them through [`Writer::rest`]).
    pub(crate) fn advance(&mut self, n: usize) {
        self.pos = self.pos.saturating_add(n).min(self.buf.len());
    }

    pub(crate) fn put(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        let have = self.buf.len();
        let end = self.pos.saturating_add(bytes.len());
        let dst = self
            .buf
            .get_mut(self.pos..end)
            .ok_or(EncodeError::BufferTooSmall { need: end, have })?;
        dst.copy_from_slice(bytes);
        self.pos = end;
        Ok(())
    }

    pub(crate) fn block<G: IntoBytes + Immutable>(&mut self, value: &G) -> Result<(), EncodeError> {
        self.put(value.as_bytes())
    }

    pub(crate) fn var_data(
        &mut self,
        field: &'static str,
        value: &Bytes<'_>,
        max: usize,
    ) -> Result<(), EncodeError> {
        let len = value.len();
        let wire_len = u32::try_from(len).ok().filter(|_| len <= max);
        let wire_len = wire_len.ok_or(EncodeError::TooLong { field, len, max })?;
        self.put(&wire_len.to_le_bytes())?;
        self.put(value.as_bytes())
    }

    pub(crate) fn group<'a, E: Entry<'a>>(
        &mut self,
        group: &'static str,
        value: &Group<'a, E>,
    ) -> Result<(), EncodeError> {
        let count = value.len();
        let wire_count = u16::try_from(count).map_err(|_| EncodeError::TooMany {
            group,
            count,
            max: u16::MAX as usize,
        })?;
        match value {
            Group::Wire(raw) => {
                self.block(&group_header(raw.block_length(), wire_count))?;
                self.put(raw.as_bytes())
            }
            Group::Slice(entries) => self.entries(wire_count, entries),
            Group::Owned(entries) => self.entries(wire_count, entries),
        }
    }

    fn entries<'a, E: Entry<'a>>(&mut self, count: u16, entries: &[E]) -> Result<(), EncodeError> {
        self.block(&group_header(E::BLOCK_LENGTH, count))?;
        for e in entries {
            let n = e.encode_entry(self.rest())?;
            self.advance(n);
        }
        Ok(())
    }
}

fn group_header(block_length: u16, count: u16) -> GroupHeader {
    GroupHeader {
        block_length: U16::new(block_length),
        num_in_group: U16::new(count),
    }
}

/// Encoded length of a var-data field holding `value`.
pub(crate) fn var_data_len(value: &Bytes<'_>) -> usize {
    VAR_LEN_PREFIX + value.len()
}

/// Facade value -> field of a generated wire struct.
pub(crate) trait ToWire<G> {
    fn to_wire(&self) -> G;
}

/// Field of a generated wire struct (or the result of a generated `*_opt()` accessor) ->
/// facade value. Fails on enum values the schema does not define.
pub(crate) trait FromWire<G>: Sized {
    fn from_wire(wire: G, field: &'static str) -> Result<Self, DecodeError>;
}

/// Generated wire types that can be built from their raw primitive (used for null values).
pub(crate) trait WireRaw {
    type Raw;
    fn from_raw(raw: Self::Raw) -> Self;
}

/// An optional field: `None` is written as the schema's null value.
pub(crate) fn opt_to_wire<T: ToWire<G>, G: WireRaw>(value: &Option<T>, null: G::Raw) -> G {
    match value {
        Some(v) => v.to_wire(),
        None => G::from_raw(null),
    }
}

impl<T: FromWire<G>, G> FromWire<Option<G>> for Option<T> {
    fn from_wire(wire: Option<G>, field: &'static str) -> Result<Self, DecodeError> {
        wire.map(|g| T::from_wire(g, field)).transpose()
    }
}

macro_rules! primitive {
    ($($prim:ty => $wire:ident),* $(,)?) => {$(
        impl ToWire<$wire> for $prim {
            fn to_wire(&self) -> $wire {
                $wire::new(*self)
            }
        }
        impl FromWire<$wire> for $prim {
            fn from_wire(wire: $wire, _: &'static str) -> Result<Self, DecodeError> {
                Ok(wire.get())
            }
        }
        impl FromWire<$prim> for $prim {
            fn from_wire(wire: $prim, _: &'static str) -> Result<Self, DecodeError> {
                Ok(wire)
            }
        }
        impl WireRaw for $wire {
            type Raw = $prim;
            fn from_raw(raw: $prim) -> Self {
                $wire::new(raw)
            }
        }
        impl<const N: usize> ToWire<[$wire; N]> for [$prim; N] {
            fn to_wire(&self) -> [$wire; N] {
                self.map($wire::new)
            }
        }
        impl<const N: usize> FromWire<[$wire; N]> for [$prim; N] {
            fn from_wire(wire: [$wire; N], _: &'static str) -> Result<Self, DecodeError> {
                Ok(wire.map(|v| v.get()))
            }
        }
    )*};
}
primitive!(u16 => U16, u32 => U32, u64 => U64, i16 => I16, i32 => I32, i64 => I64);

impl ToWire<u8> for u8 {
    fn to_wire(&self) -> u8 {
        *self
    }
}

impl FromWire<u8> for u8 {
    fn from_wire(wire: u8, _: &'static str) -> Result<Self, DecodeError> {
        Ok(wire)
    }
}

impl<const N: usize> ToWire<[u8; N]> for [u8; N] {
    fn to_wire(&self) -> [u8; N] {
        *self
    }
}

impl<const N: usize> FromWire<[u8; N]> for [u8; N] {
    fn from_wire(wire: [u8; N], _: &'static str) -> Result<Self, DecodeError> {
        Ok(wire)
    }
}

/// The schemas' `Bool` enum (FALSE 0, TRUE 1) maps to `bool`; other values are errors.
macro_rules! wire_bool {
    ($($gen:path),*) => {$(
        impl ToWire<$gen> for bool {
            fn to_wire(&self) -> $gen {
                $gen(u8::from(*self))
            }
        }
        impl FromWire<$gen> for bool {
            fn from_wire(wire: $gen, field: &'static str) -> Result<Self, DecodeError> {
                match wire.0 {
                    0 => Ok(false),
                    1 => Ok(true),
                    v => Err(DecodeError::UnknownEnum { field, value: i64::from(v) }),
                }
            }
        }
    )*};
}
wire_bool!(
    crate::generated::wire::types::Bool,
    crate::generated::bridge::types::Bool,
    crate::generated::admin::types::Bool
);
