//! Drawing `tp top` with ratatui: the stream table, or one stream's details.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style, Stylize};
use ratatui::text::Line;
use ratatui::widgets::{Block, Paragraph, Row, Table, TableState};

use super::model::{CounterRow, Model, SortKey, Stream, StreamRow};

/// What the user is looking at.
#[derive(Debug, Clone, Default)]
pub struct View {
    /// Sort column of the stream table.
    pub sort: SortKey,
    /// Selected row of the stream table.
    pub selected: usize,
    /// The stream drilled into, if any.
    pub detail: Option<u32>,
}

/// Fixed facts shown in the title line.
#[derive(Debug, Clone)]
pub struct Header {
    /// Aeron directory.
    pub aeron_dir: String,
    /// The subscriptions (`control:1000 ...`).
    pub streams: String,
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}

fn rate(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |r| format!("{r:.1}"))
}

fn age_ms(ms: Option<u64>) -> String {
    ms.map_or_else(|| "-".into(), |ms| format!("{:.1}s", ms as f64 / 1000.0))
}

fn since(now_ns: u64, then_ns: u64) -> String {
    age_ms(Some(now_ns.saturating_sub(then_ns) / 1_000_000))
}

/// Draws the whole screen.
pub fn draw(f: &mut Frame<'_>, model: &Model, view: &View, header: &Header, now_ns: u64) {
    let held = model.held.len().min(3) as u16;
    let [title, held_area, body, help] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(held),
        Constraint::Min(4),
        Constraint::Length(1),
    ])
    .areas(f.area());
    if held > 0 {
        // a stalled stream names its holder (the slowest subscriber position counter)
        let lines: Vec<ratatui::text::Line<'_>> = model
            .held
            .iter()
            .take(3)
            .map(|l| ratatui::text::Line::from(format!("HELD {l}")))
            .collect();
        f.render_widget(Paragraph::new(lines).reversed(), held_area);
    }
    let line = format!(
        "tp top  sort: {}  messages {}  malformed {}  aeron {}  [{}]",
        view.sort.title(),
        model.messages,
        model.malformed,
        header.aeron_dir,
        header.streams,
    );
    f.render_widget(Paragraph::new(line).bold(), title);
    let keys = match view.detail {
        None => "q quit  s sort  Up/Down select  Enter details",
        Some(_) => "q quit  Esc back",
    };
    f.render_widget(Paragraph::new(keys).reversed(), help);
    match view.detail.and_then(|id| model.stream(id)) {
        Some(stream) => draw_detail(f, body, model, stream, now_ns),
        None => draw_streams(f, body, model, view, now_ns),
    }
}

fn draw_streams(f: &mut Frame<'_>, area: Rect, model: &Model, view: &View, now_ns: u64) {
    let counter_rows = model.counters.len().clamp(1, 8) as u16 + 3;
    let supervisor = model
        .supervisor_running(now_ns)
        .then(|| model.supervisor_json(now_ns));
    let supervisor_rows = supervisor.as_ref().map_or(0, |j| {
        let n: usize = j["streams"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| s["consumers"].as_array().map_or(0, Vec::len))
            .sum();
        n.clamp(1, 8) as u16 + 3
    });
    let [streams, supervisor_area, counters] = Layout::vertical([
        Constraint::Min(3),
        Constraint::Length(supervisor_rows),
        Constraint::Length(counter_rows),
    ])
    .areas(area);
    let rows = model.rows(view.sort, now_ns);
    let header = Row::new([
        "STREAM", "NAME", "EPOCH", "PRODUCER", "FPS", "DESC/S", "CONS", "MAX_LAG", "DROPS",
        "ANN_AGE", "STATE",
    ])
    .bold();
    let body: Vec<Row<'_>> = rows.iter().map(stream_row).collect();
    let widths = [
        Constraint::Length(8),
        Constraint::Length(16),
        Constraint::Length(20),
        Constraint::Length(9),
        Constraint::Length(9),
        Constraint::Length(9),
        Constraint::Length(5),
        Constraint::Length(8),
        Constraint::Length(8),
        Constraint::Length(8),
        Constraint::Length(6),
    ];
    let title = format!(" streams ({}) ", rows.len());
    let table = Table::new(body, widths)
        .header(header)
        .block(Block::bordered().title(title))
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED));
    let mut state = TableState::default();
    if !rows.is_empty() {
        state.select(Some(view.selected.min(rows.len() - 1)));
    }
    f.render_stateful_widget(table, streams, &mut state);
    if let Some(j) = &supervisor {
        draw_supervisor(
            f,
            supervisor_area,
            j,
            model.supervisor.config_seen_ns(),
            now_ns,
        );
    }
    draw_counters(f, counters, &model.counters, " tensorpool counters ");
}

/// Text of a JSON value for a cell: strings unquoted, null as `-`.
fn cell_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "-".into(),
        serde_json::Value::String(s) if s.is_empty() => "-".into(),
        serde_json::Value::String(s) => s.clone(),
        v => v.to_string(),
    }
}

