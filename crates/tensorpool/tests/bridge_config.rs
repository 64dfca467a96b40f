//! Bridge configuration (Bridge Spec v1.1 §10): the four example files of both peers load
//! unchanged and mean what they say; defaults; environment overrides win; every invalid key
//! is an error naming it.

use std::collections::HashMap;
use std::path::PathBuf;

use tensorpool::bridge::BridgeConfig;
use tensorpool::bridge::config::{
    DEFAULT_ASSEMBLY_TIMEOUT_MS, DEFAULT_MAX_CHUNK_BYTES, DEFAULT_MAX_PAYLOAD_BYTES,
    DEFAULT_MTU_BYTES,
};
use tensorpool::config::{ConfigError, EnvSource, IdRange, NoEnv, Source};

fn shared_configs() -> Option<PathBuf> {
    let dir = std::env::var_os("TENSORPOOL_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"))
        .join("configs");
    if dir.is_dir() {
        Some(dir)
    } else {
        println!(
            "skipped: peer configs not found at {}; set TENSORPOOL_SHARED_DIR",
            dir.display()
        );
        None
    }
}

struct MapEnv(HashMap<String, String>);

impl EnvSource for MapEnv {
    fn var(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }
}

const MINIMAL: &str = r#"
[bridge]
instance_id = "b"
payload_channel = "aeron:udp?endpoint=10.0.0.2:40123"
payload_stream_id = 3000
control_channel = "aeron:udp?endpoint=10.0.0.2:40124"
control_stream_id = 3001

[[mappings]]
source_stream_id = 10000
dest_stream_id = 20000
profile = "default"
"#;

fn load(text: &str) -> Result<BridgeConfig, ConfigError> {
    BridgeConfig::from_toml(text, &NoEnv)
}

