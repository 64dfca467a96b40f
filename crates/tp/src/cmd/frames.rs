//! Bytes <-> JSON for `tp decode` and `tp encode`: framed messages of the six schemas, and the
//! header-less forms (the 256-byte header slot, the 64-byte superblock, a message body).
//!
//! JSON shapes: a framed message is the codec's `AnyMessage` JSON, tagged by `"message"`.
//! A header-less value adds `"headerless": true`; its `"message"` is `SlotHeader`,
//! `ShmRegionSuperblock` or the name of the message whose body it is.

use serde_json::Value;
use tensorpool_codec::wire::{ShmRegionSuperblock, SlotHeader, slot, superblock};
use tensorpool_codec::{AnyMessage, DecodeError, HEADER_LEN, MessageHeader};

/// What the input bytes are when they carry no SBE message header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Headerless {
    /// A 256-byte header slot (SlotHeader + embedded TensorHeader).
    Slot,
    /// A 64-byte region superblock.
    Superblock,
    /// The body of a message (TensorHeader: the 184-byte block), by schema and template id.
    Body {
        /// Message name.
        name: &'static str,
        /// Schema id.
        schema_id: u16,
        /// Template id.
        template_id: u16,
    },
}

const SLOT_NAME: &str = "SlotHeader";
const SUPERBLOCK_NAME: &str = "ShmRegionSuperblock";

impl std::str::FromStr for Headerless {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "slot" | "slotheader" | "slot-header" => return Ok(Self::Slot),
            "superblock" | "shmregionsuperblock" => return Ok(Self::Superblock),
            "tensor-header" => return Self::body("TensorHeader"),
            _ => {}
        }
        Self::body(s)
    }
}

impl Headerless {
    fn body(name: &str) -> Result<Self, String> {
        AnyMessage::KINDS
            .iter()
            .find(|(_, _, n)| n.eq_ignore_ascii_case(name))
            .map(|&(schema_id, template_id, name)| Self::Body {
                name,
                schema_id,
                template_id,
            })
            .ok_or_else(|| {
                format!(
                    "unknown type `{name}`; expected slot, superblock, tensor-header or a message name ({})",
                    message_names().join(", ")
                )
            })
    }

    /// The name the JSON carries in `"message"`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Slot => SLOT_NAME,
            Self::Superblock => SUPERBLOCK_NAME,
            Self::Body { name, .. } => name,
        }
    }
}

/// Every message name of the six schemas.
pub fn message_names() -> Vec<&'static str> {
    AnyMessage::KINDS.iter().map(|&(_, _, n)| n).collect()
}

