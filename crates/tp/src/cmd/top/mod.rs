//! `tp top`: a live full-screen view of every stream on the host, built from what is on the
//! wire. `model` folds messages into per-stream state (tested on its own), `feed` brings
//! them in, `ui` draws; this file runs the loop and the keys.

mod feed;
mod model;
mod ui;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};

use super::CmdError;
use super::endpoints::Endpoints;
use super::util;
use model::Model;
use ui::{Header, View};

/// One-line description (`tp top -h`).
pub const ABOUT: &str = "Live view of every stream on the host (full screen)";

/// What `tp top --help` says.
pub const LONG_ABOUT: &str = "Live view of every stream on the host (full screen).

Subscribes to the control, announce, descriptor, QoS and metadata streams and shows, per
stream: epoch, producer, frames per second (QosProducer), descriptors per second,
consumers with their lag (producer seq - consumer seq) and drops (QosConsumer), the data
source name (DataSourceAnnounce), the announce age; and the tensorpool counters of the
media driver. When a supervisor runs, a SUPERVISOR section lists each consumer's asked and
assigned mode, use_shm, per-consumer streams, lag, drops and staleness (as `tp supervisor
status`). Rates are taken over the last --window-secs.

Keys: q quit, s cycle the sort column, Up/Down select, Enter details of the selected
stream (pools, consumers, recent epochs, its counters), Esc back.";

/// Examples, shown after the flags.
pub const EXAMPLES: &str = "Examples:
  tp top
  tp top --aeron-dir /dev/shm/aeron-camera --config /etc/tensorpool/driver.toml";

/// Flags of `tp top`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Aeron directory [default: driver.aeron_dir of --config, AERON_DIR, /dev/shm/aeron-<user>].
    #[arg(long, value_name = "DIR")]
    aeron_dir: Option<PathBuf>,
    /// Driver TOML to read the channels and stream ids from.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Rates are measured over this many seconds.
    #[arg(long, default_value_t = 5, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    window_secs: u64,
    /// A stream silent for this many seconds is shown as stale.
    #[arg(long, default_value_t = 10, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..))]
    stale_secs: u64,
    /// Screen refreshes per second.
    #[arg(long, default_value_t = 4, value_name = "HZ",
          value_parser = clap::value_parser!(u64).range(1..=60))]
    refresh_hz: u64,
    /// How long to wait for the media driver.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    timeout: u64,
}

/// Runs `tp top` until `q`.
pub fn run(args: &Args) -> Result<(), CmdError> {
    let endpoints = Endpoints::load(args.config.as_deref())?;
    let dir = util::aeron_dir(args.aeron_dir.as_ref().or(endpoints.aeron_dir.as_ref()));
    // Connect before taking over the terminal, so that errors print as one plain line.
    let mut feed = feed::Feed::open(&dir, &endpoints, Duration::from_secs(args.timeout))?;
    let header = Header {
        aeron_dir: dir.display().to_string(),
        streams: feed.describe(),
    };
    // SIGINT / SIGTERM end the loop like `q`, so the terminal is always restored (raw mode
    // off, main screen back); the default action would leave it unusable.
    let stop = util::stop_flag()?;
    let mut terminal = ratatui::try_init().map_err(|e| format!("tp top needs a terminal: {e}"))?;
    let result = run_loop(&mut terminal, &mut feed, &header, args, &stop);
    ratatui::restore();
    result
}

fn run_loop(
    terminal: &mut ratatui::DefaultTerminal,
    feed: &mut feed::Feed,
    header: &Header,
    args: &Args,
    stop: &std::sync::atomic::AtomicBool,
) -> Result<(), CmdError> {
    let sec = 1_000_000_000;
    let mut model = Model::new(args.window_secs * sec, args.stale_secs * sec);
    let mut view = View::default();
    let frame_every = Duration::from_millis(1000 / args.refresh_hz);
    let mut next_frame = Instant::now();
    let mut next_counters = Instant::now();
    loop {
        if stop.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(());
        }
        let now_ns = tensorpool_agent::monotonic_ns();
        let work = feed.poll(&mut model, now_ns)?;
        let now = Instant::now();
        if now >= next_counters {
            feed.read_counters(&mut model);
            next_counters = now + Duration::from_secs(1);
        }
        if now >= next_frame {
            terminal.draw(|f| ui::draw(f, &model, &view, header, now_ns))?;
            next_frame = now + frame_every;
        }
        let wait = if work > 0 {
            Duration::ZERO
        } else {
            next_frame
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(20))
        };
        if event::poll(wait)? {
            let Event::Key(key) = event::read()? else {
                continue;
            };
            if key.kind != KeyEventKind::Press {
                continue;
            }
            let rows = model.rows(view.sort, now_ns);
            if !on_key(&mut view, key.code, key.modifiers, &rows) {
                return Ok(());
            }
            next_frame = Instant::now();
        }
    }
}

/// Applies one key; false means quit.
fn on_key(
    view: &mut View,
    code: KeyCode,
    modifiers: KeyModifiers,
    rows: &[model::StreamRow],
) -> bool {
    match code {
        KeyCode::Char('q') | KeyCode::Char('Q') => return false,
        KeyCode::Char('c') if modifiers.contains(KeyModifiers::CONTROL) => return false,
        KeyCode::Char('s') => view.sort = view.sort.next(),
        KeyCode::Up | KeyCode::Char('k') => view.selected = view.selected.saturating_sub(1),
        KeyCode::Down | KeyCode::Char('j') => {
            view.selected = (view.selected + 1).min(rows.len().saturating_sub(1));
        }
        KeyCode::Enter if view.detail.is_none() => {
            view.detail = rows.get(view.selected).map(|r| r.stream_id);
        }
        KeyCode::Esc | KeyCode::Backspace => view.detail = None,
        _ => {}
    }
    true
}
