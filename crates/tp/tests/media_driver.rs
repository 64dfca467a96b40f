//! `tp media-driver` as a real process: two `tp aeron-probe` processes exchange 10,000
//! messages through it over IPC, then SIGTERM stops it cleanly (exit 0, directory removed).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const TP: &str = env!("CARGO_BIN_EXE_tp");
const DEADLINE: Duration = Duration::from_secs(60);

/// Kills the child (and removes the driver directory) if the test fails before it ends.
struct Guard {
    child: Option<Child>,
    name: &'static str,
}

impl Guard {
    fn spawn(name: &'static str, command: &mut Command) -> Self {
        let child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        Self {
            child: Some(child),
            name,
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Lines of stdout, read on a thread so every wait can have a deadline.
    fn lines(&mut self) -> mpsc::Receiver<String> {
        let stdout = self
            .child
            .as_mut()
            .and_then(|c| c.stdout.take())
            .expect("stdout piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        rx
    }

    /// Waits (bounded) for the process to exit.
    fn wait(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        let child = self.child.as_mut().expect("running");
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit in time",
                self.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Removes the directory at the end whatever happens.
struct DirGuard(PathBuf);

impl Drop for DirGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn expect_line(lines: &mpsc::Receiver<String>, what: &str, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if pred(&line) => return line,
            Ok(_) => {}
            Err(e) => panic!("no {what} line: {e}"),
        }
    }
}

fn probe(role: &str, dir: &Path) -> Command {
    let mut command = Command::new(TP);
    command.args([
        "aeron-probe",
        role,
        "--channel",
        "aeron:ipc",
        "--stream-id",
        "77",
    ]);
    command.args([
        "--count",
        "10000",
        "--size",
        "200",
        "--timeout-secs",
        "50",
        "--dir",
    ]);
    command.arg(dir);
    command
}

#[test]
fn two_processes_exchange_10000_messages_through_tp_media_driver() {
    let dir = tensorpool_aeron::unique_dir();
    let _dir_guard = DirGuard(dir.clone());

    let mut driver = Guard::spawn(
        "tp media-driver",
        Command::new(TP)
            .args([
                "media-driver",
                "--threading-mode",
                "shared",
                "--delete-dir-on-shutdown",
            ])
            .arg("--dir")
            .arg(&dir)
            .env_remove("AERON_DIR"),
    );
    let driver_lines = driver.lines();
    let ready = expect_line(&driver_lines, "driver ready", |l| l.contains("running"));
    assert!(ready.contains(&dir.display().to_string()), "{ready}");
    assert!(dir.join("cnc.dat").exists());

    let mut receiver = Guard::spawn("receiver", &mut probe("recv", &dir));
    let receiver_lines = receiver.lines();
    expect_line(&receiver_lines, "receiver ready", |l| l == "ready");
    let mut sender = Guard::spawn("sender", &mut probe("send", &dir));
    let sender_lines = sender.lines();

    let received = expect_line(&receiver_lines, "received", |l| l.starts_with("received"));
    assert_eq!(received, "received 10000");
    assert!(receiver.wait(DEADLINE).success(), "receiver failed");
    assert_eq!(
        expect_line(&sender_lines, "sent", |l| l.starts_with("sent")),
        "sent 10000"
    );
    assert!(sender.wait(DEADLINE).success(), "sender failed");

    let status = Command::new("kill")
        .args(["-TERM", &driver.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    let status = driver.wait(Duration::from_secs(20));
    assert_eq!(status.code(), Some(0), "driver exit: {status:?}");
    expect_line(&driver_lines, "driver stopped", |l| l.contains("stopped"));
    assert!(!dir.exists(), "driver directory left behind");
}

#[test]
fn media_driver_rejects_an_unknown_threading_mode() {
    let output = Command::new(TP)
        .args(["media-driver", "--threading-mode", "turbo"])
        .output()
        .expect("run tp");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("dedicated, shared-network or shared"),
        "{stderr}"
    );
}
