//! Dispatch over every message of every schema, for tools that do not know the type in
//! advance.

use crate::{
    DecodeError, EncodeError, HEADER_LEN, Message, MessageHeader, admin, bridge, discovery, driver,
    merge, tracelink, wire,
};

macro_rules! any_message {
    ($( $(#[$m:meta])* $variant:ident($ty:ty) ),* $(,)?) => {
        /// Any framed message of any schema.
        #[derive(Debug, Clone, PartialEq)]
        #[cfg_attr(
            feature = "serde",
            derive(serde::Serialize, serde::Deserialize),
            serde(tag = "message")
        )]
        #[allow(clippy::large_enum_variant)]
        pub enum AnyMessage<'a> {
            $( $(#[$m])* $variant($ty), )*
        }

        impl<'a> AnyMessage<'a> {
            /// Every message this enum covers: (schema id, template id, name).
            pub const KINDS: &'static [(u16, u16, &'static str)] = &[
                $( (<$ty>::SCHEMA_ID, <$ty>::TEMPLATE_ID, <$ty>::NAME), )*
            ];

            /// Decodes the body of the message named by `schema_id` and `template_id`,
            /// whatever its header says (see [`Message::decode_body`]).
            pub fn decode_body(
                schema_id: u16,
                template_id: u16,
                body: &'a [u8],
                acting_block_length: u16,
                acting_version: u16,
            ) -> Result<Self, DecodeError> {
                $(
                    if schema_id == <$ty>::SCHEMA_ID && template_id == <$ty>::TEMPLATE_ID {
                        return <$ty>::decode_body(body, acting_block_length, acting_version).map(Self::$variant);
                    }
                )*
                Err(DecodeError::UnknownMessage { schema_id, template_id })
            }

            /// Name of the message, as in its schema.
            pub fn name(&self) -> &'static str {
                match self { $( Self::$variant(_) => <$ty>::NAME, )* }
            }

            /// The header this message is encoded with.
            pub fn header(&self) -> MessageHeader {
                match self { $( Self::$variant(_) => <$ty>::header(), )* }
            }

            /// Exact encoded length, header included.
            pub fn encoded_len(&self) -> usize {
                match self { $( Self::$variant(m) => m.encoded_len(), )* }
            }

            /// Encodes header and body at the start of `dst`; returns the bytes written.
            pub fn encode(&self, dst: &mut [u8]) -> Result<usize, EncodeError> {
                match self { $( Self::$variant(m) => m.encode(dst), )* }
            }
        }
    };
}

