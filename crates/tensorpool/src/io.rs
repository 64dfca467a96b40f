//! Sending and receiving SBE messages over Aeron for the producer and consumer roles:
//! encode straight into a `try_claim` buffer (offer from a reusable buffer only when the
//! message is longer than the claim limit), and gate received messages on schema id, then
//! template id (PITFALLS #5). Nothing here allocates in steady state.

use tensorpool_aeron::{ClaimError, Publication, PublishError};
use tensorpool_codec::{EncodeError, Message, peek_header, wire};

/// Why a message was not sent. Small and `Copy`: callers count it, never allocate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Aeron refused the message (not connected, back pressured, closed, ...).
    #[error(transparent)]
    Publish(#[from] PublishError),
    /// The message could not be encoded (a value exceeds a schema limit).
    #[error("encoding failed: {0}")]
    Encode(#[from] EncodeError),
}

fn flatten(e: ClaimError<EncodeError>) -> SendError {
    match e {
        ClaimError::Publish(p) => SendError::Publish(p),
        ClaimError::Fill(f) => SendError::Encode(f),
    }
}

/// Encodes `msg` into the publication (claim, or offer for long messages). An admin action
/// (term rotation) is retried once at once; anything else is returned, never waited on.
pub(crate) fn send<'a, M: Message<'a>>(
    publication: &mut Publication,
    msg: &M,
) -> Result<(), SendError> {
    let len = msg.encoded_len();
    let mut attempt = || {
        publication
            .publish(len, |buf| msg.encode(buf).map(|_| ()))
            .map(|_| ())
            .map_err(flatten)
    };
    match attempt() {
        Err(SendError::Publish(PublishError::AdminAction)) => attempt(),
        other => other,
    }
}

/// The template id of a wire-schema (900) message of a supported version, or `None` for
/// anything else (another schema, a newer version, a truncated header).
pub(crate) fn wire_template(msg: &[u8]) -> Option<u16> {
    let h = peek_header(msg).ok()?;
    (h.schema_id == wire::SCHEMA_ID && h.version <= wire::SCHEMA_VERSION).then_some(h.template_id)
}

/// Template ids of the wire messages the roles dispatch on.
pub(crate) mod tid {
    use tensorpool_codec::{Message, wire};

    pub const ANNOUNCE: u16 = <wire::ShmPoolAnnounce<'_> as Message<'_>>::TEMPLATE_ID;
    pub const HELLO: u16 = <wire::ConsumerHello<'_> as Message<'_>>::TEMPLATE_ID;
    pub const CONFIG: u16 = <wire::ConsumerConfig<'_> as Message<'_>>::TEMPLATE_ID;
    pub const DESCRIPTOR: u16 = <wire::FrameDescriptor as Message<'_>>::TEMPLATE_ID;
    pub const PROGRESS: u16 = <wire::FrameProgress as Message<'_>>::TEMPLATE_ID;
    pub const QOS_CONSUMER: u16 = <wire::QosConsumer as Message<'_>>::TEMPLATE_ID;
    pub const DS_ANNOUNCE: u16 = <wire::DataSourceAnnounce<'_> as Message<'_>>::TEMPLATE_ID;
    pub const DS_META: u16 = <wire::DataSourceMeta<'_> as Message<'_>>::TEMPLATE_ID;
    pub const BLOB_ANNOUNCE: u16 = <wire::MetaBlobAnnounce as Message<'_>>::TEMPLATE_ID;
    pub const BLOB_CHUNK: u16 = <wire::MetaBlobChunk<'_> as Message<'_>>::TEMPLATE_ID;
    pub const BLOB_COMPLETE: u16 = <wire::MetaBlobComplete as Message<'_>>::TEMPLATE_ID;
}
