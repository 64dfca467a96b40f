//! systemd's notify protocol without systemd: a Unix datagram socket in a tempdir plays
//! `NOTIFY_SOCKET` for `tp media-driver` and `tp driver` run as real processes (with
//! `WATCHDOG_USEC` set and `WATCHDOG_PID` unset, as systemd's environment for a service's main
//! process). READY=1 must mean serving: the media driver's CnC file exists, and an attach sent
//! to the driver right after READY=1 is answered. WATCHDOG=1 must keep coming, SIGTERM must
//! yield STOPPING=1 and exit 0; `tp ratelimit`, `tp bridge` and `tp supervisor` on that driver do the same.
//! Every wait has a deadline; children are stopped on drop.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const TP: &str = env!("CARGO_BIN_EXE_tp");
const DEADLINE: Duration = Duration::from_secs(20);
/// WATCHDOG_USEC given to the children: 200 ms, so pings come every 100 ms.
const WATCHDOG_USEC: &str = "200000";
const STREAM: u32 = 10_000;
const DEST: u32 = 10_001;
const BRIDGED: u32 = 10_002;

/// The socket a service manager listens on, read at once by a thread (as systemd does: a
/// full datagram queue would block the sender's duty cycle), and what arrived on it.
struct NotifySocket {
    path: PathBuf,
    rx: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl NotifySocket {
    fn bind(dir: &Path, name: &str) -> Self {
        let path = dir.join(name);
        let sock = UnixDatagram::bind(&path).expect("bind the notify socket");
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                match sock.recv(&mut buf) {
                    Ok(n) => {
                        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                        if tx.send(msg).is_err() {
                            break;
                        }
                    }
                    // a timeout: go on while the test still holds the receiver
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) =>
                    {
                        if tx.send(String::new()).is_err() {
                            break;
                        }
                    }
                    Err(e) => panic!("recv on the notify socket: {e}"),
                }
            }
        });
        Self {
            path,
            rx,
            seen: Vec::new(),
        }
    }

    /// Waits (bounded) for a datagram with the line `line`; returns that datagram.
    fn expect(&mut self, line: &str) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no {line:?} on the notify socket within {DEADLINE:?}; got {:?}",
                self.seen
            );
            match self.rx.recv_timeout(left) {
                Ok(msg) if msg.is_empty() => {}
                Ok(msg) => {
                    self.seen.push(msg.clone());
                    if msg.lines().any(|l| l == line) {
                        return msg;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(e) => panic!("notify socket reader: {e}"),
            }
        }
    }
}

/// A child stopped (SIGTERM, then SIGKILL) when dropped.
struct Proc(Option<Child>);

impl Proc {
    fn spawn(args: &[&str], notify: &Path) -> Self {
        let child = Command::new(TP)
            .args(args)
            .env("RUST_LOG", "warn")
            .env("NOTIFY_SOCKET", notify)
            .env("WATCHDOG_USEC", WATCHDOG_USEC)
            .env_remove("WATCHDOG_PID")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn tp");
        Self(Some(child))
    }

    fn sigterm(&self) {
        if let Some(c) = &self.0 {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
        }
    }

    fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + DEADLINE;
        let child = self.0.as_mut().expect("running");
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.0 = None;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "tp did not exit within {DEADLINE:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline && c.try_wait().ok().flatten().is_none() {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Waits for three watchdog pings, then SIGTERM: STOPPING=1 and exit 0.
fn pings_then_stops(p: &mut Proc, n: &mut NotifySocket) {
    for _ in 0..3 {
        n.expect("WATCHDOG=1");
    }
    p.sigterm();
    n.expect("STOPPING=1");
    let status = p.wait();
    assert!(status.success(), "exit after SIGTERM: {status:?}");
}

fn start_media_driver(dir: &Path, aeron: &Path) -> (Proc, NotifySocket) {
    let mut n = NotifySocket::bind(dir, "media.sock");
    let p = Proc::spawn(
        &[
            "media-driver",
            "--dir",
            aeron.to_str().unwrap(),
            "--delete-dir-on-start",
            "--delete-dir-on-shutdown",
        ],
        &n.path.clone(),
    );
    let ready = n.expect("READY=1");
    assert!(ready.lines().any(|l| l.starts_with("STATUS=")), "{ready:?}");
    assert!(
        aeron.join("cnc.dat").exists(),
        "READY=1 before the CnC file exists"
    );
    (p, n)
}

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("tp-sdnotify-")
        .tempdir_in("/dev/shm")
        .unwrap()
}