/// A decoded input: its JSON, a one-line description, and its canonical encoding.
#[derive(Debug)]
pub struct Decoded {
    /// The JSON value (`tp encode` input).
    pub json: Value,
    /// `FrameDescriptor (schema 900, template 4, version 1, blockLength 40)` or similar.
    pub title: String,
    /// The bytes `tp encode` gives for `json`.
    pub reencoded: Vec<u8>,
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<Value, String> {
    serde_json::to_value(v).map_err(|e| format!("cannot render as JSON: {e}"))
}

/// Decodes a framed message (schema id first, then template id, then the body).
pub fn decode_framed(bytes: &[u8]) -> Result<Decoded, String> {
    let h = MessageHeader::decode(bytes).map_err(|e| e.to_string())?;
    let m = AnyMessage::decode(bytes).map_err(|e| describe_error(&h, e))?;
    let mut reencoded = vec![0u8; m.encoded_len()];
    m.encode(&mut reencoded).map_err(|e| e.to_string())?;
    Ok(Decoded {
        json: to_json(&m)?,
        title: format!(
            "{} (schema {}, template {}, version {}, blockLength {})",
            m.name(),
            h.schema_id,
            h.template_id,
            h.version,
            h.block_length
        ),
        reencoded,
    })
}

fn describe_error(h: &MessageHeader, e: DecodeError) -> String {
    let name = AnyMessage::KINDS
        .iter()
        .find(|&&(s, t, _)| s == h.schema_id && t == h.template_id)
        .map_or("message", |&(_, _, n)| n);
    prefixed(name, e)
}

/// The decoder's message, prefixed by `name` unless it starts with it already.
fn prefixed(name: &str, e: DecodeError) -> String {
    let text = e.to_string();
    if matches!(e, DecodeError::UnknownMessage { .. }) || text.starts_with(name) {
        text
    } else {
        format!("{name}: {text}")
    }
}

/// Decodes bytes that carry no message header.
pub fn decode_headerless(kind: Headerless, bytes: &[u8]) -> Result<Decoded, String> {
    let (mut json, reencoded) = match kind {
        Headerless::Slot => {
            let s = SlotHeader::decode(bytes).map_err(|e| prefixed(SLOT_NAME, e))?;
            let mut out = vec![0u8; slot::LEN];
            s.encode(&mut out).map_err(|e| e.to_string())?;
            (to_json(&s)?, out)
        }
        Headerless::Superblock => {
            let s = ShmRegionSuperblock::decode(bytes).map_err(|e| prefixed(SUPERBLOCK_NAME, e))?;
            let mut out = vec![0u8; superblock::LEN];
            s.encode(&mut out).map_err(|e| e.to_string())?;
            (to_json(&s)?, out)
        }
        Headerless::Body {
            name,
            schema_id,
            template_id,
        } => {
            let block_length = block_length(schema_id, template_id);
            let version = AnyMessage::schema_version(schema_id);
            let m = AnyMessage::decode_body(schema_id, template_id, bytes, block_length, version)
                .map_err(|e| prefixed(name, e))?;
            let mut framed = vec![0u8; m.encoded_len()];
            m.encode(&mut framed).map_err(|e| e.to_string())?;
            (to_json(&m)?, framed.split_off(HEADER_LEN))
        }
    };
    if let Value::Object(fields) = json {
        let mut map = serde_json::Map::new();
        map.insert("message".into(), kind.name().into());
        map.insert("headerless".into(), true.into());
        map.extend(fields.into_iter().filter(|(k, _)| k != "message"));
        json = Value::Object(map);
    }
    Ok(Decoded {
        json,
        title: format!("{} (headerless)", kind.name()),
        reencoded,
    })
}

/// The fixed block length of a message: the codec names it in the error for a block of 0.
fn block_length(schema_id: u16, template_id: u16) -> u16 {
    match AnyMessage::decode_body(schema_id, template_id, &[], 0, 0) {
        Err(DecodeError::BlockLength { min, .. }) => min,
        _ => 0,
    }
}

/// Encodes the JSON of a message: framed, or header-less when `"headerless": true`.
/// A `tp listen --json` line is accepted too (its `"body"` is the message).
pub fn encode_json(mut value: Value) -> Result<Vec<u8>, String> {
    if let Some(body) = value.get_mut("body").filter(|b| b.is_object()) {
        value = body.take();
    }
    let Value::Object(mut map) = value else {
        return Err("expected a JSON object with a \"message\" field".into());
    };
    let headerless = match map.shift_remove("headerless") {
        None | Some(Value::Bool(false)) => false,
        Some(Value::Bool(true)) => true,
        Some(_) => return Err("\"headerless\" must be true or false".into()),
    };
    let name = map
        .get("message")
        .and_then(Value::as_str)
        .ok_or("missing \"message\": the message name")?
        .to_owned();
    let fields = |mut map: serde_json::Map<String, Value>| {
        map.shift_remove("message");
        Value::Object(map)
    };
    let invalid = |e: serde_json::Error| format!("{name}: {e}");
    if headerless && name == SLOT_NAME {
        let s: SlotHeader = serde_json::from_value(fields(map)).map_err(invalid)?;
        let mut out = vec![0u8; slot::LEN];
        s.encode(&mut out).map_err(|e| format!("{name}: {e}"))?;
        return Ok(out);
    }
    if headerless && name == SUPERBLOCK_NAME {
        let s: ShmRegionSuperblock = serde_json::from_value(fields(map)).map_err(invalid)?;
        let mut out = vec![0u8; superblock::LEN];
        s.encode(&mut out).map_err(|e| format!("{name}: {e}"))?;
        return Ok(out);
    }
    if !message_names().contains(&name.as_str()) {
        return Err(format!(
            "unknown message `{name}`; expected one of {}{}",
            message_names().join(", "),
            if headerless {
                ", SlotHeader, ShmRegionSuperblock"
            } else {
                ""
            }
        ));
    }
    let m: AnyMessage<'static> = serde_json::from_value(Value::Object(map)).map_err(invalid)?;
    let mut out = vec![0u8; m.encoded_len()];
    m.encode(&mut out).map_err(|e| format!("{name}: {e}"))?;
    if headerless {
        out.drain(..HEADER_LEN);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tensorpool_codec::Message;
    use tensorpool_codec::wire::FrameDescriptor;

    fn fd() -> Vec<u8> {
        FrameDescriptor {
            stream_id: 10_000,
            epoch: 7,
            seq: 42,
            timestamp_ns: None,
            meta_version: Some(1),
            trace_id: None,
        }
        .encode_to_vec()
        .unwrap()
    }

    #[test]
    fn framed_round_trip() {
        let bytes = fd();
        let d = decode_framed(&bytes).unwrap();
        assert_eq!(d.json["message"], "FrameDescriptor");
        assert_eq!(d.json["seq"], 42);
        assert_eq!(d.reencoded, bytes);
        assert_eq!(encode_json(d.json).unwrap(), bytes);
    }

    #[test]
    fn headerless_body_round_trip() {
        let bytes = fd();
        let kind: Headerless = "framedescriptor".parse().unwrap();
        let d = decode_headerless(kind, &bytes[HEADER_LEN..]).unwrap();
        assert_eq!(d.json["headerless"], true);
        assert_eq!(d.reencoded, &bytes[HEADER_LEN..]);
        assert_eq!(encode_json(d.json).unwrap(), &bytes[HEADER_LEN..]);
        assert_eq!(block_length(900, 4), 40);
    }

    #[test]
    fn listen_lines_and_errors() {
        let d = decode_framed(&fd()).unwrap();
        let line = serde_json::json!({"time": "x", "body": d.json});
        assert_eq!(encode_json(line).unwrap(), fd());
        assert!(encode_json(serde_json::json!({"message": "Nope"})).is_err());
        assert!(encode_json(serde_json::json!([1])).is_err());
        let e = encode_json(serde_json::json!({"message": "FrameDescriptor"})).unwrap_err();
        assert!(e.contains("missing field"), "{e}");
        assert!("bogus".parse::<Headerless>().is_err());
    }
}
