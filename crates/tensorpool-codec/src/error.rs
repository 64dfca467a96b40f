//! Decode and encode errors. Both are small `Copy` values: rejecting a message on the hot
//! path never allocates.

/// Why a buffer could not be decoded. Each variant names what was wrong and what was
/// expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The buffer ends before `what` does.
    #[error("{what} truncated: needs {need} more bytes, {have} left")]
    Truncated {
        /// The part being read (a header, a message, a field or a group).
        what: &'static str,
        /// Bytes needed from the current position.
        need: usize,
        /// Bytes left from the current position.
        have: usize,
    },
    /// The message header names another schema.
    #[error("schema id {found}, expected {expected}")]
    SchemaId {
        /// Schema id of the decoder.
        expected: u16,
        /// Schema id in the header.
        found: u16,
    },
    /// The message header names another message of the schema.
    #[error("template id {found}, expected {expected}")]
    TemplateId {
        /// Template id of the decoder.
        expected: u16,
        /// Template id in the header.
        found: u16,
    },
    /// The sender uses a newer schema version than this decoder accepts.
    #[error("schema version {found} is newer than the supported {max}")]
    Version {
        /// Highest version this decoder accepts.
        max: u16,
        /// Version in the header.
        found: u16,
    },
    /// The header's blockLength is shorter than the message's fixed block.
    #[error("{message}: blockLength {found} is shorter than {min}")]
    BlockLength {
        /// Message name.
        message: &'static str,
        /// Smallest acceptable blockLength.
        min: u16,
        /// blockLength in the header.
        found: u16,
    },
    /// A group header's blockLength is shorter than the group entry's fixed block.
    #[error("group {group}: entry blockLength {found} is shorter than {min}")]
    GroupBlockLength {
        /// Group name.
        group: &'static str,
        /// Smallest acceptable blockLength.
        min: u16,
        /// blockLength in the group header.
        found: u16,
    },
    /// An enum field holds a value the schema does not define.
    #[error("{field}: unknown enum value {value}")]
    UnknownEnum {
        /// Field name.
        field: &'static str,
        /// Raw value on the wire.
        value: i64,
    },
    /// A var-data field is longer than the schema allows.
    #[error("{field}: length {len} exceeds the maximum {max}")]
    VarDataTooLong {
        /// Field name.
        field: &'static str,
        /// Length prefix on the wire.
        len: usize,
        /// Maximum length from the schema.
        max: usize,
    },
    /// A value that must equal a fixed number does not (for instance the embedded
    /// TensorHeader's message header inside a SlotHeader).
    #[error("{what} is {found}, expected {expected}")]
    Mismatch {
        /// What was checked.
        what: &'static str,
        /// Required value.
        expected: u64,
        /// Value found.
        found: u64,
    },
    /// No message of any known schema has this schema id and template id.
    #[error("unknown message: schema id {schema_id}, template id {template_id}")]
    UnknownMessage {
        /// Schema id in the header.
        schema_id: u16,
        /// Template id in the header.
        template_id: u16,
    },
}

/// Why a value could not be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The destination buffer is shorter than the encoding.
    #[error("buffer too small: {need} bytes needed, {have} available")]
    BufferTooSmall {
        /// Bytes the encoding needs.
        need: usize,
        /// Bytes available.
        have: usize,
    },
    /// A var-data field is longer than the schema allows.
    #[error("{field}: length {len} exceeds the maximum {max}")]
    TooLong {
        /// Field name.
        field: &'static str,
        /// Length of the value.
        len: usize,
        /// Maximum length from the schema.
        max: usize,
    },
    /// A repeating group has more entries than its u16 count can say.
    #[error("group {group}: {count} entries, at most {max} allowed")]
    TooMany {
        /// Group name.
        group: &'static str,
        /// Number of entries.
        count: usize,
        /// Maximum number of entries.
        max: usize,
    },
}
