//! The trait every framed message implements.

use crate::{DecodeError, EncodeError, HEADER_LEN, MessageHeader};

/// A message framed by an SBE message header.
///
/// Encoding writes in place into the caller's buffer (an Aeron `try_claim` buffer, say) and
/// never allocates; decoding borrows from the input and never allocates.
pub trait Message<'a>: Sized {
    /// Message name, as in the schema.
    const NAME: &'static str;
    /// Schema id.
    const SCHEMA_ID: u16;
    /// Template id within the schema.
    const TEMPLATE_ID: u16;
    /// Fixed block length this crate encodes (and the minimum it decodes).
    const BLOCK_LENGTH: u16;
    /// Schema version this crate implements.
    const SCHEMA_VERSION: u16;

    /// Exact encoded length of the body (fixed block, groups and var data).
    fn body_len(&self) -> usize;

    /// Encodes the body (no message header) at the start of `dst`; returns the bytes
    /// written.
    fn encode_body(&self, dst: &mut [u8]) -> Result<usize, EncodeError>;

    /// Decodes a body (no message header) whose fixed block is `acting_block_length` bytes
    /// long, as sent by a sender of schema version `acting_version`.
    fn decode_body(
        body: &'a [u8],
        acting_block_length: u16,
        acting_version: u16,
    ) -> Result<Self, DecodeError>;

    /// The header this crate writes in front of the body.
    fn header() -> MessageHeader {
        MessageHeader {
            block_length: Self::BLOCK_LENGTH,
            template_id: Self::TEMPLATE_ID,
            schema_id: Self::SCHEMA_ID,
            version: Self::SCHEMA_VERSION,
        }
    }

    /// Exact encoded length, header included: the length to claim on a publication.
    fn encoded_len(&self) -> usize {
        HEADER_LEN + self.body_len()
    }

    /// Encodes header and body at the start of `dst`; returns the bytes written, which
    /// always equal [`Message::encoded_len`].
    fn encode(&self, dst: &mut [u8]) -> Result<usize, EncodeError> {
        let need = self.encoded_len();
        let have = dst.len();
        let too_small = EncodeError::BufferTooSmall { need, have };
        let frame = dst.get_mut(..need).ok_or(too_small)?;
        let (head, body) = frame.split_at_mut_checked(HEADER_LEN).ok_or(too_small)?;
        Self::header().encode(head)?;
        Ok(HEADER_LEN + self.encode_body(body)?)
    }

    /// Encodes into a new vector (for tools and tests; senders use [`Message::encode`]).
    fn encode_to_vec(&self) -> Result<Vec<u8>, EncodeError> {
        let mut buf = vec![0; self.encoded_len()];
        let n = self.encode(&mut buf)?;
        buf.truncate(n);
        Ok(buf)
    }

    /// Decodes a framed message. Checks the schema id, then the template id, and rejects a
    /// schema version newer than ours (clients reject higher versions, Driver Model §4.4a).
    /// A longer fixed block from a newer sender is skipped; a shorter one is an error.
    fn decode(buf: &'a [u8]) -> Result<Self, DecodeError> {
        decode_framed(buf, true)
    }

    /// Like [`Message::decode`], but accepts a newer schema version (SBE extension
    /// semantics: read the fields we know, skip the rest).
    fn decode_any_version(buf: &'a [u8]) -> Result<Self, DecodeError> {
        decode_framed(buf, false)
    }
}

fn decode_framed<'a, M: Message<'a>>(
    buf: &'a [u8],
    strict_version: bool,
) -> Result<M, DecodeError> {
    let h = MessageHeader::decode(buf)?;
    if h.schema_id != M::SCHEMA_ID {
        return Err(DecodeError::SchemaId {
            expected: M::SCHEMA_ID,
            found: h.schema_id,
        });
    }
    if h.template_id != M::TEMPLATE_ID {
        return Err(DecodeError::TemplateId {
            expected: M::TEMPLATE_ID,
            found: h.template_id,
        });
    }
    if strict_version && h.version > M::SCHEMA_VERSION {
        return Err(DecodeError::Version {
            max: M::SCHEMA_VERSION,
            found: h.version,
        });
    }
    let body = buf.get(HEADER_LEN..).unwrap_or_default();
    M::decode_body(body, h.block_length, h.version)
}
