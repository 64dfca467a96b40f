//! `latency`: 4 KiB frames at 1 kHz and 10 kHz, one-way from the producer's commit to the
//! consumer's accept (every byte read, recheck passed), against raw Aeron IPC carrying the
//! same 4 KiB as one message (`try_claim` -> `poll`, every byte read) at the same rate. Both
//! stamp `CLOCK_MONOTONIC` right before the commit, in the payload; the reader takes the
//! clock after its read (same host, same clock).
//!
//! At each rate the two alternate over [`ROUNDS`] rounds (raw Aeron, then ours), and each
//! percentile is the median over the rounds, of each side: on a VM the cost of moving a
//! cache line between the two vCPUs changes when the hypervisor moves them (seen here: raw
//! Aeron's p50 at 0.4 us or 1.4 us from one minute to the next), so one pair alone can
//! compare two different machines.

use serde_json::{Value, json};

use super::procs::{Proc, STARTUP, args};
use super::report::{Figure, Target, conditions, s};
use super::session::PoolRun;
use super::{Output, Rig, plot};
use crate::cmd::CmdError;

const SIZE: usize = 4096;
const IDLE: &str = "busy-spin";
/// Alternating rounds per rate (one with --quick).
const ROUNDS: usize = 3;

/// The rounds of one side folded into one result: the median of each percentile over the
/// rounds, the largest max, the mean of the means, all the samples, and the percentile
/// curve of the round whose p50 is the median.
fn fold_rounds(rounds: &[Value]) -> Value {
    let get = |v: &Value, k: &str| v["latency_ns"][k].as_f64().unwrap_or(f64::NAN);
    let median = |k: &str| {
        let mut xs: Vec<f64> = rounds.iter().map(|v| get(v, k)).collect();
        xs.sort_by(f64::total_cmp);
        xs.get(xs.len() / 2).copied().unwrap_or(f64::NAN)
    };
    let p50 = median("p50");
    let middle = rounds
        .iter()
        .find(|v| get(v, "p50") == p50)
        .unwrap_or(&Value::Null);
    let n = rounds.len().max(1) as f64;
    json!({"latency_ns": {
        "p50": p50,
        "p99": median("p99"),
        "p99_9": median("p99_9"),
        "max": rounds.iter().map(|v| get(v, "max")).fold(f64::NAN, f64::max),
        "mean": rounds.iter().map(|v| get(v, "mean")).sum::<f64>() / n,
        "count": rounds.iter().map(|v| get(v, "count")).sum::<f64>(),
        "curve": middle["latency_ns"]["curve"].clone(),
        "rounds_p50": rounds.iter().map(|v| get(v, "p50")).collect::<Vec<_>>(),
    }})
}

/// The raw Aeron pair at `rate`; returns the subscriber's result.
fn raw_aeron(rig: &mut Rig, rate: f64, warmup: f64, duration: f64) -> Result<Value, CmdError> {
    let stream = rig.stream_id().to_string();
    let aeron = rig.aeron_dir();
    let common = [
        "--aeron-dir",
        &aeron,
        "--stream-id",
        &stream,
        "--idle",
        IDLE,
    ];
    let mut sub_args = args(&["bench-role", "aeron-sub"]);
    sub_args.extend(args(&common));
    let mut sub = rig.spawn("aeron-sub", &sub_args)?;
    sub.expect_event("ready", STARTUP)?;
    let mut pub_args = args(&["bench-role", "aeron-pub"]);
    pub_args.extend(args(&common));
    pub_args.extend(args(&[
        "--size",
        &SIZE.to_string(),
        "--rate",
        &rate.to_string(),
        "--warmup",
        &warmup.to_string(),
        "--duration",
        &duration.to_string(),
    ]));
    let mut publisher: Proc = rig.spawn("aeron-pub", &pub_args)?;
    publisher.expect_event("ready", STARTUP)?;
    publisher.say("go")?;
    let window = std::time::Duration::from_secs_f64(warmup + duration);
    let sent = publisher.expect_event("result", window + STARTUP)?;
    std::thread::sleep(std::time::Duration::from_millis(100));
    sub.close_stdin();
    let mut got = sub.expect_event("result", STARTUP)?;
    publisher.close_stdin();
    publisher.wait(STARTUP)?;
    sub.wait(STARTUP)?;
    got["sent"] = sent["committed"]["measure"].clone();
    got["back_pressured"] = sent["back_pressured"].clone();
    rig.record(json!({"measurement": "raw aeron", "rate": rate, "frame_bytes": SIZE, "subscriber_report": got}));
    Ok(got)
}

