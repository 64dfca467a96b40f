//! Feature `serde`: every message survives JSON and back (owned), and re-encodes to the
//! same bytes; var data is a string when it is UTF-8 and `{"hex": ...}` otherwise.

use std::path::PathBuf;

use tensorpool_codec::wire::{ClockDomain, PayloadPool, ShmPoolAnnounce};
use tensorpool_codec::{AnyMessage, Bytes, Group, Message};

fn through_json(bytes: &[u8]) -> String {
    let m = AnyMessage::decode(bytes).expect("decode");
    let json = serde_json::to_string(&m).expect("to json");
    let back: AnyMessage<'static> = serde_json::from_str(&json).expect("from json");
    assert_eq!(back, m, "{json}");
    let mut out = vec![0u8; back.encoded_len()];
    assert_eq!(back.encode(&mut out), Ok(bytes.len()));
    assert_eq!(out, bytes, "{json}");
    json
}

#[test]
fn vectors_through_json() {
    let dir = std::env::var_os("TENSORPOOL_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"))
        .join("vectors/tensor_pool_c");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        println!(
            "skipped: {} not found; set TENSORPOOL_SHARED_DIR",
            dir.display()
        );
        return;
    };
    let mut seen = 0;
    for entry in entries {
        let bytes = std::fs::read(entry.expect("entry").path()).expect("read");
        if AnyMessage::decode(&bytes).is_ok() {
            through_json(&bytes);
            seen += 1;
        }
    }
    assert_eq!(seen, 17, "framed vectors accepted as they are");
}

#[test]
fn json_shape() {
    let pools = [PayloadPool {
        pool_id: 1,
        pool_nslots: 8,
        stride_bytes: 64,
        region_uri: (&b"\xff\x00"[..]).into(),
    }];
    let m = ShmPoolAnnounce {
        stream_id: 1,
        producer_id: 2,
        epoch: 3,
        announce_timestamp_ns: 4,
        announce_clock_domain: ClockDomain::RealtimeSynced,
        layout_version: 1,
        header_nslots: 8,
        header_slot_bytes: 256,
        payload_pools: Group::Slice(&pools),
        header_region_uri: Bytes::from("shm:file?path=/dev/shm/h"),
    };
    let json = through_json(&m.encode_to_vec().expect("encode"));
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(v["message"], "ShmPoolAnnounce");
    assert_eq!(v["announce_clock_domain"], "REALTIME_SYNCED");
    assert_eq!(v["header_region_uri"], "shm:file?path=/dev/shm/h");
    assert_eq!(v["payload_pools"][0]["region_uri"]["hex"], "ff00");
}
