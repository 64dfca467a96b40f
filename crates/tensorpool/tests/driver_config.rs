//! Driver configuration (Driver Model §17): every peer example file loads unchanged and means
//! what it says; defaults; environment overrides win; unknown keys are reported; invalid
//! values name the key and the expected form; ranges are validated at startup (§11).

use std::collections::HashMap;
use std::path::PathBuf;

use tensorpool::config::{ConfigError, IdRange, NoEnv, Source};
use tensorpool::driver::{DriverConfig, PoolConfig};

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

fn load(rel: &str) -> Option<DriverConfig> {
    let path = shared_configs()?.join(rel);
    Some(DriverConfig::load(Some(&path), &NoEnv).unwrap_or_else(|e| panic!("{rel}: {e}")))
}

fn range(a: u32, b: u32) -> Option<IdRange> {
    IdRange::new(a, b)
}

fn pools(p: &[(u16, u32)]) -> Vec<PoolConfig> {
    p.iter()
        .map(|&(pool_id, stride_bytes)| PoolConfig {
            pool_id,
            stride_bytes,
        })
        .collect()
}

fn streams(c: &DriverConfig) -> Vec<(String, u32, String)> {
    c.streams
        .iter()
        .map(|s| (s.name.clone(), s.stream_id, s.profile.clone()))
        .collect()
}

#[test]
fn c_driver_camera_example() {
    let Some(c) = load("tensor_pool_c/driver_camera_example.toml") else {
        return;
    };
    assert_eq!(c.driver.instance_id, "driver-camera-01");
    assert_eq!(c.driver.control_channel, "aeron:ipc?term-length=4m");
    assert_eq!(
        (
            c.driver.control_stream_id,
            c.driver.announce_stream_id,
            c.driver.qos_stream_id
        ),
        (1000, 1000, 1200)
    );
    assert_eq!(c.driver.stream_id_range, range(20000, 29999));
    assert_eq!(c.driver.descriptor_stream_id_range, range(31000, 31999));
    assert_eq!(c.driver.control_stream_id_range, range(32000, 32999));
    assert_eq!(c.driver.aeron_dir, None);
    assert_eq!(c.shm.base_dir, PathBuf::from("/dev/shm/tensorpool"));
    assert_eq!(c.shm.namespace, "default");
    assert_eq!(
        c.shm.allowed_base_dirs,
        vec![PathBuf::from("/dev/shm/tensorpool")]
    );
    assert_eq!(
        (c.shm.page_size_bytes, c.shm.permissions_mode.as_str()),
        (4096, "660")
    );
    let p = &c.policies;
    assert!(!p.allow_dynamic_streams && p.prefault_shm && !p.mlock_shm && p.epoch_gc_enabled);
    assert_eq!(
        (
            p.epoch_gc_keep,
            p.epoch_gc_min_age_ns,
            p.shutdown_timeout_ms
        ),
        (2, 3_000_000_000, 2000)
    );
    assert_eq!(p.default_profile, "default", "first defined profile");
    assert_eq!(c.profiles.len(), 1);
    assert_eq!(c.profiles[0].header_nslots, 1024);
    assert_eq!(c.profiles[0].payload_pools, pools(&[(1, 8_388_608)]));
    assert_eq!(streams(&c), vec![("camera".into(), 2001, "default".into())]);
    assert!(c.unknown_keys.is_empty(), "{:?}", c.unknown_keys);
}

#[test]
fn c_driver_integration_example_reports_the_supervisor_table() {
    let Some(c) = load("tensor_pool_c/driver_integration_example.toml") else {
        return;
    };
    assert_eq!(c.driver.instance_id, "driver-example");
    assert_eq!(c.driver.announce_stream_id, 1001);
    assert_eq!(c.shm.base_dir, PathBuf::from("/dev/shm"));
    assert_eq!(c.policies.default_profile, "camera");
    assert_eq!(c.policies.node_id_reuse_cooldown_ms, 1000);
    assert_eq!(c.profiles[0].header_nslots, 64);
    assert_eq!(c.profiles[0].payload_pools, pools(&[(1, 1_048_576)]));
    assert_eq!(streams(&c), vec![("cam1".into(), 10000, "camera".into())]);
    assert!(
        c.unknown_keys.iter().all(|k| k.starts_with("supervisor.")),
        "{:?}",
        c.unknown_keys
    );
    assert!(
        c.unknown_keys
            .contains(&"supervisor.consumer_capacity".to_string())
    );
}

