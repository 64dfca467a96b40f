//! `tp exporter`: the counters of `tp stat` as Prometheus metrics over HTTP.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use tensorpool_aeron::{AeronClient, CountersReader};

use super::CmdError;
use super::endpoints::Endpoints;
use super::stat::{Row, read_counters};
use super::util;

/// One-line description (`tp exporter -h`).
pub const ABOUT: &str = "Serve every role's counters as Prometheus metrics (/metrics)";

/// What `tp exporter --help` says.
pub const LONG_ABOUT: &str = "Serve every role's counters as Prometheus metrics (/metrics).

Connects to the media driver as a client and answers GET /metrics with the counters of
every tensorpool role on the host (the counters of `tp stat`), read fresh at each scrape,
in the OpenMetrics text format: one family per counter kind, tensorpool_<role>_<counter>
(running totals as counters, levels as gauges), labelled stream_id, role, client_id, pid,
and cause for the per-cause counters. The media driver's system counters are exported as
the gauge aeron_system_counter{id, name}; its other counters (positions, limits) are not.
SIGINT or SIGTERM stops it.";

/// Examples, shown after the flags.
pub const EXAMPLES: &str = "Examples:
  tp exporter --listen 127.0.0.1:9464
  tp exporter --listen 0.0.0.0:9464 --config /etc/tensorpool/driver.toml
  curl -s http://127.0.0.1:9464/metrics";

/// Flags of `tp exporter`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to serve /metrics on (port 0: a free port, printed at start).
    #[arg(long, default_value = "127.0.0.1:9464", value_name = "ADDR")]
    listen: String,
    /// Aeron directory [default: driver.aeron_dir of --config, AERON_DIR, /dev/shm/aeron-<user>].
    #[arg(long, value_name = "DIR")]
    aeron_dir: Option<PathBuf>,
    /// Driver TOML to read driver.aeron_dir from.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// How long to wait for the media driver.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    timeout: u64,
    /// Print every metric name a scrape can hold, one a line, and exit.
    #[arg(long)]
    list_metrics: bool,
}

/// The content type of the OpenMetrics text exposition.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Aeron's system counters' type id (AERON_SYSTEM_COUNTER_TYPE_ID).
const SYSTEM_COUNTER: i32 = 0;

/// The metric family name of a tensorpool counter kind: `tensorpool_<role>_<name>`, spaces
/// and dashes as underscores (a counter's `_total` suffix is added by the encoding).
pub fn family_name(kind: &tensorpool::counters::Kind) -> String {
    let name: String = kind
        .name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("tensorpool_{}_{}", kind.role.name(), name)
}

/// Every metric name a scrape can hold (a counter's with its `_total`), for the dashboard
/// check and the docs.
pub fn metric_names() -> Vec<String> {
    let mut names: Vec<String> = tensorpool::COUNTER_KINDS
        .iter()
        .flat_map(|t| t.iter())
        .map(|k| {
            let f = family_name(k);
            if k.gauge { f } else { format!("{f}_total") }
        })
        .collect();
    names.push("aeron_system_counter".to_owned());
    names
}

