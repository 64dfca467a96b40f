//! The discovery client (DS §4.3, §7): one request, one response, results checked.
//!
//! [`query`] subscribes to the client's response endpoint, sends a `DiscoveryRequest` with a
//! fresh request id, waits for the response carrying that id (responses with other ids are
//! dropped, DS §5.2) and returns the valid results: a result with an empty driver control
//! channel, a zero control stream id or a pool whose slot count differs from the ring's is
//! ignored (DS §5.2, §7). Results are advisory snapshots: attach through the driver they
//! name, never map from them (DS §7).

use std::time::{Duration, Instant};

use tensorpool_aeron::AeronClient;
use tensorpool_codec::discovery::{DiscoveryRequest, DiscoveryResponse, DiscoveryStatus};
use tensorpool_codec::{Bytes, Group, Message};

use super::PoolInfo;

/// What to look for; every filter is optional and they are AND-ed (DS §5.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    /// Only this stream.
    pub stream_id: Option<u32>,
    /// Only this producer.
    pub producer_id: Option<u32>,
    /// Only this data source id.
    pub data_source_id: Option<u64>,
    /// Only this data-source name (byte-exact; empty: any).
    pub name: String,
    /// Only streams carrying all these tags.
    pub tags: Vec<String>,
}

/// Where requests go and responses come back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientEndpoints {
    /// The provider's request channel.
    pub request_channel: String,
    /// The provider's request stream.
    pub request_stream_id: i32,
    /// This client's response channel (non-empty, DS §4.3).
    pub response_channel: String,
    /// This client's response stream (non-zero).
    pub response_stream_id: i32,
}

/// One stream found (owned).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Found {
    /// Stream id.
    pub stream_id: u32,
    /// Producer id.
    pub producer_id: u32,
    /// Epoch when indexed.
    pub epoch: u64,
    /// Layout version.
    pub layout_version: u32,
    /// Header ring slots.
    pub header_nslots: u32,
    /// Header ring URI (informational: attach through the driver).
    pub header_region_uri: String,
    /// Payload pools (informational).
    pub pools: Vec<(u16, u32, u32, String)>,
    /// Data-source id.
    pub data_source_id: Option<u64>,
    /// Data-source name.
    pub data_source_name: String,
    /// Tags.
    pub tags: Vec<String>,
    /// The driver to attach through.
    pub driver_instance_id: String,
    /// Its control channel.
    pub driver_control_channel: String,
    /// Its control stream.
    pub driver_control_stream_id: u32,
}

/// Why a query failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// Bad endpoints (empty response channel, zero response stream).
    #[error("{0}")]
    Endpoints(&'static str),
    /// Aeron failed.
    #[error("aeron: {0}")]
    Aeron(String),
    /// No provider answered in time.
    #[error("no discovery response within {0:?} (is a provider listening on the request stream?)")]
    Timeout(Duration),
    /// The provider answered ERROR.
    #[error("discovery provider error: {0}")]
    Provider(String),
    /// The provider answered NOT_FOUND.
    #[error("not found")]
    NotFound,
}

fn text(b: &Bytes<'_>) -> String {
    String::from_utf8_lossy(b.as_bytes()).into_owned()
}

