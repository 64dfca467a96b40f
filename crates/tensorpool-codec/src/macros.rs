//! The two macros that declare the facade's types from a compact description:
//! [`codec!`] for messages, group entries and header-less blocks, [`wire_enum!`] for enums.
//!
//! Layout comes from the generated structs: a message's fixed block is written and read as
//! the generated zerocopy struct, whose literal must name every generated field (so a
//! schema change that adds or removes a field fails to compile here), and a compile-time
//! assertion checks that struct's size against the schema's blockLength.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::cursor::{Reader, Writer};
use crate::{DecodeError, EncodeError};

/// How one facade struct maps onto a generated fixed-block struct plus the groups and var
/// data that follow it.
pub(crate) trait Parts<'a>: Sized {
    /// The generated fixed-block struct.
    type Wire: FromBytes + IntoBytes + KnownLayout + Immutable + zerocopy::Unaligned + 'a;
    fn fixed(&self) -> Self::Wire;
    fn rest_len(&self) -> usize;
    fn encode_rest(&self, w: &mut Writer<'_>) -> Result<(), EncodeError>;
    fn decode_parts(fixed: &'a Self::Wire, r: &mut Reader<'a>) -> Result<Self, DecodeError>;
}

pub(crate) fn parts_len<'a, P: Parts<'a>>(p: &P) -> usize {
    size_of::<P::Wire>() + p.rest_len()
}

pub(crate) fn encode_parts<'a, P: Parts<'a>>(p: &P, dst: &mut [u8]) -> Result<usize, EncodeError> {
    let mut w = Writer::new(dst);
    w.block(&p.fixed())?;
    p.encode_rest(&mut w)?;
    Ok(w.pos())
}

/// Decodes at the start of `buf` with a fixed block of `block_length` bytes; returns the
/// value and the bytes used.
pub(crate) fn decode_parts<'a, P: Parts<'a>>(
    buf: &'a [u8],
    block_length: usize,
    what: &'static str,
) -> Result<(P, usize), DecodeError> {
    let mut r = Reader::new(buf);
    let fixed = r.block::<P::Wire>(what, block_length)?;
    let value = P::decode_parts(fixed, &mut r)?;
    Ok((value, buf.len() - r.rest().len()))
}

