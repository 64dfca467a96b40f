//! Dispatch gate: schema id first, then version, then template id (PITFALLS #5). Template ids
//! repeat across schemas, so nothing may look at the template id of a message of another
//! schema.

use tensorpool_codec::{DecodeError, MessageHeader, peek_header};

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
