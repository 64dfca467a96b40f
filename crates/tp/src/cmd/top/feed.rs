//! What feeds the model: one subscription per shared stream, and the counters file.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use tensorpool_aeron::{AeronClient, CountersReader, Subscription};
use tensorpool_codec::AnyMessage;

use super::model::{CounterRow, Model};
use crate::cmd::CmdError;
use crate::cmd::endpoints::{Endpoint, Endpoints};
use crate::cmd::stat;

/// Most fragments read per subscription per poll.
const FRAGMENT_LIMIT: usize = 256;

/// The subscriptions and the counters reader of `tp top`.
pub struct Feed {
    subscriptions: Vec<(String, Subscription)>,
    counters: CountersReader,
    previous: HashMap<(i32, i32, String), (i64, Instant)>,
    _client: AeronClient,
}

impl std::fmt::Debug for Feed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feed")
            .field("streams", &self.describe())
            .finish()
    }
}

impl Feed {
    /// Connects and subscribes to every shared stream (one subscription per distinct
    /// channel and stream id).
    pub fn open(dir: &Path, e: &Endpoints, timeout: Duration) -> Result<Self, CmdError> {
        let client = AeronClient::connect(dir, timeout)?;
        let mut seen: Vec<&Endpoint> = Vec::new();
        let mut subscriptions = Vec::new();
        for (label, endpoint) in e.all() {
            if seen.contains(&endpoint) {
                continue;
            }
            seen.push(endpoint);
            // untethered: the dashboard must never hold back a publication it watches
            let channel = tensorpool::streams::untethered_subscription_channel(&endpoint.channel);
            let sub = client.add_subscription(&channel, endpoint.stream_id, timeout)?;
            subscriptions.push((format!("{label}:{}", endpoint.stream_id), sub));
        }
        Ok(Self {
            subscriptions,
            counters: client.counters_reader(),
            previous: HashMap::new(),
            _client: client,
        })
    }

    /// `control:1000 announce:1001 ...`
    pub fn describe(&self) -> String {
        let labels: Vec<&str> = self.subscriptions.iter().map(|(l, _)| l.as_str()).collect();
        labels.join(" ")
    }

    /// Polls every subscription once; returns the messages read.
    pub fn poll(&mut self, model: &mut Model, now_ns: u64) -> Result<usize, CmdError> {
        let mut read = 0;
        for (_, sub) in &mut self.subscriptions {
            read += sub.poll(
                |msg, info| {
                    match AnyMessage::decode_any_version(msg) {
                        Ok(m) => model.on_message(&m, now_ns),
                        Err(_) => model.on_malformed(),
                    }
                    model.supervisor.on_message(msg, info.session_id, now_ns);
                },
                FRAGMENT_LIMIT,
            )?;
        }
        Ok(read)
    }

    /// Reads the tensorpool counters (with their rates since the previous read).
    pub fn read_counters(&mut self, model: &mut Model) {
        let mut rows: Vec<stat::Row> = stat::read_counters(&self.counters, None)
            .into_iter()
            .filter(stat::Row::is_tensorpool)
            .collect();
        stat::apply_rates(&mut rows, &mut self.previous, Instant::now());
        model.counters = rows.iter().map(stat::Row::to_counter_row).collect();
        model.held = stat::held_publications(&self.counters)
            .iter()
            .map(stat::held_line)
            .collect();
    }
}

impl stat::Row {
    fn to_counter_row(&self) -> CounterRow {
        let (id, type_name, label, value, rate) = self.parts();
        CounterRow {
            id,
            type_name: type_name.to_owned(),
            label: label.to_owned(),
            value,
            rate,
            key: self.key().copied(),
        }
    }
}