/// Sends `q` and waits at most `timeout` for the answer.
pub fn query(
    client: &AeronClient,
    endpoints: &ClientEndpoints,
    q: &Query,
    timeout: Duration,
) -> Result<Vec<Found>, QueryError> {
    if endpoints.response_channel.trim().is_empty() {
        return Err(QueryError::Endpoints(
            "the response channel must not be empty (DS §4.3)",
        ));
    }
    let response_stream = u32::try_from(endpoints.response_stream_id)
        .ok()
        .filter(|&s| s != 0)
        .ok_or(QueryError::Endpoints(
            "the response stream id must be positive",
        ))?;
    let aeron = |e: &dyn std::fmt::Display| QueryError::Aeron(e.to_string());
    let deadline = Instant::now() + timeout;
    let mut responses = client
        .add_subscription(
            &endpoints.response_channel,
            endpoints.response_stream_id,
            timeout,
        )
        .map_err(|e| aeron(&e))?;
    let mut requests = client
        .add_publication(
            &endpoints.request_channel,
            endpoints.request_stream_id,
            timeout,
        )
        .map_err(|e| aeron(&e))?;
    // unique enough per request: std's per-process random hash keys, the pid and the time
    let request_id = {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        h.write_u64(tensorpool_agent::realtime_ns());
        h.finish()
    };
    let tags: Vec<Bytes<'_>> = q.tags.iter().map(|t| Bytes::new(t.as_bytes())).collect();
    let bytes = DiscoveryRequest {
        request_id,
        client_id: std::process::id(),
        response_stream_id: response_stream,
        stream_id: q.stream_id,
        producer_id: q.producer_id,
        data_source_id: q.data_source_id,
        tags: Group::Slice(&tags),
        response_channel: Bytes::new(endpoints.response_channel.as_bytes()),
        data_source_name: Bytes::new(q.name.as_bytes()),
    }
    .encode_to_vec()
    .map_err(|e| aeron(&e))?;
    let mut sent = false;
    let mut answer: Option<Result<Vec<Found>, QueryError>> = None;
    let mut round = 0u32;
    while answer.is_none() {
        if Instant::now() >= deadline {
            return Err(QueryError::Timeout(timeout));
        }
        if !sent {
            match requests.offer(&bytes) {
                Ok(_) => sent = true,
                Err(e) if e.is_retryable() => {}
                Err(e) => return Err(aeron(&e)),
            }
        }
        let n = responses
            .poll(
                |msg, _| {
                    let Ok(resp) = DiscoveryResponse::decode(msg) else {
                        return;
                    };
                    if resp.request_id != request_id || answer.is_some() {
                        return; // DS §5.2: unknown request ids are dropped
                    }
                    answer = Some(match resp.status {
                        DiscoveryStatus::Ok => Ok(resp
                            .results
                            .iter()
                            .filter_map(|r| {
                                let pools: Vec<PoolInfo> = r
                                    .payload_pools
                                    .iter()
                                    .map(|p| PoolInfo {
                                        pool_id: p.pool_id,
                                        pool_nslots: p.pool_nslots,
                                        stride_bytes: p.stride_bytes,
                                        region_uri: text(&p.region_uri),
                                    })
                                    .collect();
                                let valid = !r.driver_control_channel.as_bytes().is_empty()
                                    && r.driver_control_stream_id != 0
                                    && pools.iter().all(|p| p.pool_nslots == r.header_nslots);
                                valid.then(|| Found {
                                    stream_id: r.stream_id,
                                    producer_id: r.producer_id,
                                    epoch: r.epoch,
                                    layout_version: r.layout_version,
                                    header_nslots: r.header_nslots,
                                    header_region_uri: text(&r.header_region_uri),
                                    pools: pools
                                        .into_iter()
                                        .map(|p| {
                                            (p.pool_id, p.pool_nslots, p.stride_bytes, p.region_uri)
                                        })
                                        .collect(),
                                    data_source_id: r.data_source_id,
                                    data_source_name: text(&r.data_source_name),
                                    tags: r.tags.iter().map(|t| text(&t)).collect(),
                                    driver_instance_id: text(&r.driver_instance_id),
                                    driver_control_channel: text(&r.driver_control_channel),
                                    driver_control_stream_id: r.driver_control_stream_id,
                                })
                            })
                            .collect()),
                        DiscoveryStatus::NotFound => Err(QueryError::NotFound),
                        DiscoveryStatus::Error => {
                            Err(QueryError::Provider(text(&resp.error_message)))
                        }
                    });
                },
                16,
            )
            .map_err(|e| aeron(&e))?;
        if n == 0 {
            round = (round + 1).min(6);
            std::thread::sleep(Duration::from_micros(50u64 << round));
        } else {
            round = 0;
        }
    }
    answer.unwrap_or(Err(QueryError::Timeout(timeout)))
}