fn us(v: &Value, key: &str) -> f64 {
    v["latency_ns"][key].as_f64().unwrap_or(f64::NAN) / 1000.0
}

/// The percentile curve of a result, in µs.
fn curve(v: &Value) -> Vec<(f64, f64)> {
    v["latency_ns"]["curve"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| Some((p[0].as_f64()?, p[1].as_f64()? / 1000.0)))
                .collect()
        })
        .unwrap_or_default()
}

fn rate_conditions(rate: f64, duration: f64, rounds: usize, ours: &Value, raw: &Value) -> Value {
    let (ours, raw) = (
        &ours["latency_ns"]["rounds_p50"],
        &raw["latency_ns"]["rounds_p50"],
    );
    conditions(&[
        (
            "processes",
            s(
                "ours: media driver, producer (standalone), consumer; baseline: media driver, Aeron publisher, Aeron subscriber; each with its main thread and an Aeron client conductor thread",
            ),
        ),
        (
            "idle",
            s(
                "measured pair busy-spin (producer/publisher spin until the next frame is due; consumer/subscriber spin on poll); media driver Aeron backoff",
            ),
        ),
        (
            "payload",
            s(
                "touched: 4096 bytes memcpy'd in by the writer, every byte summed by the reader before the clock is read (ours after recheck())",
            ),
        ),
        ("frame_bytes", json!(SIZE)),
        ("rate", s(format!("{rate} frames/s, fixed"))),
        ("window_s", json!(duration)),
        (
            "rounds",
            s(format!(
                "{rounds} alternating rounds (raw Aeron, then ours), each {duration} s; each percentile is the median over the rounds of each side; p50 per round, ours: {ours} ns, raw Aeron: {raw} ns"
            )),
        ),
        (
            "clock",
            s(
                "CLOCK_MONOTONIC stamped in the payload right before the commit; read by the consumer after its read",
            ),
        ),
        (
            "baseline",
            s(
                "raw Aeron IPC, aeron:ipc?term-length=4m|mtu=8192 (one 4 KiB fragment), try_claim -> poll, same media driver",
            ),
        ),
    ])
}

fn rate_figures(
    rate: f64,
    (duration, rounds): (f64, usize),
    ours: &Value,
    raw: &Value,
    lost: u64,
) -> Vec<Figure> {
    let c = rate_conditions(rate, duration, rounds, ours, raw);
    let label = if rate >= 1000.0 {
        format!("{} kHz", rate / 1000.0)
    } else {
        format!("{rate} Hz")
    };
    let target_at = |q: &str| match (rate >= 10_000.0, q) {
        (true, "p50") => Some(Target::RatioAtMost(1.5)),
        (true, "p99_9") => Some(Target::RatioAtMost(3.0)),
        _ => None,
    };
    let mut figs: Vec<Figure> = ["p50", "p99", "p99_9", "max"]
        .iter()
        .map(|q| {
            let name = format!("{label}: {} commit -> accept", q.replace('_', "."));
            let mut f =
                Figure::new("latency", name, us(ours, q), "us").vs(us(raw, q), "raw Aeron IPC");
            if let Some(t) = target_at(q) {
                f = f.target(t);
            }
            f.with(&c)
        })
        .collect();
    figs.push(
        Figure::new(
            "latency",
            format!("{label}: mean commit -> accept"),
            us(ours, "mean"),
            "us",
        )
        .vs(us(raw, "mean"), "raw Aeron IPC")
        .with(&c),
    );
    let samples = ours["latency_ns"]["count"].as_f64().unwrap_or(0.0);
    figs.push(
        Figure::new(
            "latency",
            format!("{label}: samples (accepted frames)"),
            samples,
            "frames",
        )
        .with(&c),
    );
    figs.push(
        Figure::new(
            "latency",
            format!("{label}: frames not accepted"),
            lost as f64,
            "frames",
        )
        .with(&c),
    );
    figs
}