/// Declares a facade struct and its codec.
///
/// ```text
/// codec! {
///     /// docs
///     message Name<'a> = generated::Struct {          // or `entry`, or `block`
///         plain_field: u32,
///         optional_field: Option<u64> = null(u64::MAX, optional_field_opt),
///     } groups {
///         group_field: EntryType<'a> = "groupName",
///     } data {
///         var_field: MAX_LEN,
///     }
/// }
/// ```
///
/// Field names equal the generated struct's. An optional field names its null value (used
/// to encode `None`) and the generated `*_opt` accessor (used to decode); round-trip tests
/// fail if the two disagree. `message` implements [`crate::Message`], `entry` implements
/// [`crate::Entry`], `block` (a header-less SHM structure) gets inherent `decode`/`encode`.
macro_rules! codec {
    (
        $(#[$meta:meta])*
        $kind:ident $name:ident $(<$lt:lifetime>)? = $gen:path {
            $( $(#[$fmeta:meta])* $field:ident : $fty:ty $(= null($null:expr, $acc:ident))? ),* $(,)?
        }
        $( groups { $( $(#[$gmeta:meta])* $group:ident : $ety:ty = $gname:literal ),* $(,)? } )?
        $( data { $( $(#[$dmeta:meta])* $data:ident : $max:expr ),* $(,)? } )?
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq)]
        #[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
        pub struct $name $(<$lt>)? {
            $( $(#[$fmeta])* pub $field: $fty, )*
            $($( $(#[$gmeta])* pub $group: $crate::Group<'a, $ety>, )*)?
            $($( $(#[$dmeta])* pub $data: $crate::Bytes<'a>, )*)?
        }

        impl<'a> $crate::macros::Parts<'a> for $name $(<$lt>)? {
            type Wire = $gen;

            fn fixed(&self) -> $gen {
                #[allow(unused_imports)]
                use $crate::cursor::{opt_to_wire, ToWire};
                $gen { $( $field: codec!(@enc self.$field $(, $null)?), )* }
            }

            fn rest_len(&self) -> usize {
                0 $($( + self.$group.encoded_len() )*)?
                  $($( + $crate::cursor::var_data_len(&self.$data) )*)?
            }

            #[allow(unused_variables)]
            fn encode_rest(&self, w: &mut $crate::cursor::Writer<'_>) -> Result<(), $crate::EncodeError> {
                $($( w.group($gname, &self.$group)?; )*)?
                $($( w.var_data(stringify!($data), &self.$data, $max)?; )*)?
                Ok(())
            }

            #[allow(unused_variables)]
            fn decode_parts(
                g: &'a $gen,
                r: &mut $crate::cursor::Reader<'a>,
            ) -> Result<Self, $crate::DecodeError> {
                #[allow(unused_imports)]
                use $crate::cursor::FromWire;
                Ok(Self {
                    $( $field: codec!(@dec g, $field $(, $acc)?), )*
                    $($( $group: r.group($gname)?, )*)?
                    $($( $data: r.var_data(stringify!($data), $max)?, )*)?
                })
            }
        }

        codec!(@$kind $name $(<$lt>)?, $gen);
    };

    (@enc $value:expr) => { ToWire::to_wire(&$value) };
    (@enc $value:expr, $null:expr) => { opt_to_wire(&$value, $null) };
    (@dec $g:ident, $field:ident) => { FromWire::from_wire($g.$field, stringify!($field))? };
    (@dec $g:ident, $field:ident, $acc:ident) => { FromWire::from_wire($g.$acc(), stringify!($field))? };

    (@message $name:ident $(<$lt:lifetime>)?, $gen:path) => {
        const _: () = assert!(size_of::<$gen>() == <$gen>::BLOCK_LENGTH as usize);

        impl<'a> $crate::Message<'a> for $name $(<$lt>)? {
            const NAME: &'static str = stringify!($name);
            const SCHEMA_ID: u16 = <$gen>::SCHEMA_ID;
            const TEMPLATE_ID: u16 = <$gen>::TEMPLATE_ID;
            const BLOCK_LENGTH: u16 = <$gen>::BLOCK_LENGTH;
            const SCHEMA_VERSION: u16 = <$gen>::SCHEMA_VERSION;

            fn body_len(&self) -> usize {
                $crate::macros::parts_len(self)
            }

            fn encode_body(&self, dst: &mut [u8]) -> Result<usize, $crate::EncodeError> {
                $crate::macros::encode_parts(self, dst)
            }

            fn decode_body(body: &'a [u8], acting_block_length: u16, _: u16) -> Result<Self, $crate::DecodeError> {
                if acting_block_length < Self::BLOCK_LENGTH {
                    return Err($crate::DecodeError::BlockLength {
                        message: Self::NAME,
                        min: Self::BLOCK_LENGTH,
                        found: acting_block_length,
                    });
                }
                $crate::macros::decode_parts(body, usize::from(acting_block_length), Self::NAME).map(|(m, _)| m)
            }
        }
    };

    (@entry $name:ident $(<$lt:lifetime>)?, $gen:path) => {
        impl<'a> $crate::Entry<'a> for $name $(<$lt>)? {
            #[allow(clippy::cast_possible_truncation)]
            const BLOCK_LENGTH: u16 = size_of::<$gen>() as u16;

            fn entry_len(&self) -> usize {
                $crate::macros::parts_len(self)
            }

            fn encode_entry(&self, dst: &mut [u8]) -> Result<usize, $crate::EncodeError> {
                $crate::macros::encode_parts(self, dst)
            }

            fn decode_entry(buf: &'a [u8], block_length: u16) -> Result<(Self, usize), $crate::DecodeError> {
                $crate::macros::decode_parts(buf, usize::from(block_length), stringify!($name))
            }
        }
    };

    (@block $name:ident, $gen:path) => {
        const _: () = assert!(size_of::<$gen>() == <$gen>::BLOCK_LENGTH as usize);

        impl $name {
            /// Encoded length in bytes (the schema's blockLength).
            pub const LEN: usize = size_of::<$gen>();

            /// Decodes the structure at the start of `buf`.
            pub fn decode(buf: &[u8]) -> Result<Self, $crate::DecodeError> {
                $crate::macros::decode_parts(buf, Self::LEN, stringify!($name)).map(|(v, _)| v)
            }

            /// Encodes the structure at the start of `dst`; returns [`Self::LEN`].
            pub fn encode(&self, dst: &mut [u8]) -> Result<usize, $crate::EncodeError> {
                let have = dst.len();
                let dst = dst.get_mut(..Self::LEN)
                    .ok_or($crate::EncodeError::BufferTooSmall { need: Self::LEN, have })?;
                $crate::macros::encode_parts(self, dst)
            }
        }
    };
}

/// Declares a facade enum whose values come from a generated enum, with conversions to and
/// from the generated wire types of every schema listed (their values are checked equal at
/// compile time).
///
/// `Name(GeneratedEnum): repr in [schema_module, ...] { Variant, ... }`
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        $name:ident($genenum:ident): $repr:ident in [$g0:ident $(, $gx:ident)*] { $($var:ident),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[cfg_attr(
            feature = "serde",
            derive(serde::Serialize, serde::Deserialize),
            serde(rename_all = "SCREAMING_SNAKE_CASE")
        )]
        #[repr($repr)]
        pub enum $name {
            $(
                #[doc = concat!("`", stringify!($var), "`")]
                $var = $g0::$genenum::$var as $repr,
            )+
        }

        impl $name {
            /// Every value the schema defines.
            pub const ALL: &'static [Self] = &[$(Self::$var),+];

            /// The value on the wire.
            pub const fn raw(self) -> $repr {
                self as $repr
            }
        }

        impl TryFrom<$repr> for $name {
            type Error = $crate::DecodeError;

            /// Fails with [`DecodeError::UnknownEnum`](crate::DecodeError::UnknownEnum) on
            /// a value the schema does not define.
            fn try_from(raw: $repr) -> Result<Self, $crate::DecodeError> {
                $( if raw == Self::$var as $repr { return Ok(Self::$var); } )+
                Err($crate::DecodeError::UnknownEnum { field: stringify!($name), value: i64::from(raw) })
            }
        }

        impl From<$name> for $repr {
            fn from(v: $name) -> $repr {
                v as $repr
            }
        }

        wire_enum!(@gen $name, $genenum, $repr, [$($var),+], $g0 $(, $gx)*);
    };

    (@gen $name:ident, $genenum:ident, $repr:ident, $vars:tt, $($g:ident),+) => {$(
        wire_enum!(@same $name, $genenum, $repr, $g, $vars);

        impl $crate::cursor::ToWire<$g::$name> for $name {
            fn to_wire(&self) -> $g::$name {
                $g::$name((*self as $repr).into())
            }
        }

        impl $crate::cursor::FromWire<$g::$name> for $name {
            fn from_wire(wire: $g::$name, field: &'static str) -> Result<Self, $crate::DecodeError> {
                let raw = <$repr>::from(wire.0);
                Self::try_from(raw).map_err(|_| $crate::DecodeError::UnknownEnum { field, value: i64::from(raw) })
            }
        }

        impl $crate::cursor::WireRaw for $g::$name {
            type Raw = $repr;
            fn from_raw(raw: $repr) -> Self {
                $g::$name(raw.into())
            }
        }
    )+};

    (@same $name:ident, $genenum:ident, $repr:ident, $g:ident, [$($var:ident),+]) => {
        const _: () = { $( assert!($g::$genenum::$var as $repr == $name::$var as $repr); )+ };
    };
}
