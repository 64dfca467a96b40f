//! Error texts bounded at [`ERROR_MESSAGE_MAX_LEN`] (Driver Model §4.2) and built without
//! allocating: a fixed buffer that `write!` fills and truncates at a character boundary.

use std::fmt;

use tensorpool_codec::driver::ERROR_MESSAGE_MAX_LEN;

/// A text of at most 1024 bytes, formatted in place (no allocation).
#[derive(Clone)]
pub struct ErrorText {
    buf: [u8; ERROR_MESSAGE_MAX_LEN],
    len: usize,
}

impl Default for ErrorText {
    fn default() -> Self {
        Self {
            buf: [0; ERROR_MESSAGE_MAX_LEN],
            len: 0,
        }
    }
}

impl fmt::Debug for ErrorText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl ErrorText {
    /// Empties the text.
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// The text so far.
    pub fn as_str(&self) -> &str {
        // Only whole characters are ever copied in, so this cannot fail.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }

    /// The bytes so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Replaces the text with `args`, truncated to 1024 bytes.
    pub fn set(&mut self, args: fmt::Arguments<'_>) -> &str {
        self.clear();
        let _ = fmt::write(self, args);
        self.as_str()
    }
}

impl fmt::Write for ErrorText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = ERROR_MESSAGE_MAX_LEN - self.len;
        let take = truncate_utf8(s, room);
        self.buf[self.len..self.len + take.len()].copy_from_slice(take.as_bytes());
        self.len += take.len();
        Ok(())
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
pub fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_at_1024_bytes_on_a_char_boundary() {
        let mut t = ErrorText::default();
        let long = "é".repeat(600); // 1200 bytes
        assert_eq!(t.set(format_args!("{long}")).len(), 1024);
        assert!(t.as_str().chars().all(|c| c == 'é'));
        t.set(format_args!("a{}b", 1));
        assert_eq!(t.as_str(), "a1b");
        assert_eq!(truncate_utf8("aé", 2), "a");
    }
}