/// One metric family: help, whether a gauge, and its samples (labels, value).
#[derive(Debug, Default)]
struct Family {
    help: String,
    gauge: bool,
    samples: Vec<(Vec<(&'static str, String)>, i64)>,
}

/// Groups one read of the counters into metric families, by name.
fn families(rows: &[Row]) -> BTreeMap<String, Family> {
    let mut out: BTreeMap<String, Family> = BTreeMap::new();
    for row in rows {
        let (id, _, label, value, _) = row.parts();
        if let (Some(key), Some(kind)) = (row.key(), tensorpool::counters::kind(row.type_id())) {
            let f = out.entry(family_name(kind)).or_default();
            f.help = kind.doc.to_owned();
            f.gauge = kind.gauge;
            let mut labels = vec![
                ("stream_id", key.stream_id.to_string()),
                ("role", key.role.to_owned()),
                ("client_id", key.client_id.to_string()),
                ("pid", key.pid.to_string()),
            ];
            if kind.details.is_some() {
                let cause = key
                    .cause
                    .map_or_else(|| key.detail.to_string(), str::to_owned);
                labels.push(("cause", cause));
            }
            f.samples.push((labels, value));
        } else if row.type_id() == SYSTEM_COUNTER {
            let f = out.entry("aeron_system_counter".to_owned()).or_default();
            f.help = "the Aeron media driver's system counters".to_owned();
            f.gauge = true;
            f.samples.push((
                vec![("id", id.to_string()), ("name", label.to_owned())],
                value,
            ));
        }
    }
    out
}

/// The families of one scrape, encoded by prometheus-client.
#[derive(Debug)]
struct Scrape(BTreeMap<String, Family>);

impl prometheus_client::collector::Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for (name, f) in &self.0 {
            let kind = if f.gauge {
                MetricType::Gauge
            } else {
                MetricType::Counter
            };
            let mut family = encoder.encode_descriptor(name, &f.help, None, kind)?;
            for (labels, value) in &f.samples {
                let m = family.encode_family(labels)?;
                if f.gauge {
                    ConstGauge::new(*value).encode(m)?;
                } else {
                    // running totals never go below zero
                    ConstCounter::new(u64::try_from(*value).unwrap_or(0)).encode(m)?;
                }
            }
        }
        Ok(())
    }
}

/// The OpenMetrics text of the counters as they are now.
pub fn render(reader: &CountersReader) -> Result<String, CmdError> {
    let rows = read_counters(reader, None);
    let mut registry = prometheus_client::registry::Registry::default();
    registry.register_collector(Box::new(Scrape(families(&rows))));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)?;
    Ok(text)
}

/// Runs `tp exporter` until SIGINT or SIGTERM.
pub fn run(args: &Args) -> Result<(), CmdError> {
    if args.list_metrics {
        for name in metric_names() {
            println!("{name}");
        }
        return Ok(());
    }
    let endpoints = Endpoints::load(args.config.as_deref())?;
    let dir = util::aeron_dir(args.aeron_dir.as_ref().or(endpoints.aeron_dir.as_ref()));
    let addr: std::net::SocketAddr = args
        .listen
        .parse()
        .map_err(|e| format!("--listen {}: {e} (expected HOST:PORT)", args.listen))?;
    let client = AeronClient::connect(&dir, Duration::from_secs(args.timeout))?;
    let reader = client.counters_reader();
    let server =
        tiny_http::Server::http(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let stop = util::stop_flag()?;
    let local = server
        .server_addr()
        .to_ip()
        .map_or_else(|| addr.to_string(), |a| a.to_string());
    println!(
        "serving http://{local}/metrics (counters of {})",
        dir.display()
    );
    let header = tiny_http::Header::from_bytes("Content-Type", CONTENT_TYPE)
        .map_err(|()| "bad content type header")?;
    while !stop.load(Ordering::Relaxed) {
        let Some(request) = server.recv_timeout(Duration::from_millis(200))? else {
            continue;
        };
        let path = request.url().split('?').next().unwrap_or_default();
        let response = match (request.method(), path) {
            (tiny_http::Method::Get, "/metrics") => match render(&reader) {
                Ok(text) => tiny_http::Response::from_string(text).with_header(header.clone()),
                Err(e) => tiny_http::Response::from_string(format!("{e}\n")).with_status_code(500),
            },
            (tiny_http::Method::Get, "/") => {
                tiny_http::Response::from_string("tensorpool exporter: see /metrics\n")
            }
            (tiny_http::Method::Get, _) => {
                tiny_http::Response::from_string("not found\n").with_status_code(404)
            }
            _ => tiny_http::Response::from_string("method not allowed\n").with_status_code(405),
        };
        // a client gone before the answer is its business, not the exporter's
        let _ = request.respond(response);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn family_names() {
        let names = metric_names();
        for n in [
            "tensorpool_producer_frames_total",
            "tensorpool_consumer_frames_total",
            "tensorpool_consumer_drops_total",
            "tensorpool_consumer_latency_p99_ns",
            "tensorpool_driver_leases_active",
            "tensorpool_producer_epoch",
        ] {
            assert!(names.iter().any(|x| x == n), "{n} missing from {names:?}");
        }
        for n in &names {
            assert!(
                n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "{n}"
            );
        }
    }
}