any_message! {
    /// Wire schema (900).
    ShmPoolAnnounce(wire::ShmPoolAnnounce<'a>),
    /// Wire schema (900).
    ConsumerHello(wire::ConsumerHello<'a>),
    /// Wire schema (900).
    ConsumerConfig(wire::ConsumerConfig<'a>),
    /// Wire schema (900).
    FrameDescriptor(wire::FrameDescriptor),
    /// Wire schema (900).
    FrameProgress(wire::FrameProgress),
    /// Wire schema (900).
    QosConsumer(wire::QosConsumer),
    /// Wire schema (900).
    QosProducer(wire::QosProducer),
    /// Wire schema (900), framed as it is inside a SlotHeader.
    TensorHeader(wire::TensorHeader),
    /// Wire schema (900).
    DataSourceAnnounce(wire::DataSourceAnnounce<'a>),
    /// Wire schema (900).
    DataSourceMeta(wire::DataSourceMeta<'a>),
    /// Wire schema (900).
    MetaBlobAnnounce(wire::MetaBlobAnnounce),
    /// Wire schema (900).
    MetaBlobChunk(wire::MetaBlobChunk<'a>),
    /// Wire schema (900).
    MetaBlobComplete(wire::MetaBlobComplete),
    /// Wire schema (900).
    ControlResponse(wire::ControlResponse<'a>),
    /// Driver schema (901).
    ShmAttachRequest(driver::ShmAttachRequest),
    /// Driver schema (901).
    ShmAttachResponse(driver::ShmAttachResponse<'a>),
    /// Driver schema (901).
    ShmDetachRequest(driver::ShmDetachRequest),
    /// Driver schema (901).
    ShmDetachResponse(driver::ShmDetachResponse<'a>),
    /// Driver schema (901).
    ShmLeaseKeepalive(driver::ShmLeaseKeepalive),
    /// Driver schema (901).
    ShmDriverShutdown(driver::ShmDriverShutdown<'a>),
    /// Driver schema (901).
    ShmLeaseRevoked(driver::ShmLeaseRevoked<'a>),
    /// Driver schema (901).
    ShmDriverShutdownRequest(driver::ShmDriverShutdownRequest<'a>),
    /// Bridge schema (902).
    BridgeFrameChunk(bridge::BridgeFrameChunk<'a>),
    /// Merge schema (903).
    SequenceMergeMapAnnounce(merge::SequenceMergeMapAnnounce<'a>),
    /// Merge schema (903).
    SequenceMergeMapRequest(merge::SequenceMergeMapRequest),
    /// Merge schema (903).
    TimestampMergeMapAnnounce(merge::TimestampMergeMapAnnounce<'a>),
    /// Merge schema (903).
    TimestampMergeMapRequest(merge::TimestampMergeMapRequest),
    /// Trace-link schema (904).
    TraceLinkSet(tracelink::TraceLinkSet<'a>),
    /// Discovery schema (910).
    DiscoveryRequest(discovery::DiscoveryRequest<'a>),
    /// Discovery schema (910).
    DiscoveryResponse(discovery::DiscoveryResponse<'a>),
    /// Admin schema (990, ours).
    DriverStatusRequest(admin::DriverStatusRequest),
    /// Admin schema (990, ours).
    DriverStatusResponse(admin::DriverStatusResponse<'a>),
    /// Admin schema (990, ours).
    DriverLeasesRequest(admin::DriverLeasesRequest),
    /// Admin schema (990, ours).
    DriverLeasesResponse(admin::DriverLeasesResponse<'a>),
    /// Admin schema (990, ours).
    DriverStreamsRequest(admin::DriverStreamsRequest),
    /// Admin schema (990, ours).
    DriverStreamsResponse(admin::DriverStreamsResponse<'a>),
}

impl<'a> AnyMessage<'a> {
    /// Decodes a framed message of any schema, dispatching on schema id then template id,
    /// with the same checks as [`Message::decode`] (a newer schema version is rejected).
    pub fn decode(buf: &'a [u8]) -> Result<Self, DecodeError> {
        Self::decode_framed(buf, true)
    }

    /// Like [`AnyMessage::decode`], but accepts a newer schema version.
    pub fn decode_any_version(buf: &'a [u8]) -> Result<Self, DecodeError> {
        Self::decode_framed(buf, false)
    }

    fn decode_framed(buf: &'a [u8], strict_version: bool) -> Result<Self, DecodeError> {
        let h = MessageHeader::decode(buf)?;
        let known = Self::KINDS
            .iter()
            .any(|&(s, t, _)| s == h.schema_id && t == h.template_id);
        if !known {
            return Err(DecodeError::UnknownMessage {
                schema_id: h.schema_id,
                template_id: h.template_id,
            });
        }
        // Every schema is at the same version today; look ours up per schema anyway.
        let ours = Self::schema_version(h.schema_id);
        if strict_version && h.version > ours {
            return Err(DecodeError::Version {
                max: ours,
                found: h.version,
            });
        }
        let body = buf.get(HEADER_LEN..).unwrap_or_default();
        Self::decode_body(h.schema_id, h.template_id, body, h.block_length, h.version)
    }

    /// Schema version this crate implements for `schema_id` (0 if unknown).
    pub fn schema_version(schema_id: u16) -> u16 {
        match schema_id {
            wire::SCHEMA_ID => wire::SCHEMA_VERSION,
            driver::SCHEMA_ID => driver::SCHEMA_VERSION,
            bridge::SCHEMA_ID => bridge::SCHEMA_VERSION,
            merge::SCHEMA_ID => merge::SCHEMA_VERSION,
            tracelink::SCHEMA_ID => tracelink::SCHEMA_VERSION,
            discovery::SCHEMA_ID => discovery::SCHEMA_VERSION,
            admin::SCHEMA_ID => admin::SCHEMA_VERSION,
            _ => 0,
        }
    }
}
