//! Var-data values: borrowed from the decoded buffer, or owned when built by hand.

use std::borrow::Cow;
use std::fmt;

/// The value of an SBE var-data field (text such as a URI or a channel, or opaque bytes).
///
/// Decoding borrows from the input buffer and never allocates. The schema does not promise
/// UTF-8, so the raw bytes are the value; [`Bytes::as_str`] checks.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Bytes<'a>(Cow<'a, [u8]>);

impl<'a> Bytes<'a> {
    /// An empty value.
    pub const EMPTY: Bytes<'static> = Bytes(Cow::Borrowed(&[]));

    /// Borrows `bytes`.
    pub const fn new(bytes: &'a [u8]) -> Self {
        Self(Cow::Borrowed(bytes))
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The bytes as text, if they are valid UTF-8.
    pub fn as_str(&self) -> Result<&str, std::str::Utf8Error> {
        std::str::from_utf8(&self.0)
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A copy that owns its bytes and so outlives the decoded buffer.
    pub fn into_owned(self) -> Bytes<'static> {
        Bytes(Cow::Owned(self.0.into_owned()))
    }
}

impl fmt::Debug for Bytes<'_> {
    /// Text as a quoted string, anything else as an escaped byte string (`b"..."`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.as_str() {
            Ok(s) => fmt::Debug::fmt(s, f),
            Err(_) => write!(f, "b\"{}\"", self.0.escape_ascii()),
        }
    }
}

impl AsRef<[u8]> for Bytes<'_> {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl<'a> From<&'a str> for Bytes<'a> {
    fn from(s: &'a str) -> Self {
        Self(Cow::Borrowed(s.as_bytes()))
    }
}

impl<'a> From<&'a [u8]> for Bytes<'a> {
    fn from(b: &'a [u8]) -> Self {
        Self(Cow::Borrowed(b))
    }
}

impl From<String> for Bytes<'static> {
    fn from(s: String) -> Self {
        Self(Cow::Owned(s.into_bytes()))
    }
}

impl From<Vec<u8>> for Bytes<'static> {
    fn from(v: Vec<u8>) -> Self {
        Self(Cow::Owned(v))
    }
}

impl PartialEq<str> for Bytes<'_> {
    fn eq(&self, other: &str) -> bool {
        *self.0 == *other.as_bytes()
    }
}

impl PartialEq<&str> for Bytes<'_> {
    fn eq(&self, other: &&str) -> bool {
        *self.0 == *other.as_bytes()
    }
}

impl PartialEq<[u8]> for Bytes<'_> {
    fn eq(&self, other: &[u8]) -> bool {
        *self.0 == *other
    }
}