#[test]
fn media_driver_ready_after_cnc_then_watchdog_then_stopping() {
    let dir = tempdir();
    let aeron = dir.path().join("aeron");
    let (mut media, mut n) = start_media_driver(dir.path(), &aeron);
    pings_then_stops(&mut media, &mut n);
}

#[test]
fn driver_ready_means_an_attach_is_answered() {
    let dir = tempdir();
    let aeron = dir.path().join("aeron");
    let (mut media, mut media_n) = start_media_driver(dir.path(), &aeron);
    let config = dir.path().join("driver.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[driver]
instance_id = "sdnotify-test"
[shm]
base_dir = "{shm}"
[policies]
shutdown_timeout_ms = 300
prefault_shm = false
[profiles.cam]
header_nslots = 8
payload_pools = [{{ pool_id = 1, stride_bytes = 256 }}]
[streams.cam]
stream_id = {STREAM}
profile = "cam"
[streams.dest]
stream_id = {DEST}
profile = "cam"
[streams.bridged]
stream_id = {BRIDGED}
profile = "cam"
[rate_limiter]
instance_id = "sdnotify-rl"
descriptor_channel = "aeron:ipc?term-length=4m"
descriptor_stream_id = 1100
control_channel = "aeron:ipc?term-length=4m"
control_stream_id = 1101
qos_channel = "aeron:ipc?term-length=4m"
metadata_channel = "aeron:ipc?term-length=4m"
shm_base_dir = "{shm}"
[[mappings]]
source_stream_id = {STREAM}
dest_stream_id = {DEST}
decimation = 2
"#,
            shm = dir.path().join("shm").display()
        ),
    )
    .unwrap();
    let mut n = NotifySocket::bind(dir.path(), "driver.sock");
    let mut driver = Proc::spawn(
        &[
            "driver",
            "--config",
            config.to_str().unwrap(),
            "--aeron-dir",
            aeron.to_str().unwrap(),
            "--idle",
            "sleep:1ms",
        ],
        &n.path.clone(),
    );
    let ready = n.expect("READY=1");
    assert!(
        ready.contains("STATUS=serving instance sdnotify-test"),
        "{ready:?}"
    );
    // the moment READY=1 is received: an attach is answered
    let out = Command::new(TP)
        .args(["driver", "attach", "--config"])
        .arg(&config)
        .args(["--aeron-dir", aeron.to_str().unwrap()])
        .args(["--role", "consumer", "--stream-id", &STREAM.to_string()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.lines().any(|l| l.starts_with("attached")),
        "attach right after READY=1: {out:?}"
    );
    // the roles on top: READY=1 once their agent runs, pings, STOPPING=1 and exit 0
    let aeron_s = aeron.to_str().unwrap();
    let config_s = config.to_str().unwrap();
    let bridge = dir.path().join("bridge.toml");
    // a port range unique to this test process (the bridge's receiver binds them)
    let port = 23_000 + (std::process::id() % 2_000) * 3;
    std::fs::write(
        &bridge,
        format!(
            r#"[bridge]
instance_id = "sdnotify-bridge"
payload_channel = "aeron:udp?endpoint=127.0.0.1:{port}"
payload_stream_id = 3000
control_channel = "aeron:udp?endpoint=127.0.0.1:{}"
control_stream_id = 3001
metadata_channel = "aeron:udp?endpoint=127.0.0.1:{}"
metadata_stream_id = 3002
[[mappings]]
source_stream_id = {STREAM}
dest_stream_id = {BRIDGED}
profile = "cam"
"#,
            port + 1,
            port + 2
        ),
    )
    .unwrap();
    let bridge_s = bridge.to_str().unwrap();
    for (name, args) in [
        (
            "ratelimit",
            vec![
                "ratelimit",
                "--config",
                config_s,
                "--driver-config",
                config_s,
                "--aeron-dir",
                aeron_s,
                "--idle",
                "sleep:1ms",
            ],
        ),
        (
            "bridge",
            vec![
                "bridge",
                "--config",
                bridge_s,
                "--side",
                "receiver",
                "--driver-config",
                config_s,
                "--aeron-dir",
                aeron_s,
                "--idle",
                "sleep:1ms",
            ],
        ),
        (
            "supervisor",
            vec!["supervisor", "--aeron-dir", aeron_s, "--idle", "sleep:1ms"],
        ),
    ] {
        let mut rn = NotifySocket::bind(dir.path(), &format!("{name}.sock"));
        let mut role = Proc::spawn(&args, &rn.path.clone());
        let ready = rn.expect("READY=1");
        assert!(ready.contains("STATUS="), "{name}: {ready:?}");
        pings_then_stops(&mut role, &mut rn);
    }
    pings_then_stops(&mut driver, &mut n);
    pings_then_stops(&mut media, &mut media_n);
}
