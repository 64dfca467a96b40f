//! The systemd units of packaging/systemd (docs/ops.md): each says what the readiness and
//! watchdog code relies on, and `systemd-analyze verify` accepts them without a warning
//! (skipped, with the reason, where the tool is absent). ExecStart points at the built `tp`
//! for the verification, since `/usr/bin/tp` need not exist here.

use std::path::{Path, PathBuf};
use std::process::Command;

const TP: &str = env!("CARGO_BIN_EXE_tp");
const UNITS: [&str; 5] = [
    "tensorpool-media-driver.service",
    "tensorpool-driver.service",
    "tensorpool-supervisor@.service",
    "tensorpool-bridge@.service",
    "tensorpool-ratelimit@.service",
];

fn units_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging/systemd")
}

fn read(name: &str) -> String {
    std::fs::read_to_string(units_dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn has(unit: &str, line: &str) -> bool {
    unit.lines().any(|l| l.trim() == line)
}

#[test]
fn units_are_notify_services_with_watchdog_restart_and_a_dedicated_user() {
    for name in UNITS {
        let u = read(name);
        for line in [
            "Type=notify",
            "NotifyAccess=main",
            "Restart=on-failure",
            "KillSignal=SIGTERM",
            "StandardOutput=journal",
            "StandardError=journal",
            "User=tensorpool",
            "Group=tensorpool",
        ] {
            assert!(has(&u, line), "{name} lacks {line}");
        }
        for key in ["WatchdogSec=", "LimitMEMLOCK=", "ExecStart=/usr/bin/tp "] {
            assert!(u.lines().any(|l| l.starts_with(key)), "{name} lacks {key}");
        }
        if name != "tensorpool-media-driver.service" {
            assert!(
                has(&u, "Requires=tensorpool-media-driver.service"),
                "{name} does not require the media driver"
            );
            assert!(
                u.lines()
                    .any(|l| l.starts_with("After=")
                        && l.contains("tensorpool-media-driver.service")),
                "{name} is not ordered after the media driver"
            );
        }
        if name.contains('@') {
            assert!(
                u.contains("--config /etc/tensorpool/%i.toml"),
                "{name}: the instance must name /etc/tensorpool/<instance>.toml"
            );
        }
    }
    let sysusers = std::fs::read_to_string(units_dir().join("tensorpool.sysusers")).unwrap();
    assert!(sysusers.lines().any(|l| l.starts_with("u tensorpool ")));
}

#[test]
fn systemd_analyze_verify_accepts_the_units() {
    let probe = Command::new("systemd-analyze").arg("--version").output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: systemd-analyze is not installed on this machine");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for name in UNITS {
        let text = read(name).replace("/usr/bin/tp ", &format!("{TP} "));
        // a template is verified through one instance of it
        let file = dir.path().join(name.replace("@.", "@test."));
        std::fs::write(&file, text).unwrap();
        files.push(file);
    }
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(&files)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify: {:?}\n{stderr}",
        out.status
    );
}
