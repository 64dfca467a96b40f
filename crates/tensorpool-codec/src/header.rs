//! The 8-byte SBE message header that frames every message on Aeron.

use zerocopy::IntoBytes;
use zerocopy::byteorder::little_endian::U16;

use crate::cursor::Reader;
use crate::generated::wire::message_header::MessageHeader as GenHeader;
use crate::{DecodeError, EncodeError};

/// Length of the message header in bytes.
pub const HEADER_LEN: usize = size_of::<GenHeader>();

/// The SBE message header: which message follows and how long its fixed block is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct MessageHeader {
    /// Length of the message's fixed block, as the sender encoded it.
    pub block_length: u16,
    /// Message id within its schema.
    pub template_id: u16,
    /// Schema id (900 wire, 901 driver, 902 bridge, 903 merge, 904 trace link, 910 discovery).
    pub schema_id: u16,
    /// Schema version of the sender.
    pub version: u16,
}

impl MessageHeader {
    /// Reads the header at the start of `buf`.
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let h: &GenHeader = Reader::new(buf).block("message header", HEADER_LEN)?;
        Ok(Self {
            block_length: h.block_length.get(),
            template_id: h.template_id.get(),
            schema_id: h.schema_id.get(),
            version: h.version.get(),
        })
    }

    /// Writes the header at the start of `dst`; returns [`HEADER_LEN`].
    pub fn encode(&self, dst: &mut [u8]) -> Result<usize, EncodeError> {
        let h = GenHeader {
            block_length: U16::new(self.block_length),
            template_id: U16::new(self.template_id),
            schema_id: U16::new(self.schema_id),
            version: U16::new(self.version),
        };
        let have = dst.len();
        dst.get_mut(..HEADER_LEN)
            .ok_or(EncodeError::BufferTooSmall {
                need: HEADER_LEN,
                have,
            })?
            .copy_from_slice(h.as_bytes());
        Ok(HEADER_LEN)
    }
}

/// Reads the message header of `buf` without decoding the body, for dispatch.
///
/// A stream can carry messages of several schemas whose template ids overlap: dispatch on
/// `schema_id` first, then `template_id`.
pub fn peek_header(buf: &[u8]) -> Result<MessageHeader, DecodeError> {
    MessageHeader::decode(buf)
}