#[test]
fn c_driver_integration_announce_separate() {
    let Some(c) = load("tensor_pool_c/driver_integration_announce_separate.toml") else {
        return;
    };
    assert_eq!(
        (c.driver.control_stream_id, c.driver.announce_stream_id),
        (1000, 1002)
    );
    assert_eq!(streams(&c), vec![("cam1".into(), 10001, "camera".into())]);
    assert!(!c.policies.allow_dynamic_streams);
    assert!(c.unknown_keys.is_empty(), "{:?}", c.unknown_keys);
}

#[test]
fn c_driver_integration_dynamic() {
    let Some(c) = load("tensor_pool_c/driver_integration_dynamic.toml") else {
        return;
    };
    assert!(c.policies.allow_dynamic_streams);
    assert_eq!(c.driver.stream_id_range, range(20000, 29999));
    assert_eq!(c.policies.default_profile, "camera");
    assert_eq!(streams(&c), vec![("cam1".into(), 10000, "camera".into())]);
}

#[test]
fn julia_driver_camera_example() {
    let Some(c) = load("AeronTensorPool.jl/driver_camera_example.toml") else {
        return;
    };
    assert_eq!(c.driver.instance_id, "driver-01");
    assert_eq!(c.driver.announce_stream_id, 1001);
    assert_eq!(c.driver.stream_id_range, None);
    assert!(c.policies.allow_dynamic_streams);
    assert_eq!(c.policies.default_profile, "raw_profile");
    assert_eq!(c.policies.shutdown_token, "");
    assert_eq!(c.shm.base_dir, PathBuf::from("/dev/shm"));
    assert_eq!(
        c.shm.allowed_base_dirs,
        vec![PathBuf::from("/dev/shm")],
        "default: [shm.base_dir]"
    );
    let names: Vec<_> = c
        .profiles
        .iter()
        .map(|p| (p.name.as_str(), p.header_nslots))
        .collect();
    assert_eq!(
        names,
        vec![("raw_profile", 1024), ("processed_profile", 512)],
        "file order"
    );
    assert_eq!(
        c.profiles[0].payload_pools,
        pools(&[(1, 1_048_576), (2, 4_194_304)])
    );
    assert_eq!(
        c.profiles[1].payload_pools,
        pools(&[(1, 524_288), (2, 2_097_152)])
    );
    let ids: Vec<u32> = c.streams.iter().map(|s| s.stream_id).collect();
    assert_eq!(ids, vec![10000, 10001, 10002, 10100, 10101, 10102]);
    assert_eq!(c.streams[3].profile, "processed_profile");
    assert!(
        c.warnings.iter().any(|w| w.contains("stream_id_range")),
        "{:?}",
        c.warnings
    );
    assert!(c.unknown_keys.is_empty(), "{:?}", c.unknown_keys);
}

#[test]
fn julia_driver_integration_example() {
    let Some(c) = load("AeronTensorPool.jl/driver_integration_example.toml") else {
        return;
    };
    assert_eq!(c.driver.instance_id, "driver-example");
    assert_eq!(c.driver.descriptor_stream_id_range, range(31000, 31999));
    assert_eq!(c.driver.control_stream_id_range, range(32000, 32999));
    assert_eq!(c.profiles[0].header_nslots, 64);
    assert_eq!(streams(&c), vec![("cam1".into(), 10000, "camera".into())]);
    assert_eq!(
        c.policies.epoch_gc_min_age_ns, 3_000_000_000,
        "default 3 x announce period"
    );
}

#[test]
fn julia_driver_interop_example() {
    let Some(c) = load("AeronTensorPool.jl/driver_interop_example.toml") else {
        return;
    };
    assert_eq!(c.driver.instance_id, "driver-interop");
    assert_eq!(c.profiles[0].name, "interop");
    assert_eq!(c.profiles[0].header_nslots, 8);
    assert_eq!(c.profiles[0].payload_pools, pools(&[(1, 65_536)]));
    assert_eq!(
        (c.policies.epoch_gc_keep, c.policies.epoch_gc_min_age_ns),
        (2, 3_000_000_000)
    );
    assert_eq!(
        c.provenance.source("policies.epoch_gc_min_age_ns"),
        Some(&Source::File)
    );
}

