//! SBE repeating groups.

use std::fmt;
use std::marker::PhantomData;

use crate::cursor::{GROUP_HEADER_LEN, Writer};
use crate::{DecodeError, EncodeError};

/// One entry type of a repeating group. Implemented by the entry structs of each schema
/// module; callers normally only use [`Group`].
pub trait Entry<'a>: Sized + Clone {
    /// Fixed block length of one entry, as this crate encodes it.
    const BLOCK_LENGTH: u16;
    /// Smallest non-zero entry blockLength a decoder accepts (named in errors).
    const MIN_BLOCK_LENGTH: u16 = Self::BLOCK_LENGTH;

    /// Whether a group header's entry blockLength can be decoded.
    fn accepts_block_length(block_length: u16) -> bool {
        block_length >= Self::MIN_BLOCK_LENGTH
    }

    /// Exact encoded length of this entry (fixed block, nested groups and var data).
    fn entry_len(&self) -> usize;

    /// Encodes this entry at the start of `dst`; returns the bytes written.
    fn encode_entry(&self, dst: &mut [u8]) -> Result<usize, EncodeError>;

    /// Decodes one entry at the start of `buf`, whose fixed block is `block_length` bytes
    /// long; returns it with the number of bytes it used.
    fn decode_entry(buf: &'a [u8], block_length: u16) -> Result<(Self, usize), DecodeError>;
}

/// The entries of a repeating group: as received, or given by the sender.
///
/// Decoding produces [`Group::Wire`] (validated once during decode, borrowed, no
/// allocation); a sender uses [`Group::Slice`] or [`Group::Owned`], or a pre-encoded group
/// ([`EncodedGroup::group`]). Equality compares the entries, not the representation.
#[derive(Clone)]
pub enum Group<'a, E> {
    /// Raw entries from a decoded buffer (or a pre-encoded group).
    Wire(WireGroup<'a>),
    /// Entries borrowed from the caller.
    Slice(&'a [E]),
    /// Entries owned by the group (for instance after deserialization).
    Owned(Vec<E>),
}

/// Validated raw bytes of a group's entries, their count and their blockLength.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireGroup<'a> {
    bytes: &'a [u8],
    count: u16,
    block_length: u16,
}

impl<'a> WireGroup<'a> {
    /// Only built from bytes that decoded without error (or that this crate encoded).
    pub(crate) fn new(bytes: &'a [u8], count: u16, block_length: u16) -> Self {
        Self {
            bytes,
            count,
            block_length,
        }
    }

    /// The entries' bytes (after the group header).
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Number of entries.
    pub fn count(&self) -> u16 {
        self.count
    }

    /// The entries' blockLength from the group header.
    pub fn block_length(&self) -> u16 {
        self.block_length
    }
}

impl<E> Default for Group<'_, E> {
    fn default() -> Self {
        Self::Slice(&[])
    }
}

impl<'a, E> From<&'a [E]> for Group<'a, E> {
    fn from(entries: &'a [E]) -> Self {
        Self::Slice(entries)
    }
}

impl<E> From<Vec<E>> for Group<'_, E> {
    fn from(entries: Vec<E>) -> Self {
        Self::Owned(entries)
    }
}

impl<E> Group<'_, E> {
    /// Number of entries.
    pub fn len(&self) -> usize {
        match self {
            Self::Wire(w) => usize::from(w.count),
            Self::Slice(s) => s.len(),
            Self::Owned(v) => v.len(),
        }
    }

    /// True when the group has no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Exact encoded length: group header plus entries.
    pub fn encoded_len<'e>(&self) -> usize
    where
        E: Entry<'e>,
    {
        GROUP_HEADER_LEN
            + match self {
                Self::Wire(w) => w.bytes.len(),
                Self::Slice(s) => s.iter().map(Entry::entry_len).sum(),
                Self::Owned(v) => v.iter().map(Entry::entry_len).sum(),
            }
    }

    /// Encodes the group once, so that a long-lived sender can put it in every message it
    /// sends without encoding or allocating again (see [`EncodedGroup::new`]).
    pub fn pre_encode<'e>(&self) -> Result<EncodedGroup<E>, EncodeError>
    where
        E: Entry<'e>,
    {
        match self {
            Self::Wire(w) => Ok(EncodedGroup::from_parts(
                w.bytes.to_vec(),
                w.count,
                w.block_length,
            )),
            Self::Slice(s) => EncodedGroup::new(s),
            Self::Owned(v) => EncodedGroup::new(v),
        }
    }
}