fn error(text: &str) -> String {
    match load(text) {
        Ok(c) => panic!("accepted: {c:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn peer_examples_load_unchanged() {
    let Some(dir) = shared_configs() else { return };
    for f in [
        "tensor_pool_c/bridge_config_example.toml",
        "AeronTensorPool.jl/bridge_config_example.toml",
        "AeronTensorPool.jl/bridge_chain_a_example.toml",
        "AeronTensorPool.jl/bridge_chain_b_example.toml",
    ] {
        let cfg =
            BridgeConfig::load(Some(&dir.join(f)), &NoEnv).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(cfg.unknown_keys.is_empty(), "{f}: {:?}", cfg.unknown_keys);
        assert!(!cfg.mappings.is_empty(), "{f}");
    }
    let c = BridgeConfig::load(
        Some(&dir.join("tensor_pool_c/bridge_config_example.toml")),
        &NoEnv,
    )
    .unwrap();
    assert_eq!(c.instance_id, "bridge-01");
    assert_eq!(c.payload_stream_id, 5000);
    assert_eq!(c.mtu_bytes, 1408);
    assert_eq!(c.chunk_bytes, 1200);
    assert_eq!(c.effective_chunk_bytes(), 1200);
    assert_eq!(c.dest_stream_id_range, IdRange::new(30000, 30999));
    assert_eq!(c.source_metadata_stream_id, 1200);
    assert_eq!(c.mappings[0].dest_stream_id, 0);
    assert_eq!(c.mappings[0].metadata_stream_id, 200);
    let jl = BridgeConfig::load(
        Some(&dir.join("AeronTensorPool.jl/bridge_config_example.toml")),
        &NoEnv,
    )
    .unwrap();
    assert_eq!(jl.mappings.len(), 4);
    assert_eq!(jl.mappings[2].source_control_stream_id, 2201);
    assert!(jl.metadata_enabled());
    let a = BridgeConfig::load(
        Some(&dir.join("AeronTensorPool.jl/bridge_chain_a_example.toml")),
        &NoEnv,
    )
    .unwrap();
    // min(chunk_bytes 1000, 1408 - 128, max_chunk_bytes 1200)
    assert_eq!(a.effective_chunk_bytes(), 1000);
}

#[test]
fn defaults_of_section_10() {
    let c = load(MINIMAL).unwrap();
    assert_eq!(c.mtu_bytes, DEFAULT_MTU_BYTES);
    assert_eq!(c.chunk_bytes, DEFAULT_MTU_BYTES - 128);
    assert_eq!(c.max_chunk_bytes, DEFAULT_MAX_CHUNK_BYTES);
    assert_eq!(c.max_payload_bytes, DEFAULT_MAX_PAYLOAD_BYTES);
    assert_eq!(c.assembly_timeout_ms, DEFAULT_ASSEMBLY_TIMEOUT_MS);
    assert!(!c.integrity_crc32c);
    assert!(c.forward_metadata);
    assert!(!c.forward_tracelink && !c.forward_qos && !c.forward_progress);
    assert_eq!(c.dest_stream_id_range, None);
    // no metadata channel: forwarding is off, with a warning (§7.1)
    assert!(!c.metadata_enabled());
    assert!(!c.warnings.is_empty());
    assert_eq!(c.mappings[0].metadata_stream_id, 20000);
    assert_eq!(c.mappings[0].source_control_stream_id, 0);
    assert_eq!(
        c.provenance.source("bridge.mtu_bytes"),
        Some(&Source::Default)
    );
    // mtu from the channel
    let c = load(&MINIMAL.replace("40123\"", "40123|mtu=8192\"")).unwrap();
    assert_eq!(c.mtu_bytes, 8192);
    assert_eq!(c.effective_chunk_bytes(), 8192 - 128);
}

#[test]
fn environment_overrides_win() {
    let env = MapEnv(HashMap::from([
        ("BRIDGE_MTU_BYTES".to_owned(), "9000".to_owned()),
        ("BRIDGE_INTEGRITY_CRC32C".to_owned(), "true".to_owned()),
        ("BRIDGE_ASSEMBLY_TIMEOUT_MS".to_owned(), "100".to_owned()),
        (
            "BRIDGE_DEST_STREAM_ID_RANGE".to_owned(),
            "50000-50099".to_owned(),
        ),
    ]));
    let c = BridgeConfig::from_toml(MINIMAL, &env).unwrap();
    assert_eq!(c.mtu_bytes, 9000);
    assert!(c.integrity_crc32c);
    assert_eq!(c.assembly_timeout_ms, 100);
    assert_eq!(c.dest_stream_id_range, IdRange::new(50000, 50099));
    assert_eq!(
        c.provenance.source("bridge.mtu_bytes"),
        Some(&Source::Env("BRIDGE_MTU_BYTES".into()))
    );
    let bad = MapEnv(HashMap::from([(
        "BRIDGE_MTU_BYTES".to_owned(),
        "big".to_owned(),
    )]));
    let e = BridgeConfig::from_toml(MINIMAL, &bad)
        .unwrap_err()
        .to_string();
    assert!(e.contains("bridge.mtu_bytes"), "{e}");
}

#[test]
fn every_bad_value_names_its_key() {
    let cases: &[(&str, &str, &str)] = &[
        ("instance_id = \"b\"\n", "", "bridge.instance_id"),
        ("payload_stream_id = 3000\n", "", "bridge.payload_stream_id"),
        (
            "control_channel = \"aeron:udp?endpoint=10.0.0.2:40124\"\n",
            "",
            "bridge.control_channel",
        ),
        (
            "payload_stream_id = 3000",
            "payload_stream_id = -1",
            "bridge.payload_stream_id",
        ),
        (
            "payload_stream_id = 3000",
            "payload_stream_id = 3000000000",
            "bridge.payload_stream_id",
        ),
        (
            "payload_channel = \"aeron:udp?endpoint=10.0.0.2:40123\"",
            "payload_channel = \"udp://x\"",
            "bridge.payload_channel",
        ),
        (
            "[[mappings]]",
            "mtu_bytes = 100\n[[mappings]]",
            "bridge.mtu_bytes",
        ),
        (
            "[[mappings]]",
            "chunk_bytes = 0\n[[mappings]]",
            "bridge.chunk_bytes",
        ),
        (
            "[[mappings]]",
            "max_chunk_bytes = 70000\n[[mappings]]",
            "bridge.max_chunk_bytes",
        ),
        (
            "[[mappings]]",
            "max_payload_bytes = 2000000000\n[[mappings]]",
            "bridge.max_payload_bytes",
        ),
        (
            "[[mappings]]",
            "assembly_timeout_ms = 0\n[[mappings]]",
            "bridge.assembly_timeout_ms",
        ),
        (
            "[[mappings]]",
            "integrity_crc32c = 1\n[[mappings]]",
            "bridge.integrity_crc32c",
        ),
        (
            "[[mappings]]",
            "dest_stream_id_range = \"9-3\"\n[[mappings]]",
            "bridge.dest_stream_id_range",
        ),
        (
            "[[mappings]]",
            "dest_stream_id_range = \"3000-3999\"\n[[mappings]]",
            "bridge.dest_stream_id_range",
        ),
        (
            "[[mappings]]",
            "forward_metadata = true\n[[mappings]]",
            "bridge.forward_metadata",
        ),
        (
            "[[mappings]]",
            "forward_tracelink = true\n[[mappings]]",
            "bridge.forward_tracelink",
        ),
        (
            "[[mappings]]",
            "forward_progress = true\n[[mappings]]",
            "mappings[0].source_control_stream_id",
        ),
        (
            "[[mappings]]",
            "metadata_channel = \"aeron:udp?endpoint=10.0.0.2:40124\"\nmetadata_stream_id = 3001\n[[mappings]]",
            "bridge.metadata_stream_id",
        ),
        (
            "dest_stream_id = 20000",
            "dest_stream_id = 0",
            "mappings[0].dest_stream_id",
        ),
        ("dest_stream_id = 20000\n", "", "mappings[0].dest_stream_id"),
        ("profile = \"default\"\n", "", "mappings[0].profile"),
        (
            "profile = \"default\"",
            "profile = 3",
            "mappings[0].profile",
        ),
        (
            "source_stream_id = 10000",
            "source_stream_id = \"x\"",
            "mappings[0].source_stream_id",
        ),
        (
            "[[mappings]]\nsource_stream_id = 10000\ndest_stream_id = 20000\nprofile = \"default\"\n",
            "",
            "mappings",
        ),
    ];
    for (from, to, key) in cases {
        let text = MINIMAL.replacen(from, to, 1);
        assert_ne!(text, MINIMAL, "case {key}: replacement did not apply");
        let e = error(&text);
        assert!(e.contains(key), "case {key}: {e}");
    }
    // two mappings of one source stream; two of one destination
    let dup = format!(
        "{MINIMAL}\n[[mappings]]\nsource_stream_id = 10000\ndest_stream_id = 20001\nprofile = \"p\"\n"
    );
    assert!(error(&dup).contains("mappings[1].source_stream_id"));
    let dup = format!(
        "{MINIMAL}\n[[mappings]]\nsource_stream_id = 10001\ndest_stream_id = 20000\nprofile = \"p\"\n"
    );
    assert!(error(&dup).contains("mappings[1].dest_stream_id"));
}

#[test]
fn unknown_keys_are_reported() {
    let c = load(&MINIMAL.replace("[[mappings]]", "colour = 1\n[[mappings]]\nshade = 2")).unwrap();
    assert!(
        c.unknown_keys.contains(&"bridge.colour".to_owned()),
        "{:?}",
        c.unknown_keys
    );
    assert!(
        c.unknown_keys.iter().any(|k| k.contains("shade")),
        "{:?}",
        c.unknown_keys
    );
}
