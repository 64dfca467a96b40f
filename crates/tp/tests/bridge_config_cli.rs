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
