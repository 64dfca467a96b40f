//! Dispatch gate: schema id first, then version, then template id (PITFALLS #5). Template ids
//! repeat across schemas, so nothing may look at the template id of a message of another
//! schema.

use tensorpool_codec::{DecodeError, MessageHeader, peek_header, wire};

/// What the gate decided about one inbound buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// The schema is the one asked for, at a version we implement: dispatch on
    /// `header.template_id`.
    Accept(MessageHeader),
    /// Another schema (or a buffer too short for a header): not ours, ignore it.
    OtherSchema,
    /// Our schema but a newer version than we implement (Driver Model §4.4a).
    NewerVersion(MessageHeader),
    /// Too short to hold a message header.
    Truncated(DecodeError),
}

/// Gates `buf` for schema `schema_id`, of which we implement versions up to `max_version`.
pub fn gate(buf: &[u8], schema_id: u16, max_version: u16) -> Gate {
    match peek_header(buf) {
        Err(e) => Gate::Truncated(e),
        Ok(h) if h.schema_id != schema_id => Gate::OtherSchema,
        Ok(h) if h.version > max_version => Gate::NewerVersion(h),
        Ok(h) => Gate::Accept(h),
    }
}

/// The template id of a wire-schema (900) message of a supported version, or `None` for
/// anything else (another schema, a newer version, a truncated header).
pub fn wire_template(msg: &[u8]) -> Option<u16> {
    let h = peek_header(msg).ok()?;
    (h.schema_id == wire::SCHEMA_ID && h.version <= wire::SCHEMA_VERSION).then_some(h.template_id)
}

/// Template ids of the wire messages (schema 900) the roles dispatch on.
pub mod tid {
    use tensorpool_codec::{Message, wire};

    /// `ShmPoolAnnounce`.
    pub const ANNOUNCE: u16 = <wire::ShmPoolAnnounce<'_> as Message<'_>>::TEMPLATE_ID;
    /// `ConsumerHello`.
    pub const HELLO: u16 = <wire::ConsumerHello<'_> as Message<'_>>::TEMPLATE_ID;
    /// `ConsumerConfig`.
    pub const CONFIG: u16 = <wire::ConsumerConfig<'_> as Message<'_>>::TEMPLATE_ID;
    /// `FrameDescriptor`.
    pub const DESCRIPTOR: u16 = <wire::FrameDescriptor as Message<'_>>::TEMPLATE_ID;
    /// `FrameProgress`.
    pub const PROGRESS: u16 = <wire::FrameProgress as Message<'_>>::TEMPLATE_ID;
    /// `QosConsumer`.
    pub const QOS_CONSUMER: u16 = <wire::QosConsumer as Message<'_>>::TEMPLATE_ID;
    /// `DataSourceAnnounce`.
    pub const DS_ANNOUNCE: u16 = <wire::DataSourceAnnounce<'_> as Message<'_>>::TEMPLATE_ID;
    /// `DataSourceMeta`.
    pub const DS_META: u16 = <wire::DataSourceMeta<'_> as Message<'_>>::TEMPLATE_ID;
    /// `MetaBlobAnnounce`.
    pub const BLOB_ANNOUNCE: u16 = <wire::MetaBlobAnnounce as Message<'_>>::TEMPLATE_ID;
    /// `MetaBlobChunk`.
    pub const BLOB_CHUNK: u16 = <wire::MetaBlobChunk<'_> as Message<'_>>::TEMPLATE_ID;
    /// `MetaBlobComplete`.
    pub const BLOB_COMPLETE: u16 = <wire::MetaBlobComplete as Message<'_>>::TEMPLATE_ID;
}

#[cfg(test)]
mod tests {
    use super::*;
    use tensorpool_codec::Message;
    use tensorpool_codec::driver::{self, Role, ShmDetachRequest};

    #[test]
    fn gates_on_schema_then_version() {
        let m = ShmDetachRequest {
            correlation_id: 1,
            lease_id: 2,
            stream_id: 3,
            client_id: 4,
            role: Role::Producer,
        };
        let mut buf = m.encode_to_vec().unwrap();
        let h = peek_header(&buf).unwrap();
        assert_eq!(gate(&buf, driver::SCHEMA_ID, 1), Gate::Accept(h));
        assert_eq!(gate(&buf, 900, 1), Gate::OtherSchema);
        buf[6] = 2; // version
        assert!(matches!(
            gate(&buf, driver::SCHEMA_ID, 1),
            Gate::NewerVersion(_)
        ));
        assert!(matches!(
            gate(&buf[..5], driver::SCHEMA_ID, 1),
            Gate::Truncated(_)
        ));
    }
}
