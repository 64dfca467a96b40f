//! Small helpers shared by the tools: hex, wall-clock time stamps, the stop flag (SIGINT,
//! SIGTERM), the default Aeron directory, a bounded back-off, and the text rendering of decoded messages.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use serde_json::Value;

use super::CmdError;

/// Lower-case hex of `bytes`, no separators.
pub fn to_hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Parses hex text: whitespace, `:`, `,` and `0x` prefixes are ignored.
pub fn from_hex(text: &str) -> Result<Vec<u8>, String> {
    let mut digits = String::with_capacity(text.len());
    for word in text.split(|c: char| c.is_whitespace() || c == ':' || c == ',') {
        let word = word
            .strip_prefix("0x")
            .or_else(|| word.strip_prefix("0X"))
            .unwrap_or(word);
        digits.push_str(word);
    }
    if let Some(bad) = digits.chars().find(|c| !c.is_ascii_hexdigit()) {
        return Err(format!("not a hex digit: {bad:?}"));
    }
    if !digits.len().is_multiple_of(2) {
        return Err(format!("odd number of hex digits ({})", digits.len()));
    }
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).map_err(|e| e.to_string()))
        .collect()
}

/// Unix time in nanoseconds as RFC 3339 UTC with microseconds: `2026-01-25T10:00:00.123456Z`
/// (humantime's formatter).
pub fn rfc3339_utc(unix_ns: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(unix_ns);
    humantime::format_rfc3339_micros(t).to_string()
}

/// A flag set by SIGINT or SIGTERM: every `tp` process that runs until stopped (roles, the
/// driver, its clients, the demo) stops through it, by signal-hook. May be called more than
/// once in a process: each call registers one more flag.
pub fn stop_flag() -> Result<Arc<AtomicBool>, CmdError> {
    let flag = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, flag.clone())?;
    }
    Ok(flag)
}

/// The Aeron directory to use: the flag, else `AERON_DIR`, else Aeron's own default
/// (`/dev/shm/aeron-<user>` on Linux, as the C client computes it).
pub fn aeron_dir(flag: Option<&PathBuf>) -> PathBuf {
    if let Some(dir) = flag {
        return dir.clone();
    }
    if let Some(dir) = std::env::var_os("AERON_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let user = std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "default".into());
    tensorpool_aeron::default_base_dir().join(format!("aeron-{user}"))
}

/// Sleeps a little longer each idle round (10 us doubling to ~2.5 ms); `reset` on work.
#[derive(Debug, Default)]
pub struct Backoff(u32);

impl Backoff {
    /// One idle round.
    pub fn idle(&mut self) {
        self.0 = (self.0 + 1).min(8);
        std::thread::sleep(Duration::from_micros(10u64 << self.0));
    }

    /// Work was done: start again from the shortest sleep.
    pub fn reset(&mut self) {
        self.0 = 0;
    }
}

/// One line of `key=value` pairs for a JSON object (nested objects and arrays inline).
pub fn json_to_kv(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(map) => {
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(k);
                out.push('=');
                inline(v, &mut out);
            }
        }
        other => inline(other, &mut out),
    }
    out
}

fn inline(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::String(s) if s.is_empty() => out.push_str("\"\""),
        Value::String(s) if s.contains(char::is_whitespace) => {
            let _ = write!(out, "{s:?}");
        }
        Value::String(s) => out.push_str(s),
        Value::Object(map) => {
            out.push('{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(k);
                out.push('=');
                inline(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                inline(v, out);
            }
            out.push(']');
        }
        other => {
            let _ = write!(out, "{other}");
        }
    }
}

/// Indented `key: value` lines for a JSON object (one field per line, groups as lists).
pub fn json_to_lines(value: &Value, indent: usize, out: &mut String) {
    let pad = "  ".repeat(indent);
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match v {
                    Value::Array(items) if items.iter().any(Value::is_object) => {
                        let _ = writeln!(out, "{pad}{k}: {} entries", items.len());
                        for (i, item) in items.iter().enumerate() {
                            let _ = writeln!(out, "{pad}  [{i}]");
                            json_to_lines(item, indent + 2, out);
                        }
                    }
                    Value::Object(_) if !is_hex_object(v) => {
                        let _ = writeln!(out, "{pad}{k}:");
                        json_to_lines(v, indent + 1, out);
                    }
                    Value::String(hex) if k == "pad" && hex.bytes().all(|b| b == b'0') => {
                        let _ = writeln!(out, "{pad}{k}: {} zero bytes", hex.len() / 2);
                    }
                    _ => {
                        let mut s = String::new();
                        inline(v, &mut s);
                        let _ = writeln!(out, "{pad}{k}: {s}");
                    }
                }
            }
        }
        other => {
            let mut s = String::new();
            inline(other, &mut s);
            let _ = writeln!(out, "{pad}{s}");
        }
    }
}

/// `{"hex": "..."}`: var data that is not UTF-8, shown inline.
fn is_hex_object(v: &Value) -> bool {
    v.as_object()
        .is_some_and(|m| m.len() == 1 && m.contains_key("hex"))
}

/// The stream id a decoded message is about: its `stream_id` or `out_stream_id` field.
pub fn message_stream_id(body: &Value) -> Option<u64> {
    body.get("stream_id")
        .or_else(|| body.get("out_stream_id"))
        .and_then(Value::as_u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_separators() {
        assert_eq!(to_hex(&[0, 0xab, 0x10]), "00ab10");
        assert_eq!(from_hex("00 ab:10\n"), Ok(vec![0, 0xab, 0x10]));
        assert_eq!(from_hex("0x00 0xAB"), Ok(vec![0, 0xab]));
        assert!(from_hex("abc").is_err());
        assert!(from_hex("zz").is_err());
    }

    #[test]
    fn rfc3339_known_instants() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            rfc3339_utc(1_700_000_000_123_456_789),
            "2023-11-14T22:13:20.123456Z"
        );
        assert_eq!(
            rfc3339_utc(951_782_400_000_000_000),
            "2000-02-29T00:00:00.000000Z"
        );
    }

    #[test]
    fn kv_rendering() {
        let v: Value = serde_json::json!({"a": 1, "b": "x y", "c": [{"d": 2}], "e": ""});
        assert_eq!(json_to_kv(&v), "a=1 b=\"x y\" c=[{d=2}] e=\"\"");
    }

    #[test]
    fn stream_id_of_messages() {
        let v = serde_json::json!({"stream_id": 7});
        assert_eq!(message_stream_id(&v), Some(7));
        let v = serde_json::json!({"out_stream_id": 8});
        assert_eq!(message_stream_id(&v), Some(8));
        assert_eq!(message_stream_id(&serde_json::json!({})), None);
    }
}