#[test]
fn every_peer_driver_file_loads_and_others_do_not_break() {
    let Some(dir) = shared_configs() else { return };
    let mut driver_files = 0;
    for sub in ["tensor_pool_c", "AeronTensorPool.jl"] {
        for entry in std::fs::read_dir(dir.join(sub)).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_owned();
            let result = DriverConfig::load(Some(&path), &NoEnv);
            if name.starts_with("driver_") {
                result.unwrap_or_else(|e| panic!("{name}: {e}"));
                driver_files += 1;
            } else {
                // not a driver file: an error or a config, but never a panic
                let _ = result;
            }
        }
    }
    assert_eq!(driver_files, 7);
}

#[test]
fn defaults_are_the_canonical_ones() {
    let c = DriverConfig::from_toml(
        "[profiles.p]\npayload_pools = [{ pool_id = 1, stride_bytes = 64 }]\n",
        &NoEnv,
    )
    .unwrap();
    let d = &c.driver;
    assert_eq!(d.instance_id, "driver-01");
    assert_eq!(d.control_channel, "aeron:ipc?term-length=4m");
    assert_eq!(
        (d.control_stream_id, d.announce_stream_id, d.qos_stream_id),
        (1000, 1000, 1200)
    );
    assert_eq!(d.announce_channel, d.control_channel);
    assert_eq!(d.qos_channel, "aeron:ipc?term-length=4m");
    assert_eq!(
        (
            d.stream_id_range,
            d.descriptor_stream_id_range,
            d.control_stream_id_range
        ),
        (None, None, None)
    );
    assert_eq!(c.shm.base_dir, PathBuf::from("/dev/shm/tensorpool"));
    assert_eq!(c.shm.namespace, "default");
    assert!(!c.shm.require_hugepages);
    assert_eq!(
        (c.shm.page_size_bytes, c.shm.permissions_mode.as_str()),
        (4096, "660")
    );
    assert_eq!(c.shm.allowed_base_dirs, vec![c.shm.base_dir.clone()]);
    let p = &c.policies;
    assert!(!p.allow_dynamic_streams);
    assert_eq!(p.default_profile, "p");
    assert_eq!(
        (
            p.announce_period_ms,
            p.lease_keepalive_interval_ms,
            p.lease_expiry_grace_intervals
        ),
        (1000, 1000, 3)
    );
    assert!(p.prefault_shm && !p.mlock_shm && p.epoch_gc_enabled && !p.epoch_gc_on_startup);
    assert_eq!((p.epoch_gc_keep, p.epoch_gc_min_age_ns), (2, 3_000_000_000));
    assert_eq!(
        (p.shutdown_timeout_ms, p.shutdown_token.as_str()),
        (2000, "")
    );
    assert_eq!(c.profiles[0].header_nslots, 1024);
    assert_eq!(
        c.provenance.source("driver.control_stream_id"),
        Some(&Source::Default)
    );
    assert!(matches!(
        c.provenance.source("driver.announce_stream_id"),
        Some(Source::Derived(_))
    ));
}