/// Where the time goes at 10 kHz (p50 of each part): a third run whose descriptors carry
/// their publish time and whose consumer reads the clock on entering the handler.
fn breakdown(rig: &mut Rig, warmup: f64, duration: f64) -> Result<Vec<Figure>, CmdError> {
    let run = PoolRun {
        size: SIZE,
        nslots: 64,
        rate: 10_000.0,
        warmup,
        duration,
        consumers: 1,
        producer_idle: IDLE,
        consumer_idle: IDLE,
        breakdown: true,
    }
    .run(rig)?;
    let r = &run.consumers[0];
    let c = conditions(&[
        (
            "processes",
            s("media driver, producer (standalone), consumer"),
        ),
        (
            "idle",
            s("producer and consumer busy-spin; media driver Aeron backoff"),
        ),
        ("frame_bytes", json!(SIZE)),
        ("rate", s("10000 frames/s, fixed")),
        (
            "measured",
            s(
                "a separate run: the producer also puts CLOCK_MONOTONIC in FrameDescriptor.timestamp_ns when it publishes, the consumer also reads the clock when its handler is entered (two more clock reads per frame than the figures above)",
            ),
        ),
    ]);
    let p50 = |k: &str| r["breakdown_ns"][k]["p50"].as_f64().unwrap_or(f64::NAN) / 1000.0;
    Ok(vec![
        Figure::new("latency", "10 kHz breakdown p50: commit stamp -> descriptor published (slot header write, seqlock commit)", p50("commit_to_published"), "us").with(&c),
        Figure::new("latency", "10 kHz breakdown p50: descriptor published -> consumer handler entered (Aeron IPC, poll cycle, slot header read + validation)", p50("published_to_handler"), "us").with(&c),
        Figure::new("latency", "10 kHz breakdown p50: handler entered -> accepted (4 KiB read, recheck)", p50("handler_to_accepted"), "us").with(&c),
        Figure::new("latency", "10 kHz breakdown run: p50 commit -> accept", us(r, "p50"), "us").with(&c),
    ])
}

/// `tp bench latency`.
pub fn run(rig: &mut Rig) -> Result<Output, CmdError> {
    let (warmup, duration, rounds) = if rig.quick() {
        (0.2, 0.5, 1)
    } else {
        (1.0, 4.0, ROUNDS)
    };
    let mut out = Output::default();
    let mut series = Vec::new();
    for rate in [1000.0, 10_000.0] {
        let (mut raws, mut ours, mut lost) = (Vec::new(), Vec::new(), 0);
        for _ in 0..rounds {
            raws.push(raw_aeron(rig, rate, warmup, duration)?);
            let run = PoolRun {
                size: SIZE,
                nslots: 64,
                rate,
                warmup,
                duration,
                consumers: 1,
                producer_idle: IDLE,
                consumer_idle: IDLE,
                breakdown: false,
            }
            .run(rig)?;
            lost += run.lost(0);
            ours.push(run.consumers[0].clone());
        }
        let (raw, ours) = (fold_rounds(&raws), fold_rounds(&ours));
        out.figures
            .extend(rate_figures(rate, (duration, rounds), &ours, &raw, lost));
        let k = rate / 1000.0;
        series.push((format!("tensorpool, {k} kHz"), curve(&ours)));
        series.push((format!("raw Aeron IPC, {k} kHz"), curve(&raw)));
    }
    out.figures.extend(breakdown(rig, warmup, duration)?);
    let name = "latency.svg";
    plot::latency(&rig.out().join(name), &series)?;
    out.plots.push(name.into());
    Ok(out)
}
