//! Helpers for the tool tests: `tp` runs as a real process with a deadline on every wait;
//! each test starts its own embedded media driver (a unique directory under /dev/shm,
//! removed on drop) and publishes through its own client.
#![allow(dead_code)]

pub mod pty;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tensorpool_aeron::{
    AeronClient, DriverIdleStrategy, EmbeddedMediaDriver, MediaDriverConfig, Publication,
};
use tensorpool_codec::{AnyMessage, Message};

pub const TP: &str = env!("CARGO_BIN_EXE_tp");
/// Longest any single wait may take.
pub const DEADLINE: Duration = Duration::from_secs(60);
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// What a finished `tp` run printed.
#[derive(Debug)]
pub struct Run {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Run {
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout_text()))
    }

    /// Asserts success with nothing on stderr.
    pub fn ok(self) -> Self {
        assert!(
            self.status.success(),
            "tp failed: {:?}\nstderr: {}",
            self.status,
            self.stderr
        );
        self
    }

    /// Asserts failure with exactly one line on stderr that contains `needle` (any case).
    pub fn fails_with(self, needle: &str) -> Self {
        assert!(
            !self.status.success(),
            "tp succeeded: {}",
            self.stdout_text()
        );
        assert_eq!(
            self.stderr.lines().count(),
            1,
            "one error line expected, got: {:?}",
            self.stderr
        );
        assert!(
            self.stderr.to_lowercase().contains(&needle.to_lowercase()),
            "stderr lacks {needle:?}: {}",
            self.stderr
        );
        assert!(
            !self.stderr.contains("panicked"),
            "tp panicked: {}",
            self.stderr
        );
        self
    }
}

/// Kills the child if the test ends first.
pub struct ChildGuard(pub Option<Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Reads a pipe to its end on a thread.
fn drain(mut pipe: impl Read + Send + 'static) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        let _ = tx.send(buf);
    });
    rx
}

/// Runs `tp args...` with `stdin`, waiting at most [`DEADLINE`].
pub fn tp_with_input(args: &[&str], stdin: &[u8]) -> Run {
    let mut child = Command::new(TP)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tp");
    let mut input = child.stdin.take().expect("stdin");
    let out = drain(child.stdout.take().expect("stdout"));
    let err = drain(child.stderr.take().expect("stderr"));
    let data = stdin.to_vec();
    std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let mut guard = ChildGuard(Some(child));
    let status = wait_exit(&mut guard, DEADLINE, &format!("tp {args:?}"));
    let stdout = out.recv_timeout(DEADLINE).expect("stdout");
    let stderr = String::from_utf8_lossy(&err.recv_timeout(DEADLINE).expect("stderr")).into();
    Run {
        status,
        stdout,
        stderr,
    }
}

/// Runs `tp args...` with empty stdin.
pub fn tp(args: &[&str]) -> Run {
    tp_with_input(args, &[])
}

/// Waits (bounded, sleeping) for the guarded child to exit.
pub fn wait_exit(guard: &mut ChildGuard, within: Duration, what: &str) -> ExitStatus {
    let deadline = Instant::now() + within;
    let child = guard.0.as_mut().expect("running");
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            guard.0 = None;
            return status;
        }
        assert!(Instant::now() < deadline, "{what} did not exit in time");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The C implementation's vectors, or `None` (with the reason printed) when absent.
pub fn vectors_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("TENSORPOOL_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"))
        .join("vectors/tensor_pool_c");
    if dir.is_dir() {
        Some(dir)
    } else {
        println!(
            "skipped: {} not found; set TENSORPOOL_SHARED_DIR",
            dir.display()
        );
        None
    }
}

/// A private media driver (own directory under /dev/shm, removed on drop).
pub fn driver() -> EmbeddedMediaDriver {
    let config = MediaDriverConfig::default()
        .idle_strategy(DriverIdleStrategy::Sleeping(Duration::from_micros(200)))
        .term_buffer_length(1024 * 1024)
        .ipc_term_buffer_length(1024 * 1024);
    EmbeddedMediaDriver::start(config).expect("embedded media driver starts")
}

pub fn connect(driver: &EmbeddedMediaDriver) -> AeronClient {
    AeronClient::connect(driver.dir(), TIMEOUT).expect("client connects")
}

/// Waits (bounded, sleeping) until `cond` holds.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    let mut round = 0u32;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        round = (round + 1).min(6);
        std::thread::sleep(Duration::from_micros(100u64 << round));
    }
}

/// An IPC publication on `stream_id`, once a subscriber (the `tp` under test) is connected.
pub fn connected_publication(client: &AeronClient, stream_id: i32) -> Publication {
    let publication = client
        .add_publication("aeron:ipc", stream_id, TIMEOUT)
        .expect("publication");
    wait_until(&format!("a subscriber on stream {stream_id}"), || {
        publication.is_connected()
    });
    publication
}

/// Offers `bytes`, retrying (bounded) while the publication is back-pressured.
pub fn offer(publication: &mut Publication, bytes: &[u8]) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        match publication.offer(bytes) {
            Ok(_) => return,
            Err(e) if e.is_retryable() && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => panic!("offer: {e}"),
        }
    }
}

/// Encodes a message.
pub fn bytes_of(m: &AnyMessage<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; m.encoded_len()];
    m.encode(&mut buf).expect("encode");
    buf
}

/// Encodes a typed message.
pub fn encode<'a, M: Message<'a>>(m: &M) -> Vec<u8> {
    m.encode_to_vec().expect("encode")
}
