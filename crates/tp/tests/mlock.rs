//! `policies.mlock_shm = true` and mlock fails: fatal (Driver Model §17), tested end to end as
//! a user without CAP_IPC_LOCK (root never fails to mlock): `tp driver` runs as `nobody`
//! through `setpriv` with `RLIMIT_MEMLOCK` at 64 KiB (`prlimit`), provisions a 4 MiB epoch and
//! exits non-zero naming mlock, leaving no epoch behind. Needs root, setpriv and prlimit
//! (util-linux); skips with the reason otherwise.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};

const TP: &str = env!("CARGO_BIN_EXE_tp");

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn dm_17_a_failing_mlock_is_fatal_for_tp_driver() {
    // only root can switch to another user
    let root = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
    if !root || !have("setpriv") || !have("prlimit") {
        eprintln!("skipped: needs root, setpriv and prlimit");
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("tp-mlock-")
        .tempdir_in("/dev/shm")
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    // a copy of tp that `nobody` may execute wherever the build tree is
    let tp = dir.path().join("tp");
    std::fs::copy(TP, &tp).unwrap();
    std::fs::set_permissions(&tp, std::fs::Permissions::from_mode(0o755)).unwrap();
    // can `nobody` run that copy here (setpriv allowed, the file system not noexec)?
    let probe = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(&tp)
        .arg("--version")
        .output()
        .unwrap();
    if !probe.status.success() {
        eprintln!(
            "skipped: cannot run tp as nobody here: {}",
            String::from_utf8_lossy(&probe.stderr).trim()
        );
        return;
    }
    let base = dir.path().join("base");
    let cfg = dir.path().join("driver.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"[shm]
base_dir = "{}"
[policies]
mlock_shm = true
prefault_shm = false
[profiles.p]
header_nslots = 16
payload_pools = [{{ pool_id = 1, stride_bytes = 262144 }}]
[streams.s]
stream_id = 10000
profile = "p"
"#,
            base.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut child = Command::new("prlimit")
        .args(["--memlock=65536:65536", "setpriv"])
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(&tp)
        .arg("driver")
        .arg("--config")
        .arg(&cfg)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("tp driver kept running although mlock failed");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "exit status {:?}: {stderr}",
        out.status
    );
    assert!(stderr.contains("mlock"), "names mlock: {stderr}");
    let epochs: Vec<_> = walk(&base)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "pool" || e == "ring"))
        .collect();
    assert!(epochs.is_empty(), "no epoch left: {epochs:?}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