/// The SUPERVISOR section: per stream and consumer, the mode it asked for and the one the
/// supervisor gave, `use_shm`, its per-consumer streams, lag, drops, and whether it is stale.
fn draw_supervisor(
    f: &mut Frame<'_>,
    area: Rect,
    j: &serde_json::Value,
    config_seen_ns: Option<u64>,
    now_ns: u64,
) {
    let sessions = j["config_sessions"].as_array().map_or(0, Vec::len);
    let title = match config_seen_ns {
        Some(t) => format!(
            " SUPERVISOR (ConsumerConfig from {sessions} session(s), last {} ago) ",
            since(now_ns, t)
        ),
        None => " SUPERVISOR (running; no ConsumerConfig heard yet) ".to_owned(),
    };
    let rows: Vec<Row<'_>> = j["streams"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| {
            let stream = s["stream_id"].clone();
            s["consumers"]
                .as_array()
                .into_iter()
                .flatten()
                .map(move |c| {
                    let drops = c["drops_gap"].as_u64().unwrap_or(0)
                        + c["drops_late"].as_u64().unwrap_or(0);
                    let assigned = |channel: &str, id: &str| match c[id].as_u64() {
                        Some(0) | None => "-".to_owned(),
                        Some(n) => format!("{}#{n}", cell_text(&c[channel])),
                    };
                    let row = Row::new([
                        format!("{stream}/{}", c["consumer_id"]),
                        cell_text(&c["requested_mode"]),
                        cell_text(&c["mode"]),
                        cell_text(&c["use_shm"]),
                        assigned("descriptor_channel", "descriptor_stream_id"),
                        assigned("control_channel", "control_stream_id"),
                        cell_text(&c["lag"]),
                        drops.to_string(),
                        cell_text(&c["payload_fallback_uri"]),
                        if c["stale"] == true { "stale" } else { "live" }.to_owned(),
                    ]);
                    if c["stale"] == true { row.dim() } else { row }
                })
        })
        .collect();
    let widths = [
        Constraint::Length(16),
        Constraint::Length(13),
        Constraint::Length(13),
        Constraint::Length(8),
        Constraint::Length(24),
        Constraint::Length(24),
        Constraint::Length(8),
        Constraint::Length(8),
        Constraint::Length(16),
        Constraint::Length(6),
    ];
    let table = Table::new(rows, widths)
        .header(
            Row::new([
                "STREAM/CONS",
                "ASKED",
                "SUP_MODE",
                "USE_SHM",
                "DESCRIPTOR",
                "CONTROL",
                "SUP_LAG",
                "SUP_DROP",
                "FALLBACK",
                "STATE",
            ])
            .bold(),
        )
        .block(Block::bordered().title(title));
    f.render_widget(table, area);
}

fn stream_row(r: &StreamRow) -> Row<'static> {
    let row = Row::new([
        r.stream_id.to_string(),
        r.name.clone(),
        opt(r.epoch),
        opt(r.producer_id),
        rate(r.fps),
        rate(r.descriptor_fps),
        r.consumers.to_string(),
        opt(r.max_lag),
        r.drops.to_string(),
        age_ms(r.announce_age_ms),
        if r.stale { "stale" } else { "live" }.to_owned(),
    ]);
    if r.stale { row.dim() } else { row }
}

fn draw_counters(f: &mut Frame<'_>, area: Rect, counters: &[CounterRow], title: &str) {
    if counters.is_empty() {
        let text = "none in the counters file yet (the roles publish them once they run)";
        f.render_widget(
            Paragraph::new(text).block(Block::bordered().title(title.to_owned())),
            area,
        );
        return;
    }
    let rows: Vec<Row<'_>> = counters
        .iter()
        .map(|c| {
            Row::new([
                c.id.to_string(),
                c.type_name.clone(),
                c.value.to_string(),
                rate(c.rate),
                c.label.clone(),
            ])
        })
        .collect();
    let widths = [
        Constraint::Length(6),
        Constraint::Length(16),
        Constraint::Length(16),
        Constraint::Length(10),
        Constraint::Min(10),
    ];
    let table = Table::new(rows, widths)
        .header(Row::new(["ID", "TYPE", "VALUE", "RATE/S", "LABEL"]).bold())
        .block(Block::bordered().title(title.to_owned()));
    f.render_widget(table, area);
}

fn draw_detail(f: &mut Frame<'_>, area: Rect, model: &Model, s: &Stream, now_ns: u64) {
    let pools = s.announce.as_ref().map_or(0, |a| a.pools.len()) as u16;
    let [summary, pools_area, consumers, bottom] = Layout::vertical([
        Constraint::Length(7),
        Constraint::Length(pools.clamp(1, 6) + 3),
        Constraint::Min(4),
        Constraint::Length(8),
    ])
    .areas(area);
    draw_summary(f, summary, s, now_ns);
    draw_pools(f, pools_area, s);
    draw_consumers(f, consumers, model, s, now_ns);
    let [epochs, counters] =
        Layout::horizontal([Constraint::Length(44), Constraint::Min(20)]).areas(bottom);
    let lines: Vec<Line<'_>> = s
        .epochs
        .iter()
        .rev()
        .map(|&(e, at)| Line::from(format!("{e:>20}  first seen {} ago", since(now_ns, at))))
        .collect();
    f.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" recent epochs ")),
        epochs,
    );
    let mine: Vec<CounterRow> = model.stream_counters(s.stream_id).cloned().collect();
    draw_counters(f, counters, &mine, " counters of this stream ");
}

