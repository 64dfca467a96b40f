//! `tp bench bridge`, `tp bench ratelimit` and `tp bench starts` (3 starts each) run end to end in their quick mode (a second
//! or so of measurement each) and print their figures as JSON; no figure's value is checked
//! (no test asserts a rate or a time). `bridge` needs root and `ip`: without them it must
//! say why, print no bridge figure and still succeed. Each run has its own output directory
//! and `tp bench` its own private media driver and SHM directory, removed when it ends.

use std::process::Command;

const TP: &str = env!("CARGO_BIN_EXE_tp");

fn bench(name: &str) -> (Vec<serde_json::Value>, String) {
    bench_env(name, &[])
}

fn bench_env(name: &str, env: &[(&str, &str)]) -> (Vec<serde_json::Value>, String) {
    let out = tempfile::tempdir().unwrap();
    let run = Command::new(TP)
        .args(["bench", name, "--quick", "--json", "--out"])
        .arg(out.path())
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
    assert!(run.status.success(), "tp bench {name} failed: {stderr}");
    let figures: Vec<serde_json::Value> = serde_json::from_slice(&run.stdout)
        .unwrap_or_else(|e| panic!("tp bench {name}: no JSON on stdout ({e}): {stderr}"));
    assert!(out.path().join("results.md").is_file());
    (figures, stderr)
}

fn names(figures: &[serde_json::Value], bench: &str) -> Vec<String> {
    figures
        .iter()
        .filter(|f| f["bench"] == bench)
        .filter_map(|f| f["name"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn bench_ratelimit_quick_prints_its_figures() {
    let (figures, stderr) = bench("ratelimit");
    let n = names(&figures, "ratelimit");
    for want in [
        "640 KiB: rate limiter CPU per forwarded frame",
        "640 KiB: p50 source commit -> derived-stream consumer accept",
        "640 KiB: p50 latency added by the rate limiter",
    ] {
        assert!(
            n.iter().any(|x| x == want),
            "no {want:?} in {n:?}: {stderr}"
        );
    }
    let cpu = figures
        .iter()
        .find(|f| f["name"] == "640 KiB: rate limiter CPU per forwarded frame")
        .unwrap();
    assert!(cpu["baseline"].as_f64().is_some(), "memcpy baseline: {cpu}");
}

#[test]
fn bench_bridge_quick_prints_its_figures_or_says_why_not() {
    let (figures, stderr) = bench("bridge");
    let n = names(&figures, "bridge");
    if stderr.contains("tp bench bridge: skipped") {
        assert!(n.is_empty(), "{n:?}");
        return;
    }
    for want in [
        "640 KiB: GB/s delivered A -> B",
        "640 KiB: CPU, sender side (tp bridge --side sender)",
        "640 KiB: CPU, receiver side (tp bridge --side receiver)",
        "4 KiB 10 kHz: p50 one-way A -> B",
        "4 KiB 10 kHz: p99 one-way A -> B",
    ] {
        assert!(
            n.iter().any(|x| x == want),
            "no {want:?} in {n:?}: {stderr}"
        );
    }
    let gbps = figures
        .iter()
        .find(|f| f["name"] == "640 KiB: GB/s delivered A -> B")
        .unwrap();
    assert_eq!(gbps["baseline_name"], "raw Aeron UDP, same link", "{gbps}");
}

/// 3 starts each of `tp consume --exit-when-mapped`, `tp produce --count 0` and `tp driver`
/// with a consumer waiting: every start attached (or was mapped) and exited 0; none hung,
/// crashed or failed. The per-start timeout is long (30 s) so that a loaded test machine
/// does not turn a slow start into a hung one; the times are not checked.
#[test]
fn bench_starts_three_of_each_all_ok() {
    let (figures, stderr) = bench_env(
        "starts",
        &[
            ("TP_BENCH_STARTS", "3"),
            ("TP_BENCH_STARTS_TIMEOUT_MS", "30000"),
        ],
    );
    let value = |name: &str| {
        figures
            .iter()
            .find(|f| f["bench"] == "starts" && f["name"] == name)
            .and_then(|f| f["value"].as_f64())
            .unwrap_or_else(|| panic!("no figure {name:?}: {stderr}"))
    };
    for who in ["consumer", "producer", "driver"] {
        assert_eq!(value(&format!("{who} starts: started")), 3.0, "{stderr}");
        assert_eq!(value(&format!("{who} starts: ok")), 3.0, "{figures:?}");
        for bad in [
            "hung (killed at the timeout)",
            "crashed (signal)",
            "failed (exit != 0 or no attach)",
        ] {
            assert_eq!(value(&format!("{who} starts: {bad}")), 0.0, "{figures:?}");
        }
    }
}
