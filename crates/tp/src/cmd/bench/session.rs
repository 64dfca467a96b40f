//! One measurement of the pool: a standalone producer process and N consumer processes on
//! a fresh stream, started in order (consumers, producer, every consumer mapped, `go`),
//! run for warm-up + window, then stopped and their reports collected.

use std::time::Duration;

use serde_json::Value;

use super::Rig;
use super::procs::{Proc, STARTUP, args};
use crate::cmd::CmdError;

/// What to run.
#[derive(Debug, Clone)]
pub struct PoolRun {
    /// Payload bytes per frame.
    pub size: usize,
    /// Header ring slots (= slots per pool).
    pub nslots: u32,
    /// Offered frames per second (0: flat out).
    pub rate: f64,
    /// Warm-up seconds (not counted).
    pub warmup: f64,
    /// Measured seconds.
    pub duration: f64,
    /// Consumer processes.
    pub consumers: usize,
    /// Producer idle strategy between due frames.
    pub producer_idle: &'static str,
    /// Consumer idle strategy when a poll found nothing.
    pub consumer_idle: &'static str,
    /// Descriptors carry their publish time and consumers split the latency there (costs
    /// a clock read on each side per frame).
    pub breakdown: bool,
}

/// What the processes reported.
#[derive(Debug)]
pub struct PoolResult {
    /// The producer's `result`.
    pub producer: Value,
    /// Each consumer's `result`.
    pub consumers: Vec<Value>,
}

impl PoolResult {
    /// Frames committed in the window.
    pub fn committed(&self) -> u64 {
        self.producer["committed"]["measure"].as_u64().unwrap_or(0)
    }

    /// The window's length in seconds.
    pub fn window_s(&self) -> f64 {
        self.producer["window_ns"].as_f64().unwrap_or(0.0) / 1e9
    }

    /// Frames committed per second in the window.
    pub fn producer_fps(&self) -> f64 {
        self.committed() as f64 / self.window_s().max(1e-9)
    }

    /// Frames of the window consumer `i` accepted.
    pub fn accepted(&self, i: usize) -> u64 {
        self.consumers[i]["accepted"]["measure"]
            .as_u64()
            .unwrap_or(0)
    }

    /// Frames of the window consumer `i` accepted, per second of the window.
    pub fn consumer_fps(&self, i: usize) -> f64 {
        self.accepted(i) as f64 / self.window_s().max(1e-9)
    }

    /// Frames of the window consumer `i` did not accept.
    pub fn lost(&self, i: usize) -> u64 {
        self.committed().saturating_sub(self.accepted(i))
    }
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

impl PoolRun {
    /// Runs it on `rig`.
    pub fn run(&self, rig: &mut Rig) -> Result<PoolResult, CmdError> {
        let stream = rig.stream_id().to_string();
        let aeron = rig.aeron_dir();
        let shm = rig.shm_dir();
        let mut consumers: Vec<Proc> = Vec::with_capacity(self.consumers);
        for i in 0..self.consumers {
            let mut a = args(&[
                "bench-role",
                "consumer",
                "--aeron-dir",
                &aeron,
                "--stream-id",
                &stream,
                "--allowed-base-dir",
                &shm,
                "--idle",
                self.consumer_idle,
            ]);
            if self.breakdown {
                a.push("--breakdown".into());
            }
            consumers.push(rig.spawn(&format!("consumer{i}"), &a)?);
        }
        for c in &mut consumers {
            c.expect_event("ready", STARTUP)?;
        }
        let mut a = args(&[
            "bench-role",
            "producer",
            "--aeron-dir",
            &aeron,
            "--stream-id",
            &stream,
            "--shm-dir",
            &shm,
            "--size",
            &self.size.to_string(),
            "--nslots",
            &self.nslots.to_string(),
            "--rate",
            &self.rate.to_string(),
            "--warmup",
            &self.warmup.to_string(),
            "--duration",
            &self.duration.to_string(),
            "--idle",
            self.producer_idle,
        ]);
        if self.breakdown {
            a.push("--publish-timestamp".into());
        }
        let mut producer = rig.spawn("producer", &a)?;
        producer.expect_event("ready", STARTUP)?;
        for c in &mut consumers {
            c.expect_event("mapped", STARTUP)?;
        }
        producer.say("go")?;
        let result =
            producer.expect_event("result", secs(self.warmup + self.duration) + STARTUP)?;
        // the consumers read what is still in flight, then report
        std::thread::sleep(Duration::from_millis(200));
        for c in &mut consumers {
            c.close_stdin();
        }
        let mut reports = Vec::with_capacity(consumers.len());
        for c in &mut consumers {
            reports.push(c.expect_event("result", STARTUP)?);
        }
        producer.close_stdin();
        producer.wait(STARTUP)?;
        for c in &mut consumers {
            c.wait(STARTUP)?;
        }
        rig.record(serde_json::json!({
            "measurement": "pool",
            "frame_bytes": self.size,
            "nslots": self.nslots,
            "rate": self.rate,
            "consumers": self.consumers,
            "producer_idle": self.producer_idle,
            "consumer_idle": self.consumer_idle,
            "breakdown": self.breakdown,
            "producer_report": result,
            "consumer_reports": reports,
        }));
        Ok(PoolResult {
            producer: result,
            consumers: reports,
        })
    }
}
