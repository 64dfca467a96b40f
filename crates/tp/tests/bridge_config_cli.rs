//! `tp config validate --role bridge` accepts the peers' bridge examples unchanged, prints
//! every key with its source, and refuses a bad key naming it.

use std::process::Command;

const TP: &str = env!("CARGO_BIN_EXE_tp");

fn shared(path: &str) -> Option<std::path::PathBuf> {
    let p = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/configs")
        .join(path);
    if p.is_file() {
        Some(p)
    } else {
        println!("skipped: {} not found", p.display());
        None
    }
}

#[test]
fn validate_role_bridge_accepts_the_peer_examples() {
    for f in [
        "tensor_pool_c/bridge_config_example.toml",
        "AeronTensorPool.jl/bridge_config_example.toml",
        "AeronTensorPool.jl/bridge_chain_a_example.toml",
        "AeronTensorPool.jl/bridge_chain_b_example.toml",
    ] {
        let Some(path) = shared(f) else { return };
        let out = Command::new(TP)
            .args(["config", "validate", "--role", "bridge"])
            .arg(&path)
            .output()
            .expect("tp config validate");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{f}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains("bridge.assembly_timeout_ms = 250"),
            "{f}: {text}"
        );
        assert!(text.contains("mapping(s)"), "{f}: {text}");
    }
}

#[test]
fn validate_role_bridge_names_the_bad_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bridge.toml");
    std::fs::write(
        &path,
        "[bridge]\ninstance_id = \"b\"\npayload_channel = \"aeron:udp?endpoint=127.0.0.1:40123\"\npayload_stream_id = 3000\ncontrol_channel = \"aeron:udp?endpoint=127.0.0.1:40124\"\ncontrol_stream_id = 3001\nmax_chunk_bytes = 70000\n[[mappings]]\nsource_stream_id = 1\ndest_stream_id = 2\nprofile = \"p\"\n",
    )
    .unwrap();
    let out = Command::new(TP)
        .args(["config", "validate", "--role", "bridge"])
        .arg(&path)
        .output()
        .expect("tp config validate");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bridge.max_chunk_bytes"), "{err}");
}

/// `tp config validate --role discovery` accepts the C `discovery_example.toml` unchanged
/// and refuses a zero driver control stream id naming the key (DS §5.2).
#[test]
fn validate_role_discovery_accepts_the_c_example() {
    let Some(path) = shared("tensor_pool_c/discovery_example.toml") else {
        return;
    };
    let out = Command::new(TP)
        .args(["config", "validate", "--role", "discovery"])
        .arg(&path)
        .output()
        .expect("tp config validate");
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.is_empty(), "no unknown key: {err}");
    assert!(
        text.contains("discovery.request_stream_id = 9000"),
        "{text}"
    );
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("d.toml");
    std::fs::write(&bad, "[discovery]\ndriver_control_stream_id = 0\n").unwrap();
    let out = Command::new(TP)
        .args(["config", "validate", "--role", "discovery"])
        .arg(&bad)
        .output()
        .expect("tp config validate");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("discovery.driver_control_stream_id"), "{err}");
}
