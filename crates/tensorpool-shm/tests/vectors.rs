//! Bytes written by the C implementation (tensor_pool_c @ 41425596, its fuzz seed corpus):
//! each decodes as the C side wrote it, passes or fails our validation as stated, and the
//! accepted ones re-encode byte for byte.
//!
//! The vectors live in `<shared>/vectors/tensor_pool_c/`, where `<shared>` is
//! `$TENSORPOOL_SHARED_DIR` or `<workspace>/../shared`. Absent: each test prints why and passes.

use std::path::{Path, PathBuf};

use tensorpool_codec::Message;
use tensorpool_shm::slot::{decode_slot, encode_slot, header_index, validate_slot};
use tensorpool_shm::superblock::{self, ExpectedRegion};
use tensorpool_shm::tensor::{Dtype, MajorOrder, ProgressUnit, TensorHeader, validate_tensor};
use tensorpool_shm::{
    AllowedBaseDirs, DropReason, PathError, PoolGeometry, RegionType, RegionUri, UriError, pool,
};

fn vector(name: &str) -> Option<Vec<u8>> {
    let shared = std::env::var_os("TENSORPOOL_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
    let path = shared.join("vectors/tensor_pool_c").join(name);
    match std::fs::read(&path) {
        Ok(b) => Some(b),
        Err(e) => {
            println!(
                "SKIP: vector {} not readable ({e}); set TENSORPOOL_SHARED_DIR",
                path.display()
            );
            None
        }
    }
}

fn slot_bytes(v: &[u8]) -> [u8; 256] {
    v.try_into().expect("a header slot vector is 256 bytes")
}

/// superblock.bin: a header ring superblock (epoch 1, stream 1000, 8 slots, slot_bytes 256,
/// stride_bytes 0, pid and timestamps 0). Accepted against the matching announce; re-encodes
/// identically.
#[test]
fn vector_superblock_c() {
    let Some(v) = vector("superblock.bin") else {
        return;
    };
    let bytes: [u8; 64] = v.as_slice().try_into().unwrap();
    assert_eq!(&bytes[..8], b"1MHSLPOT");
    let sb = superblock::decode(&bytes).unwrap();
    assert_eq!(sb.magic, tensorpool_shm::MAGIC);
    assert_eq!((sb.layout_version, sb.epoch, sb.stream_id), (1, 1, 1000));
    assert_eq!(
        (sb.region_type, sb.pool_id, sb.nslots),
        (RegionType::HeaderRing, 0, 8)
    );
    assert_eq!((sb.slot_bytes, sb.stride_bytes, sb.pid), (256, 0, 0));
    assert_eq!((sb.start_timestamp_ns, sb.activity_timestamp_ns), (0, 0));
    superblock::validate(&sb, &ExpectedRegion::header_ring(1, 1, 1000, 8)).unwrap();
    // A different announce (epoch 2) must not accept it.
    assert!(superblock::validate(&sb, &ExpectedRegion::header_ring(1, 2, 1000, 8)).is_err());
    let mut out = [0u8; 64];
    superblock::encode(&sb, &mut out);
    assert_eq!(out, bytes);
    // Our own encoding of the same region is byte-identical (PITFALLS #9 header ring sizes).
    superblock::encode(
        &superblock::for_region(&ExpectedRegion::header_ring(1, 1, 1000, 8), 0, 0),
        &mut out,
    );
    assert_eq!(out, bytes);
}

/// slot_header.bin: seq 0 committed, 192-byte FLOAT32 row-major tensor of shape [1] in pool 1,
/// payload slot 0. Accepted at header index 0 when pool 1 has a stride >= 192; rejected when
/// the stride is smaller (values_len_bytes > stride). Re-encodes identically.
#[test]
fn vector_slot_header_c() {
    let Some(v) = vector("slot_header.bin") else {
        return;
    };
    let bytes = slot_bytes(&v);
    let s = decode_slot(&bytes).unwrap();
    assert_eq!(
        (
            s.seq_commit,
            s.values_len_bytes,
            s.payload_slot,
            s.pool_id,
            s.payload_offset
        ),
        (1, 192, 0, 1, 0)
    );
    let t = &s.tensor;
    assert_eq!(
        (t.dtype, t.major_order, t.ndims, t.progress_unit),
        (Dtype::Float32, MajorOrder::Row, 1, ProgressUnit::None)
    );
    assert_eq!(t.dims, [1, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(t.strides, [0; 8]);
    let pools = [PoolGeometry {
        pool_id: 1,
        stride_bytes: 256,
        nslots: 8,
    }];
    let check = validate_slot(&s, header_index(0, 8), &pools).unwrap();
    assert_eq!(
        check.layout.extent_bytes, 4,
        "the tensor spans 4 of the 192 payload bytes"
    );
    let small = [PoolGeometry {
        pool_id: 1,
        stride_bytes: 128,
        nslots: 8,
    }];
    assert_eq!(
        validate_slot(&s, 0, &small),
        Err(DropReason::ValuesLenExceedsStride)
    );
    let mut out = [0u8; 256];
    encode_slot(&s, &mut out).unwrap();
    assert_eq!(out, bytes);
}

/// slot_tensor.bin: seq 1 committed, 64-byte payload, but payload_slot 0. In any ring of more
/// than one slot seq 1 lives at header index 1, so the frame is rejected
/// (PayloadSlotMismatch, §15.5); in a one-slot ring it is accepted. Re-encodes identically.
#[test]
fn vector_slot_tensor_c() {
    let Some(v) = vector("slot_tensor.bin") else {
        return;
    };
    let bytes = slot_bytes(&v);
    let s = decode_slot(&bytes).unwrap();
    assert_eq!(
        (
            s.seq_commit >> 1,
            s.seq_commit & 1,
            s.values_len_bytes,
            s.payload_slot,
            s.pool_id
        ),
        (1, 1, 64, 0, 1)
    );
    let pools8 = [PoolGeometry {
        pool_id: 1,
        stride_bytes: 64,
        nslots: 8,
    }];
    assert_eq!(
        validate_slot(&s, header_index(1, 8), &pools8),
        Err(DropReason::PayloadSlotMismatch)
    );
    let pools1 = [PoolGeometry {
        pool_id: 1,
        stride_bytes: 64,
        nslots: 1,
    }];
    assert!(validate_slot(&s, header_index(1, 1), &pools1).is_ok());
    let mut out = [0u8; 256];
    encode_slot(&s, &mut out).unwrap();
    assert_eq!(out, bytes);
}

/// tensor_header.bin: the TensorHeader message alone (message header + 184-byte body):
/// FLOAT32, row-major, shape [1]. Valid; re-encodes identically; equal to the header embedded
/// in slot_header.bin.
#[test]
fn vector_tensor_header_c() {
    let Some(v) = vector("tensor_header.bin") else {
        return;
    };
    assert_eq!(v.len(), 192);
    let t = TensorHeader::decode(&v).unwrap();
    assert_eq!(
        (t.dtype, t.major_order, t.ndims),
        (Dtype::Float32, MajorOrder::Row, 1)
    );
    let layout = validate_tensor(&t, 4).unwrap();
    assert_eq!(layout.extent_bytes, 4);
    let mut out = vec![0u8; 192];
    assert_eq!(t.encode(&mut out).unwrap(), 192);
    assert_eq!(out, v);
    if let Some(slot) = vector("slot_header.bin") {
        assert_eq!(&slot[64..], &v[..], "the slot embeds the same TensorHeader");
    }
}

/// shm_uri.bin: `shm:file?path=/dev/shm/tensorpool|require_hugepages=false`. Syntactically
/// valid; prints back identically. (Mapping it would still need path containment: the path is
/// the base directory itself, never a region file.)
#[test]
fn vector_shm_uri_c() {
    let Some(v) = vector("shm_uri.bin") else {
        return;
    };
    let text = std::str::from_utf8(&v).unwrap();
    let uri = RegionUri::parse(text).unwrap();
    assert_eq!(uri.path_str(), "/dev/shm/tensorpool");
    assert_eq!(uri.hugepages_param(), Some(false));
    assert_eq!(uri.to_string().as_bytes(), &v[..]);
}

/// shm_uri_validate.bin: framed for the C `fuzz_shm_uri_validate` harness: a 4-byte
/// little-endian stride (128), then URI bytes. The raw URI `shm:file?path=/tmp|
/// require_hugepages=false` parses and 128 is a valid stride, but the region is rejected by
/// path containment: `/tmp` is a directory, not a regular file (§15.21a.5). The C harness maps
/// each byte to `32 + b % 95` before parsing; that mapped string is rejected (unknown scheme).
#[test]
fn vector_shm_uri_validate_c() {
    let Some(v) = vector("shm_uri_validate.bin") else {
        return;
    };
    let stride = u32::from_le_bytes(v[..4].try_into().unwrap());
    assert_eq!(stride, 128);
    assert!(pool::stride_is_valid(stride));
    assert!(pool::stride_is_julia_compatible(stride));
    let text = std::str::from_utf8(&v[4..]).unwrap();
    let uri = RegionUri::parse(text).unwrap();
    assert_eq!(uri.path_str(), "/tmp");
    assert!(!uri.requires_hugepages());
    assert_eq!(uri.to_string(), text);
    let allowed = AllowedBaseDirs::new(["/"]).unwrap();
    let canonical_tmp = std::fs::canonicalize("/tmp").unwrap();
    let r = allowed.check(uri.path());
    if canonical_tmp == Path::new("/tmp") {
        assert!(matches!(r, Err(PathError::NotRegularFile { .. })), "{r:?}");
    } else {
        assert!(r.is_err());
    }
    let mapped: String = v[4..].iter().map(|b| char::from(32 + b % 95)).collect();
    assert!(
        matches!(
            RegionUri::parse(&mapped),
            Err(UriError::UnknownScheme { .. })
        ),
        "{mapped}"
    );
}
