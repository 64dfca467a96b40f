//! Arbitrary bytes decoded as every message of every schema and as the shared-memory
//! structures. Decoding must never panic; whatever decodes must re-encode (without panic)
//! to bytes that decode to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tensorpool_codec::wire::{ShmRegionSuperblock, SlotHeader, slot, superblock};
use tensorpool_codec::{AnyMessage, HEADER_LEN, MessageHeader};

fn reencode(m: &AnyMessage<'_>) {
    let mut buf = vec![0u8; m.encoded_len()];
    let n = m.encode(&mut buf).expect("a decoded message encodes");
    assert_eq!(n, buf.len(), "encoded_len is exact");
    let back = AnyMessage::decode(&buf).expect("a re-encoded message decodes");
    assert_eq!(&back, m);
}

fuzz_target!(|data: &[u8]| {
    // 1. framed: dispatch by the header (schema id, then template id)
    if let Ok(m) = AnyMessage::decode(data) {
        reencode(&m);
    }
    if let Ok(m) = AnyMessage::decode_any_version(data) {
        reencode(&m);
    }

    // 2. forced: the body decoded as every message type, with the header's blockLength
    //    and version whatever its ids say
    if let (Ok(h), Some(body)) = (MessageHeader::decode(data), data.get(HEADER_LEN..)) {
        for &(schema_id, template_id, _) in AnyMessage::KINDS {
            if let Ok(m) =
                AnyMessage::decode_body(schema_id, template_id, body, h.block_length, h.version)
            {
                reencode(&m);
            }
        }
    }

    // 3. shared-memory structures (no message header)
    if let Ok(s) = SlotHeader::decode(data) {
        let mut buf = [0u8; slot::LEN];
        s.encode(&mut buf).expect("slot encodes");
        assert_eq!(SlotHeader::decode(&buf).expect("slot decodes"), s);
    }
    if let Ok(s) = ShmRegionSuperblock::decode(data) {
        let mut buf = [0u8; superblock::LEN];
        s.encode(&mut buf).expect("superblock encodes");
        assert_eq!(
            ShmRegionSuperblock::decode(&buf).expect("superblock decodes"),
            s
        );
        assert_eq!(&buf[..], &data[..superblock::LEN]);
    }
});
