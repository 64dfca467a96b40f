//! The Rust examples (`examples/producer.rs`, `examples/consumer.rs`) run as the docs say and
//! clean up on Ctrl-C: frames reach the consumer, and after SIGINT both exit 0 with the
//! producer's SHM files and the embedded media driver's directory removed. Runs the example
//! binaries cargo built next to this test (`cargo test` / `nextest` build examples); skips
//! with the reason when they are absent.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

fn example(name: &str) -> Option<PathBuf> {
    // target/<profile>/deps/examples-<hash> -> target/<profile>/examples/<name>
    let exe = std::env::current_exe().ok()?;
    let p = exe.parent()?.parent()?.join("examples").join(name);
    p.is_file().then_some(p)
}

/// Spawns `path` with `TP_EXAMPLE_ROOT=root`; its stdout lines arrive on the channel.
fn spawn(path: &PathBuf, root: &std::path::Path) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new(path)
        .env("TP_EXAMPLE_ROOT", root)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

fn wait_line(rx: &mpsc::Receiver<String>, what: &str, pred: impl Fn(&str) -> bool) {
    loop {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) if pred(&line) => return,
            Ok(_) => {}
            Err(e) => panic!("never printed {what}: {e}"),
        }
    }
}

fn interrupt(child: &mut Child) {
    let ok = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the example did not stop on SIGINT");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
}

#[test]
fn the_examples_exchange_frames_and_remove_their_files_on_ctrl_c() {
    let (Some(producer), Some(consumer)) = (example("producer"), example("consumer")) else {
        eprintln!("skipped: the example binaries were not built next to this test");
        return;
    };
    let root = tempfile::Builder::new()
        .prefix("tp-examples-")
        .tempdir_in("/dev/shm")
        .unwrap();
    let (mut p, p_out) = spawn(&producer, root.path());
    wait_line(&p_out, "the producer's start", |l| {
        l.starts_with("producing")
    });
    let (mut c, c_out) = spawn(&consumer, root.path());
    wait_line(&c_out, "a frame at the consumer", |l| {
        l.starts_with("frame ") && l.contains("[480, 640]")
    });
    interrupt(&mut c);
    interrupt(&mut p);
    let left: Vec<_> = std::fs::read_dir(root.path())
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