impl<'a, E: Entry<'a>> Group<'a, E> {
    /// The entries, by value (decoded lazily from [`Group::Wire`]).
    pub fn iter(&self) -> GroupIter<'_, 'a, E> {
        let inner = match self {
            Self::Wire(w) => IterInner::Wire {
                bytes: w.bytes,
                left: w.count,
                block_length: w.block_length,
            },
            Self::Slice(s) => IterInner::Slice(s.iter()),
            Self::Owned(v) => IterInner::Slice(v.iter()),
        };
        GroupIter { inner }
    }
}

impl<'a, E: Entry<'a> + PartialEq> PartialEq for Group<'a, E> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl<'a, E: Entry<'a> + fmt::Debug> fmt::Debug for Group<'a, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'g, 'a, E: Entry<'a>> IntoIterator for &'g Group<'a, E> {
    type Item = E;
    type IntoIter = GroupIter<'g, 'a, E>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Iterator over a group's entries, yielding them by value.
#[derive(Debug, Clone)]
pub struct GroupIter<'g, 'a, E> {
    inner: IterInner<'g, 'a, E>,
}

#[derive(Debug, Clone)]
enum IterInner<'g, 'a, E> {
    Wire {
        bytes: &'a [u8],
        left: u16,
        block_length: u16,
    },
    Slice(std::slice::Iter<'g, E>),
}

impl<'a, E: Entry<'a>> Iterator for GroupIter<'_, 'a, E> {
    type Item = E;

    fn next(&mut self) -> Option<E> {
        match &mut self.inner {
            IterInner::Wire {
                bytes,
                left,
                block_length,
            } => {
                if *left == 0 {
                    return None;
                }
                // The bytes were validated when the group was decoded, so this succeeds;
                // should it not, the iteration ends instead of panicking.
                let (entry, used) = E::decode_entry(bytes, *block_length).ok()?;
                *bytes = bytes.get(used..).unwrap_or_default();
                *left -= 1;
                Some(entry)
            }
            IterInner::Slice(it) => it.next().cloned(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match &self.inner {
            IterInner::Wire { left, .. } => (0, Some(usize::from(*left))),
            IterInner::Slice(it) => it.size_hint(),
        }
    }
}

/// A group encoded once, ready to be sent again and again (see [`Group::pre_encode`]).
pub struct EncodedGroup<E> {
    bytes: Vec<u8>,
    count: u16,
    block_length: u16,
    _entry: PhantomData<fn() -> E>,
}

impl<E> EncodedGroup<E> {
    /// Encodes `entries` once.
    pub fn new<'e>(entries: &[E]) -> Result<Self, EncodeError>
    where
        E: Entry<'e>,
    {
        let count = entries.len();
        let too_many = EncodeError::TooMany {
            group: "EncodedGroup",
            count,
            max: usize::from(u16::MAX),
        };
        let count = u16::try_from(count).map_err(|_| too_many)?;
        let mut bytes = vec![0; entries.iter().map(Entry::entry_len).sum()];
        let mut w = Writer::new(&mut bytes);
        for e in entries {
            let n = e.encode_entry(w.rest())?;
            w.advance(n);
        }
        Ok(Self::from_parts(bytes, count, E::BLOCK_LENGTH))
    }

    fn from_parts(bytes: Vec<u8>, count: u16, block_length: u16) -> Self {
        Self {
            bytes,
            count,
            block_length,
            _entry: PhantomData,
        }
    }

    /// The group, borrowing the encoded bytes: encoding it is one copy.
    pub fn group(&self) -> Group<'_, E> {
        Group::Wire(WireGroup::new(&self.bytes, self.count, self.block_length))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        usize::from(self.count)
    }

    /// True when the group has no entries.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

impl<E> Clone for EncodedGroup<E> {
    fn clone(&self) -> Self {
        Self {
            bytes: self.bytes.clone(),
            ..*self
        }
    }
}

impl<E> fmt::Debug for EncodedGroup<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncodedGroup")
            .field("count", &self.count)
            .field("block_length", &self.block_length)
            .field("bytes", &self.bytes.len())
            .finish()
    }
}