#[test]
fn environment_overrides_win() {
    let env: HashMap<String, String> = [
        ("DRIVER_CONTROL_STREAM_ID", "1500"),
        ("SHM_BASE_DIR", "/tmp/tp-env"),
        ("POLICIES_SHUTDOWN_TOKEN", "12345"),
        ("POLICIES_ALLOW_DYNAMIC_STREAMS", "true"),
        ("DRIVER_STREAM_ID_RANGE", "20000-20009"),
        ("PROFILES_P_HEADER_NSLOTS", "16"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let text = "[driver]\ncontrol_stream_id = 1000\n[shm]\nbase_dir = \"/dev/shm/x\"\n[profiles.p]\nheader_nslots = 8\npayload_pools = [{ pool_id = 1, stride_bytes = 64 }]\n";
    let c = DriverConfig::from_toml(text, &env).unwrap();
    assert_eq!(c.driver.control_stream_id, 1500);
    assert_eq!(
        c.driver.announce_stream_id, 1500,
        "derived from the overridden value"
    );
    assert_eq!(c.shm.base_dir, PathBuf::from("/tmp/tp-env"));
    assert_eq!(
        c.policies.shutdown_token, "12345",
        "a numeric-looking string stays a string"
    );
    assert!(c.policies.allow_dynamic_streams);
    assert_eq!(c.driver.stream_id_range, IdRange::new(20000, 20009));
    assert_eq!(c.profiles[0].header_nslots, 16);
    assert_eq!(
        c.provenance.source("driver.control_stream_id"),
        Some(&Source::Env("DRIVER_CONTROL_STREAM_ID".into()))
    );
    assert_eq!(c.provenance.source("shm.namespace"), Some(&Source::Default));
}

#[test]
fn unknown_keys_are_reported_not_fatal() {
    // [producer] and [consumer] are the roles' tables of a shared file: not the driver's to
    // report
    let text = "[driver]\nbogus = 1\n[policies]\nreuse_existing_shm = false\n[profiles.p]\npayload_pools = [{ pool_id = 1, stride_bytes = 64, colour = \"red\" }]\n[extra]\nx = 1\n[producer]\nname = \"x\"\n[consumer]\nmode = \"stream\"\n";
    let c = DriverConfig::from_toml(text, &NoEnv).unwrap();
    assert_eq!(
        c.unknown_keys,
        vec![
            "driver.bogus",
            "policies.reuse_existing_shm",
            "profiles.p.payload_pools[0].colour",
            "extra.x"
        ]
    );
}

fn err(text: &str) -> String {
    DriverConfig::from_toml(text, &NoEnv)
        .unwrap_err()
        .to_string()
}

const P: &str = "[profiles.p]\npayload_pools = [{ pool_id = 1, stride_bytes = 64 }]\n";

#[test]
fn invalid_values_name_the_key_and_the_form() {
    let cases = [
        (
            "[driver]\ncontrol_stream_id = \"x\"\n",
            "driver.control_stream_id",
            "unsigned 32-bit",
        ),
        (
            "[driver]\ncontrol_stream_id = -1\n",
            "driver.control_stream_id",
            "unsigned 32-bit",
        ),
        (
            "[driver]\ncontrol_stream_id = 3000000000\n",
            "driver.control_stream_id",
            "Aeron stream id",
        ),
        (
            "[policies]\nprefault_shm = \"yes\"\n",
            "policies.prefault_shm",
            "true or false",
        ),
        (
            "[shm]\nbase_dir = \"relative\"\n",
            "shm.base_dir",
            "absolute",
        ),
        (
            "[shm]\npermissions_mode = \"999\"\n",
            "shm.permissions_mode",
            "octal",
        ),
        (
            "[shm]\npermissions_mode = \"666\"\n",
            "shm.permissions_mode",
            "world-writable",
        ),
        (
            "[shm]\nnamespace = \"a/b\"\n",
            "shm.namespace",
            "[A-Za-z0-9._-]",
        ),
        (
            "[driver]\nstream_id_range = \"9-1\"\n",
            "driver.stream_id_range",
            "start <= end",
        ),
        (
            "[driver]\nstream_id_range = [1, 2, 3]\n",
            "driver.stream_id_range",
            "range",
        ),
        (
            "[policies]\nannounce_period_ms = 0\n",
            "policies.announce_period_ms",
            "at least 1",
        ),
        (
            "[policies]\ndefault_profile = \"nope\"\n",
            "policies.default_profile",
            "no profile",
        ),
        (
            "[streams.a]\nstream_id = 5\nprofile = \"nope\"\n",
            "streams.a.profile",
            "no profile",
        ),
        (
            "[streams.a]\nprofile = \"p\"\n",
            "streams.a.stream_id",
            "missing",
        ),
        (
            "[shm]\nallowed_base_dirs = [\"/elsewhere\"]\n",
            "shm.allowed_base_dirs",
            "not inside",
        ),
    ];
    for (snippet, key, form) in cases {
        let (head, tail) = if snippet.starts_with("[streams") {
            (P, snippet)
        } else {
            (snippet, P)
        };
        let e = err(&format!("{head}{tail}"));
        assert!(e.contains(key) && e.contains(form), "{snippet:?}: {e}");
    }
    let e = err(
        "[profiles.p]\nheader_nslots = 12\npayload_pools = [{ pool_id = 1, stride_bytes = 64 }]\n",
    );
    assert!(
        e.contains("profiles.p.header_nslots") && e.contains("power of two"),
        "{e}"
    );
    let e = err("[profiles.p]\npayload_pools = [{ pool_id = 1, stride_bytes = 100 }]\n");
    assert!(
        e.contains("profiles.p.payload_pools[0]") && e.contains("multiple of 64"),
        "{e}"
    );
    let e = err("[driver]\n");
    assert!(e.contains("profiles"), "{e}");
    let env: HashMap<String, String> =
        [("POLICIES_EPOCH_GC_KEEP".to_string(), "many".to_string())].into();
    let e = DriverConfig::from_toml(P, &env).unwrap_err();
    assert!(
        matches!(&e, ConfigError::Invalid { key, origin: Source::Env(_), .. } if key == "policies.epoch_gc_keep"),
        "{e}"
    );
}

#[test]
fn ranges_must_not_overlap_fixed_ids_static_streams_or_each_other() {
    let cases = [
        ("stream_id_range = \"900-1100\"", "driver.control_stream_id"),
        (
            "qos_stream_id = 20005\nstream_id_range = \"20000-20009\"",
            "driver.qos_stream_id",
        ),
        (
            "announce_stream_id = 31005\ndescriptor_stream_id_range = [31000, 31999]",
            "driver.announce_stream_id",
        ),
        (
            "stream_id_range = \"10-20\"\ncontrol_stream_id_range = \"20-30\"",
            "overlaps",
        ),
        (
            "descriptor_stream_id_range = \"40-50\"\ncontrol_stream_id_range = \"45-46\"",
            "overlaps",
        ),
        ("stream_id_range = \"10000-10010\"", "streams.s.stream_id"),
    ];
    for (driver, what) in cases {
        let e = err(&format!(
            "[driver]\n{driver}\n{P}[streams.s]\nstream_id = 10005\nprofile = \"p\"\n"
        ));
        assert!(e.contains(what), "{driver:?}: {e}");
    }
    // the conventional ranges are fine
    DriverConfig::from_toml(
        &format!("[driver]\nstream_id_range = \"20000-29999\"\ndescriptor_stream_id_range = \"31000-31999\"\ncontrol_stream_id_range = \"32000-32999\"\n{P}"),
        &NoEnv,
    )
    .unwrap();
}

#[test]
fn render_lists_every_key_with_its_source() {
    let env: HashMap<String, String> =
        [("POLICIES_ANNOUNCE_PERIOD_MS".to_string(), "250".to_string())].into();
    let c = DriverConfig::from_toml(&format!("[driver]\ninstance_id = \"x\"\n{P}"), &env).unwrap();
    let text = tensorpool::config::render_provenance(&c.provenance);
    assert!(
        text.contains("driver.instance_id = \"x\"") && text.contains("# file"),
        "{text}"
    );
    assert!(
        text.contains("policies.announce_period_ms = 250")
            && text.contains("# env POLICIES_ANNOUNCE_PERIOD_MS")
    );
    assert!(
        text.contains("policies.epoch_gc_min_age_ns = 750000000"),
        "derived from the overridden period: {text}"
    );
    for key in [
        "driver.qos_channel",
        "shm.namespace",
        "policies.shutdown_timeout_ms",
        "profiles.p.header_nslots",
    ] {
        assert!(text.contains(key), "{key} missing from\n{text}");
    }
}

#[test]
fn the_example_deployment_file_loads_for_every_role() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/deployment.toml");
    let driver = DriverConfig::load(Some(&path), &NoEnv).unwrap();
    assert!(driver.unknown_keys.is_empty(), "{:?}", driver.unknown_keys);
    let p = tensorpool::producer::ProducerConfig::load(Some(&path), &NoEnv).unwrap();
    assert!(p.unknown_keys.is_empty(), "{:?}", p.unknown_keys);
    p.config.validate().unwrap();
    assert!(matches!(
        p.config.mode,
        tensorpool::producer::RegionMode::Driver(ref e) if e.control.stream_id == 1000
    ));
    let c = tensorpool::consumer::ConsumerConfig::load(Some(&path), &NoEnv).unwrap();
    assert!(c.unknown_keys.is_empty(), "{:?}", c.unknown_keys);
    c.config.validate().unwrap();
    assert_eq!(
        c.config.mode,
        tensorpool::consumer::Mode::RateLimited { max_rate_hz: 30 }
    );
}
