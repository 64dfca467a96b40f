//! Region URI parser (Wire Spec §15.22) on arbitrary bytes: never panics; whatever parses
//! prints back to a string that parses to the same URI. Inputs are also read the way the C
//! `fuzz_shm_uri_validate` harness frames them (4-byte little-endian stride, then the URI).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tensorpool_shm::RegionUri;
use tensorpool_shm::pool::{stride_is_julia_compatible, stride_is_valid};

fn check(text: &str) {
    if let Ok(uri) = RegionUri::parse(text) {
        let printed = uri.to_string();
        let again = RegionUri::parse(&printed).expect("a printed URI parses");
        assert_eq!(again, uri);
        assert!(uri.path_str().starts_with('/'));
        assert!(!uri.path_str().contains(['|', '?', ' ']));
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        check(text);
    }
    if data.len() >= 4 {
        let stride = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
        let valid = stride_is_valid(stride);
        assert!(!stride_is_julia_compatible(stride) || valid);
        if let Ok(text) = std::str::from_utf8(&data[4..]) {
            check(text);
        }
    }
});
