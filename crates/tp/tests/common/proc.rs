//! A `tp` child process for the process tests (included with `#[path]`): its stdout and
//! stderr lines arrive on a channel (and are echoed with its name), waits have deadlines,
//! SIGTERM then SIGKILL on drop. `ns` runs it inside a network namespace (`ip netns exec`).
//! `TP_TEST_LOG` sets the child's `RUST_LOG` (default `warn`).
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const TP: &str = env!("CARGO_BIN_EXE_tp");
/// How long a wait for a line or an exit may take.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// A child whose stdout and stderr lines arrive on a channel; SIGTERM then SIGKILL on drop.
pub struct Proc {
    child: Option<Child>,
    name: String,
    lines: mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl Proc {
    pub fn spawn(name: &str, ns: Option<&str>, args: &[&str]) -> Self {
        Self::spawn_env(name, ns, args, &[])
    }

    pub fn spawn_env(name: &str, ns: Option<&str>, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut cmd = match ns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, TP]);
                c
            }
            None => Command::new(TP),
        };
        let mut child = cmd
            .args(args)
            .envs(env.iter().copied())
            .env(
                "RUST_LOG",
                std::env::var("TP_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        let (tx, rx) = mpsc::channel();
        for out in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            let who = name.to_owned();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    eprintln!("[{who}] {line}");
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Self {
            child: Some(child),
            name: name.to_owned(),
            lines: rx,
            seen: Vec::new(),
        }
    }

    /// Waits (bounded) for a line matching `f`.
    pub fn expect(&mut self, what: &str, f: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if f(&line) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "{}: no {what} within {DEADLINE:?}; saw {:?}",
                    self.name, self.seen
                ),
            }
        }
    }

    /// Waits (bounded) for the exit; returns every line seen.
    pub fn finish(&mut self) -> (bool, Vec<String>) {
        let deadline = Instant::now() + DEADLINE;
        let mut child = self.child.take().expect("running");
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{} did not exit within {DEADLINE:?}; saw {:?}",
                    self.name, self.seen
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // drain what is left (the reader threads end with the pipes)
        while let Ok(l) = self.lines.recv_timeout(Duration::from_millis(500)) {
            self.seen.push(l);
        }
        (status.success(), self.seen.clone())
    }

    /// Waits (bounded) until the periodic `tp consume` line reports `n` accepted frames.
    pub fn wait_accepted(&mut self, n: u64) {
        self.expect(&format!("{n} accepted frames"), |l| {
            l.split("accepted ")
                .nth(1)
                .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|d| d.parse::<u64>().ok())
                .is_some_and(|a| a >= n)
        });
    }

    /// SIGKILL (no clean-up of its own: leases are left to expire) and reap.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits for a line containing `ready` (true) or the exit of the process (false).
    pub fn ready_or_exit(&mut self, ready: &str, deadline: Instant) -> bool {
        loop {
            match self.lines.recv_timeout(Duration::from_millis(50)) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(ready) {
                        return true;
                    }
                }
                Err(_) => {
                    let exited = self
                        .child
                        .as_mut()
                        .is_none_or(|c| c.try_wait().ok().flatten().is_some());
                    if exited {
                        let _ = self.finish();
                        return false;
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "{}: not {ready} within {DEADLINE:?}; saw {:?}",
                self.name,
                self.seen
            );
        }
    }

    pub fn stop(&mut self) -> Vec<String> {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
        }
        if self.child.is_some() {
            let _ = self.finish();
        }
        self.seen.clone()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
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