fn draw_summary(f: &mut Frame<'_>, area: Rect, s: &Stream, now_ns: u64) {
    let mut lines = Vec::new();
    match &s.announce {
        Some(a) => {
            lines.push(Line::from(format!(
                "epoch {}  producer {}  layout {}  header {} x {} B  clock {}  announce age {}",
                a.epoch,
                a.producer_id,
                a.layout_version,
                a.header_nslots,
                a.header_slot_bytes,
                a.clock_domain,
                since(now_ns, a.seen_ns)
            )));
            lines.push(Line::from(format!("header ring {}", a.header_uri)));
        }
        None => lines.push(Line::from("no ShmPoolAnnounce heard yet")),
    }
    if let Some(p) = &s.producer {
        lines.push(Line::from(format!(
            "producer QoS: seq {}  fps {}  watermark {}  epoch {}  seen {} ago",
            p.current_seq,
            rate(p.rate.rate()),
            opt(p.watermark),
            p.epoch,
            since(now_ns, p.seen_ns)
        )));
    }
    lines.push(Line::from(format!(
        "descriptors {} ({}/s)  last seq {}",
        s.descriptors,
        rate(s.descriptor_rate.rate()),
        opt(s.last_descriptor_seq)
    )));
    if let Some(summary) = &s.summary {
        lines.push(Line::from(format!("summary {summary}")));
    }
    let name = s.name.as_deref().unwrap_or("");
    let title = format!(" stream {} {name} ", s.stream_id);
    f.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(title)),
        area,
    );
}

fn draw_pools(f: &mut Frame<'_>, area: Rect, s: &Stream) {
    let rows: Vec<Row<'_>> = s
        .announce
        .iter()
        .flat_map(|a| &a.pools)
        .map(|p| {
            Row::new([
                p.pool_id.to_string(),
                p.nslots.to_string(),
                p.stride_bytes.to_string(),
                p.uri.clone(),
            ])
        })
        .collect();
    let widths = [
        Constraint::Length(6),
        Constraint::Length(8),
        Constraint::Length(12),
        Constraint::Min(10),
    ];
    let table = Table::new(rows, widths)
        .header(Row::new(["POOL", "NSLOTS", "STRIDE", "URI"]).bold())
        .block(Block::bordered().title(" pools "));
    f.render_widget(table, area);
}

fn micros(ns: Option<i64>) -> String {
    ns.filter(|&n| n > 0)
        .map_or_else(|| "-".into(), |n| format!("{:.1}", n as f64 / 1000.0))
}

fn draw_consumers(f: &mut Frame<'_>, area: Rect, model: &Model, s: &Stream, now_ns: u64) {
    let rows: Vec<Row<'_>> = s
        .consumers
        .values()
        .map(|c| {
            let counted = model.consumer_counters(s.stream_id, c.consumer_id);
            let drops: Vec<String> = counted
                .drops
                .iter()
                .map(|(cause, n)| format!("{cause}:{n}"))
                .collect();
            Row::new([
                c.consumer_id.to_string(),
                c.mode.clone(),
                c.epoch.to_string(),
                c.last_seq_seen.to_string(),
                rate(c.rate.rate()),
                opt(s.lag(c)),
                c.drops_gap.to_string(),
                c.drops_late.to_string(),
                micros(counted.latency_p50_ns),
                micros(counted.latency_p99_ns),
                since(now_ns, c.seen_ns),
                drops.join(" "),
            ])
        })
        .collect();
    let widths = [
        Constraint::Length(10),
        Constraint::Length(12),
        Constraint::Length(20),
        Constraint::Length(10),
        Constraint::Length(9),
        Constraint::Length(7),
        Constraint::Length(9),
        Constraint::Length(10),
        Constraint::Length(9),
        Constraint::Length(9),
        Constraint::Length(7),
        Constraint::Min(10),
    ];
    let title = format!(" consumers ({}) ", s.consumers.len());
    let table = Table::new(rows, widths)
        .header(
            Row::new([
                "CONSUMER",
                "MODE",
                "EPOCH",
                "LAST_SEQ",
                "FPS",
                "LAG",
                "DROPS_GAP",
                "DROPS_LATE",
                "P50_US",
                "P99_US",
                "SEEN",
                "DROPS BY CAUSE (counters)",
            ])
            .bold(),
        )
        .block(Block::bordered().title(title));
    f.render_widget(table, area);
}
