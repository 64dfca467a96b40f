//! The processes of a benchmark: `tp` spawns itself (`tp media-driver`, `tp driver`,
//! `tp bench-role ...`), reads each child's stdout as lines (the roles print one JSON object a
//! line), talks to it through its stdin (`go`; end of input means stop) and sends its stderr
//! to a log file. Every wait has a deadline; a child still running when its handle is dropped
//! gets SIGTERM, then SIGKILL.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cmd::CmdError;

/// Longest wait for a child to start, connect or report.
pub const STARTUP: Duration = Duration::from_secs(30);

/// A child process of the benchmark.
#[derive(Debug)]
pub struct Proc {
    name: String,
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    recent: VecDeque<String>,
    log: PathBuf,
    /// A `bench-role` process: it ends by itself, closing its Aeron client, when its stdin
    /// closes.
    ends_on_eof: bool,
}

impl Proc {
    /// Spawns `exe args...`, stderr to `log_dir/<name>.log`.
    pub fn spawn(
        exe: &Path,
        name: &str,
        args: &[String],
        log_dir: &Path,
    ) -> Result<Self, CmdError> {
        let log = log_dir.join(format!("{name}.log"));
        let err = File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let mut child = Command::new(exe)
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(err))
            .spawn()
            .map_err(|e| format!("spawning {name}: {e}"))?;
        let stdout = child.stdout.take().ok_or("child without stdout")?;
        let (tx, rx) = channel();
        std::thread::Builder::new()
            .name(format!("out-{name}"))
            .spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            })?;
        Ok(Self {
            name: name.to_owned(),
            // also `ip netns exec NS tp bench-role ...`
            ends_on_eof: args.iter().take(5).any(|a| a == "bench-role"),
            stdin: child.stdin.take(),
            child: Some(child),
            lines: rx,
            recent: VecDeque::new(),
            log,
        })
    }

    fn failure(&mut self, what: &str) -> CmdError {
        let status = self
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
            .map_or("still running".to_owned(), |s| format!("exited with {s}"));
        let tail = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = tail.lines().rev().take(3).collect();
        format!(
            "{}: {what} ({status}; last output {:?}; stderr tail {:?} in {})",
            self.name,
            self.recent,
            tail,
            self.log.display()
        )
        .into()
    }

    /// The next stdout line, waiting until `deadline`.
    pub fn next_line(&mut self, deadline: Instant) -> Result<String, CmdError> {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.lines.recv_timeout(left) {
            Ok(line) => {
                if self.recent.len() == 4 {
                    self.recent.pop_front();
                }
                self.recent.push_back(line.clone());
                Ok(line)
            }
            Err(RecvTimeoutError::Timeout) => Err(self.failure("no answer in time")),
            Err(RecvTimeoutError::Disconnected) => Err(self.failure("output ended")),
        }
    }

    /// The next line for which `f` holds, within `within`.
    pub fn expect_line(
        &mut self,
        within: Duration,
        f: impl Fn(&str) -> bool,
    ) -> Result<String, CmdError> {
        let deadline = Instant::now() + within;
        loop {
            let line = self.next_line(deadline)?;
            if f(&line) {
                return Ok(line);
            }
        }
    }

    /// The next JSON line whose `event` is `event`, within `within`.
    pub fn expect_event(&mut self, event: &str, within: Duration) -> Result<Value, CmdError> {
        let deadline = Instant::now() + within;
        loop {
            let line = self.next_line(deadline)?;
            if let Ok(v) = serde_json::from_str::<Value>(&line)
                && v.get("event").and_then(Value::as_str) == Some(event)
            {
                return Ok(v);
            }
        }
    }

    /// Writes one line to the child's stdin.
    pub fn say(&mut self, line: &str) -> Result<(), CmdError> {
        let stdin = self.stdin.as_mut().ok_or("stdin closed")?;
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("{}: writing to stdin: {e}", self.name).into())
    }

    /// The child's process id (`None` once reaped).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Closes the child's stdin: the bench roles take that as "stop and report".
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// SIGKILL, then reaps the child.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits for the exit within `within`.
    pub fn wait(&mut self, within: Duration) -> Result<ExitStatus, CmdError> {
        let deadline = Instant::now() + within;
        loop {
            let child = self.child.as_mut().ok_or("not running")?;
            if let Some(status) = child.try_wait()? {
                self.child = None;
                return Ok(status);
            }
            if Instant::now() >= deadline {
                return Err(self.failure("did not exit in time"));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Closes stdin and, for a role process, waits up to 3 s for it to end by itself; then
    /// SIGTERM, up to 3 s for the exit, then SIGKILL. A role must end by itself: a process
    /// killed with its Aeron client open leaves that client's subscriptions to the media
    /// driver until the client liveness timeout (10 s), and a tethered IPC subscription
    /// that nobody polls holds back every publication on its stream (the next benchmark's
    /// descriptors were refused by back pressure for those 10 s).
    pub fn stop(&mut self) {
        self.stdin = None;
        if self.child.is_none() {
            return;
        }
        if self.ends_on_eof && self.wait(Duration::from_secs(3)).is_ok() {
            return;
        }
        let Some(child) = self.child.as_mut() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .stderr(Stdio::null())
            .status();
        if self.wait(Duration::from_secs(3)).is_err() {
            self.kill9();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The Aeron media driver as its own process (`tp media-driver`), shared threading with
/// Aeron's back-off idle strategy: IPC data never passes through it, it only keeps the
/// publication limits moving and the clients alive. Its directory is removed after it
/// stopped.
#[derive(Debug)]
pub struct MediaDriver {
    proc: Proc,
    dir: PathBuf,
}

/// What the media driver runs with (for the conditions).
pub const MEDIA_DRIVER_IDLE: &str = "Aeron media driver process, shared threading, Aeron backoff idle (10 spins, 20 yields, park 1 us..1 ms)";

impl MediaDriver {
    /// Starts it in `dir` and waits until it runs.
    pub fn start(exe: &Path, dir: &Path, log_dir: &Path) -> Result<Self, CmdError> {
        let args: Vec<String> = [
            "media-driver",
            "--dir",
            &dir.to_string_lossy(),
            "--threading-mode",
            "shared",
            "--delete-dir-on-start",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let mut proc = Proc::spawn(exe, "media-driver", &args, log_dir)?;
        proc.expect_line(STARTUP, |l| l.contains("running"))?;
        Ok(Self {
            proc,
            dir: dir.to_path_buf(),
        })
    }

    /// The Aeron directory clients connect to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for MediaDriver {
    fn drop(&mut self) {
        self.proc.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// CPU time (ns) `pid` has used so far, every thread (the sum of each task's on-CPU time in
/// `/proc/<pid>/task/*/schedstat`: nanoseconds, where `/proc/<pid>/stat` counts 10 ms ticks).
pub fn process_cpu_ns(pid: u32) -> Result<u64, CmdError> {
    let mut total = 0u64;
    let dir = format!("/proc/{pid}/task");
    for task in std::fs::read_dir(&dir).map_err(|e| format!("{dir}: {e}"))? {
        let path = task?.path().join("schedstat");
        // a thread that ended meanwhile has no file any more: its time is lost, not an error
        if let Ok(text) = std::fs::read_to_string(&path) {
            total += text
                .split_whitespace()
                .next()
                .and_then(|w| w.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Ok(total)
}

/// Strings for `Command::args`.
pub fn args(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}
