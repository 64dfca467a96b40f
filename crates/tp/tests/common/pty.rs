//! `tp top` under a pseudo-terminal: portable-pty runs it, a reader thread rebuilds its
//! screen with vt100; helpers read cells of its aligned tables and quit it cleanly.

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portable_pty::{CommandBuilder, PtySize, native_pty_system};

use super::{DEADLINE, TP};

pub const ROWS: u16 = 40;
pub const COLS: u16 = 160;

/// The terminal as `tp top` drew it.
pub type Screen = Arc<Mutex<vt100::Parser>>;

/// The screen's text.
pub fn contents(screen: &Screen) -> String {
    screen.lock().expect("screen").screen().contents()
}

/// The cell of `row_start`'s row under the column titled `column` (tables are aligned).
pub fn cell(text: &str, column: &str, row_start: &str) -> Option<String> {
    let lines: Vec<Vec<char>> = text.lines().map(|l| l.chars().collect()).collect();
    let header = lines.iter().find(|l| {
        let s: String = l.iter().collect();
        s.contains(column) && s.contains("STREAM") || s.contains(column) && s.contains("CONSUMER")
    })?;
    let h: String = header.iter().collect();
    let start = h.find(column).map(|b| h[..b].chars().count())?;
    let row = lines.iter().find(|l| {
        let s: String = l.iter().collect();
        s.trim_start_matches('│').starts_with(row_start)
    })?;
    let rest: String = row.iter().skip(start).collect();
    rest.split_whitespace().next().map(str::to_owned)
}

/// `tp top` in a pseudo-terminal, its screen rebuilt by a reader thread.
pub struct Top {
    pub child: Box<dyn portable_pty::Child + Send + Sync>,
    pub screen: Screen,
    pub keys: Box<dyn Write + Send>,
    /// Kept open for as long as the test runs.
    pub _master: Box<dyn portable_pty::MasterPty + Send>,
}

impl Top {
    /// Waits (bounded) until the screen satisfies `pred`, calling `tick` between looks.
    pub fn wait_for(&self, what: &str, mut tick: impl FnMut(), pred: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let text = contents(&self.screen);
            if pred(&text) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "screen never showed {what}:\n{text}"
            );
            tick();
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Presses `q` and waits (bounded) for a clean exit with the terminal restored; kills
    /// the child if it does not quit.
    pub fn quit(mut self) {
        self.keys.write_all(b"q").expect("key");
        self.keys.flush().expect("flush");
        self.wait_restored("q");
    }

    /// Sends `signal` (`TERM`, `INT`) to `tp top` and waits (bounded) for a clean exit with
    /// the terminal restored.
    pub fn signal(mut self, signal: &str) {
        let pid = self.child.process_id().expect("pid");
        let sent = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .expect("kill");
        assert!(sent.success());
        self.wait_restored(signal);
    }

    fn wait_restored(&mut self, how: &str) {
        let deadline = Instant::now() + DEADLINE;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!("tp top did not quit on {how}:\n{}", contents(&self.screen));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success(), "tp top exit: {status:?}");
        super::wait_until("the terminal restored (alternate screen left)", || {
            !self
                .screen
                .lock()
                .expect("screen")
                .screen()
                .alternate_screen()
        });
    }
}

impl Drop for Top {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `tp top ARGS...` (at 10 refreshes per second) in a pseudo-terminal.
pub fn spawn_top(args: &[&str]) -> Top {
    let pty = native_pty_system()
        .openpty(PtySize {
            rows: ROWS,
            cols: COLS,
            pixel_width: 0,
            pixel_height: 0,
        })
        .expect("openpty");
    let mut cmd = CommandBuilder::new(TP);
    cmd.args(["top", "--refresh-hz", "10"]);
    cmd.args(args);
    cmd.env("TERM", "xterm-256color");
    cmd.cwd(std::env::current_dir().expect("cwd"));
    let child = pty.slave.spawn_command(cmd).expect("spawn tp top");
    drop(pty.slave);
    let mut reader = pty.master.try_clone_reader().expect("reader");
    let keys = pty.master.take_writer().expect("writer");
    let screen: Screen = Arc::new(Mutex::new(vt100::Parser::new(ROWS, COLS, 0)));
    let sink = screen.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().expect("screen").process(&buf[..n]);
        }
    });
    Top {
        child,
        screen,
        keys,
        _master: pty.master,
    }
}
