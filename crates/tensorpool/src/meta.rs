//! Data-source metadata types the producer and consumer share (Wire Spec §10.3): the producer
//! publishes [`MetaAttribute`]s in `DataSourceMeta`, the consumer hands them to the
//! application as it received them.

/// One metadata attribute: key, format (`text/plain`, `application/json`, ...) and value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaAttribute {
    /// Attribute name.
    pub key: String,
    /// How `value` is encoded.
    pub format: String,
    /// The value.
    pub value: Vec<u8>,
}

impl MetaAttribute {
    /// A `text/plain` attribute.
    pub fn text(key: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            format: "text/plain".into(),
            value: value.into().into_bytes(),
        }
    }
}
