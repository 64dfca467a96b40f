//! The text form of a `tp inspect` report.

use std::fmt::Write as _;

use serde_json::Value;

use super::Report;

/// The report as aligned lines.
pub fn render(r: &Report) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "region        {}", r.path.display());
    let _ = writeln!(o, "file          {} bytes on {}", r.file_len, r.fs);
    let _ = writeln!(o, "type          {}", r.region);
    let s = &r.superblock;
    let verdict = |field: &str| {
        r.checks
            .iter()
            .find(|c| c.field == field)
            .map(|c| {
                let mark = if c.ok { "ok" } else { "BAD" };
                if c.note.is_empty() {
                    mark.to_owned()
                } else {
                    format!("{mark}  {}", c.note)
                }
            })
            .unwrap_or_default()
    };
    let rows: [(&str, String); 9] = [
        ("magic", format!("0x{:016x}", s.magic)),
        ("layout_version", s.layout_version.to_string()),
        ("epoch", s.epoch.to_string()),
        ("stream_id", s.stream_id.to_string()),
        ("region_type", s.region_type.to_string()),
        ("pool_id", s.pool_id.to_string()),
        ("nslots", s.nslots.to_string()),
        ("slot_bytes", s.slot_bytes.to_string()),
        ("stride_bytes", s.stride_bytes.to_string()),
    ];
    let _ = writeln!(o, "superblock");
    for (field, value) in rows {
        let line = format!("  {field:<22} {value:<20} {}", verdict(field));
        let _ = writeln!(o, "{}", line.trim_end());
    }
    let _ = writeln!(
        o,
        "  {:<22} {:<20} {}",
        "file_len",
        r.file_len,
        verdict("file_len")
    );
    liveness(r, &mut o);
    match &r.error {
        None => {
            let _ = writeln!(o, "verdict       valid");
        }
        Some(e) => {
            let _ = writeln!(o, "verdict       INVALID: {e}");
        }
    }
    if let Some(ring) = &r.ring {
        slots(ring, &mut o);
    }
    o
}

fn liveness(r: &Report, o: &mut String) {
    let l = &r.liveness;
    let s = &r.superblock;
    let pid = match l.pid_alive {
        None => "not recorded".to_owned(),
        Some(true) => format!("{} (alive)", l.pid),
        Some(false) => format!("{} (no such process here)", l.pid),
    };
    let _ = writeln!(o, "  {:<22} {pid}", "pid");
    let _ = writeln!(o, "  {:<22} {}", "start_timestamp_ns", s.start_timestamp_ns);
    let age = match l.activity_age_ms {
        None => "never refreshed".to_owned(),
        Some(ms) => format!("age {ms:.0} ms on the {} clock", l.clock),
    };
    let state = if l.stale {
        format!("STALE (window {} ms)", l.window_ms)
    } else {
        format!("fresh (window {} ms)", l.window_ms)
    };
    let _ = writeln!(
        o,
        "  {:<22} {:<20} {age}, {state}",
        "activity_timestamp_ns", s.activity_timestamp_ns
    );
}

fn slots(ring: &super::slots::RingReport, o: &mut String) {
    let (n, committed, in_progress, empty) = ring.counts();
    let latest = ring
        .latest()
        .map(|(seq, i)| format!(", latest seq {seq} in slot {i}"))
        .unwrap_or_default();
    let _ = writeln!(
        o,
        "slots         {n}: {committed} committed, {in_progress} in progress, {empty} empty{latest}"
    );
    if ring.slots().is_empty() {
        return;
    }
    let _ = writeln!(
        o,
        "  {:>5}  {:<11} {:>8}  {:>4}  {:>10}  {:<8} {:<16} {:<16} {:>20}  check",
        "index", "state", "seq", "pool", "values_len", "dtype", "shape", "strides", "timestamp_ns"
    );
    for slot in ring.slots() {
        let (index, state, seq, header) = slot.parts();
        let seq = seq.map(|s| s.to_string()).unwrap_or_else(|| "-".into());
        let h = header.cloned().unwrap_or(Value::Null);
        let t = &h["tensor"];
        let ndims = t["ndims"].as_u64().unwrap_or(0) as usize;
        let list = |v: &Value| match v.as_array() {
            Some(a) => {
                let items: Vec<String> = a.iter().take(ndims).map(|x| x.to_string()).collect();
                format!("[{}]", items.join(","))
            }
            None => "-".into(),
        };
        let field = |v: &Value| match v {
            Value::Null => "-".to_owned(),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let _ = writeln!(
            o,
            "  {index:>5}  {state:<11} {seq:>8}  {:>4}  {:>10}  {:<8} {:<16} {:<16} {:>20}  {}",
            field(&h["pool_id"]),
            field(&h["values_len_bytes"]),
            field(&t["dtype"]),
            list(&t["dims"]),
            list(&t["strides"]),
            field(&h["timestamp_ns"]),
            slot.verdict()
        );
    }
    if ring.truncated() {
        let _ = writeln!(o, "  ... more committed slots (use --slots or --max-slots)");
    }
}
