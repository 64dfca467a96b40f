//! The discovery registry (Discovery spec §5-§7): soft state built from announces, answered
//! to requests. Transport-free: the provider's agent feeds it what its subscriptions read and
//! publishes the answers where they say.
//!
//! Decisions where the spec leaves room (docs/discovery.md):
//! - Tags and the data-source id come from `DataSourceMeta` attributes: every attribute
//!   named `tag` is one tag (its value, UTF-8), an attribute `data_source_id` (decimal text)
//!   sets the id. The name is `DataSourceAnnounce.name`.
//! - Zero matches answer `OK` with no results (as the C provider does); more than
//!   `max_results` answer `ERROR` "result limit exceeded". There is no ACL, so `NOT_FOUND`
//!   is never sent.

use tensorpool_codec::discovery::{
    DiscoveryRequest, DiscoveryResponse, DiscoveryResult, DiscoveryStatus,
};
use tensorpool_codec::wire::{DataSourceAnnounce, DataSourceMeta, PayloadPool, ShmPoolAnnounce};
use tensorpool_codec::{Bytes, Group};

/// Bytes per header slot of layout v1 (results carry it, DS §5.2).
pub const HEADER_SLOT_BYTES: u16 = 256;
/// `max_dims` of layout v1.
pub const MAX_DIMS: u8 = 8;
/// Longest `error_message` sent (DS §5.2: SHOULD ≤ 1024 bytes).
pub const ERROR_MESSAGE_MAX: usize = 1024;

/// The driver that streams are attached through (DS §5.2 authority fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authority {
    /// `driver_instance_id`.
    pub instance_id: String,
    /// `driver_control_channel` (non-empty).
    pub control_channel: String,
    /// `driver_control_stream_id` (non-zero).
    pub control_stream_id: u32,
}

/// One payload pool of an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolInfo {
    /// Pool id.
    pub pool_id: u16,
    /// Slots (equal to the header ring's).
    pub pool_nslots: u32,
    /// Bytes per slot.
    pub stride_bytes: u32,
    /// Region URI.
    pub region_uri: String,
}

/// One indexed stream, keyed by (authority, stream id) (DS §6.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEntry {
    /// Index of its authority in [`DiscoveryRegistry::authorities`].
    pub authority: usize,
    /// Stream id.
    pub stream_id: u32,
    /// Producer id.
    pub producer_id: u32,
    /// Epoch of the last announce.
    pub epoch: u64,
    /// Layout version.
    pub layout_version: u32,
    /// Header ring slots.
    pub header_nslots: u32,
    /// Header ring URI.
    pub header_region_uri: String,
    /// Payload pools.
    pub pools: Vec<PoolInfo>,
    /// Data-source id (`DataSourceMeta` attribute `data_source_id`).
    pub data_source_id: Option<u64>,
    /// Data-source name (`DataSourceAnnounce.name`), byte for byte.
    pub data_source_name: Vec<u8>,
    /// Tags (`DataSourceMeta` attributes `tag`), original case.
    pub tags: Vec<Vec<u8>>,
    /// Local time of the last `ShmPoolAnnounce`.
    pub last_announce_ns: u64,
}

/// What an announce did to the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnnounceOutcome {
    /// A new entry.
    Added,
    /// The same epoch again (refreshed).
    Refreshed,
    /// A newer epoch replaced the entry (DS §6.3).
    EpochReplaced,
    /// An older epoch than the entry's: dropped (DS §6.3).
    EpochRegressed,
    /// Not indexable: a header slot size other than 256, a pool whose slot count differs
    /// from the ring's, or an empty URI.
    Invalid,
}

/// The answer to a request.
#[derive(Debug)]
pub enum Answer<'a> {
    /// No response at all: an empty response channel (DS §5.1 MUST drop silently).
    Drop,
    /// Send `response` to (`channel`, `stream_id`).
    Respond {
        /// The client's response channel.
        channel: &'a [u8],
        /// The client's response stream (0 only with an `ERROR` response).
        stream_id: u32,
        /// The response.
        response: DiscoveryResponse<'a>,
    },
}

/// Counters of a registry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RegistryCounters {
    /// Announces indexed (added, refreshed or replaced).
    pub announces: u64,
    /// Announces dropped: regressed epoch or not indexable.
    pub announces_dropped: u64,
    /// Entries expired (DS §6.2).
    pub expired: u64,
    /// Requests answered.
    pub requests: u64,
    /// Requests dropped silently (empty response channel).
    pub requests_dropped: u64,
    /// Requests answered with `ERROR`.
    pub errors: u64,
}

/// The registry: authorities, entries, limits.
#[derive(Debug)]
pub struct DiscoveryRegistry {
    authorities: Vec<Authority>,
    entries: Vec<StreamEntry>,
    expiry_ns: u64,
    max_results: usize,
    counters: RegistryCounters,
}

fn text(b: &Bytes<'_>) -> String {
    String::from_utf8_lossy(b.as_bytes()).into_owned()
}

impl DiscoveryRegistry {
    /// An empty registry: entries live `expiry_ns` after their last announce; at most
    /// `max_results` results per answer.
    pub fn new(expiry_ns: u64, max_results: usize) -> Self {
        Self {
            authorities: Vec::new(),
            entries: Vec::new(),
            expiry_ns,
            max_results: max_results.max(1),
            counters: RegistryCounters::default(),
        }
    }

    /// Adds (or finds) an authority; returns its index for the `on_*` calls.
    pub fn authority(&mut self, authority: Authority) -> usize {
        if let Some(i) = self.authorities.iter().position(|a| *a == authority) {
            return i;
        }
        self.authorities.push(authority);
        self.authorities.len() - 1
    }

    /// The authorities.
    pub fn authorities(&self) -> &[Authority] {
        &self.authorities
    }

    /// The live entries (expired ones are gone after [`Self::expire`]).
    pub fn entries(&self) -> &[StreamEntry] {
        &self.entries
    }

    /// The counters.
    pub fn counters(&self) -> RegistryCounters {
        self.counters
    }

    fn find(&mut self, authority: usize, stream_id: u32) -> Option<&mut StreamEntry> {
        self.entries
            .iter_mut()
            .find(|e| e.authority == authority && e.stream_id == stream_id)
    }

    /// A `ShmPoolAnnounce` of a stream served by `authority` (DS §6.4: layout and epoch).
    pub fn on_pool_announce(
        &mut self,
        authority: usize,
        ann: &ShmPoolAnnounce<'_>,
        now_ns: u64,
    ) -> AnnounceOutcome {
        let pools: Vec<PoolInfo> = ann
            .payload_pools
            .iter()
            .map(|p| PoolInfo {
                pool_id: p.pool_id,
                pool_nslots: p.pool_nslots,
                stride_bytes: p.stride_bytes,
                region_uri: text(&p.region_uri),
            })
            .collect();
        let valid = ann.header_slot_bytes == HEADER_SLOT_BYTES
            && !ann.header_region_uri.as_bytes().is_empty()
            && !pools.is_empty()
            && pools
                .iter()
                .all(|p| p.pool_nslots == ann.header_nslots && !p.region_uri.is_empty());
        if !valid {
            self.counters.announces_dropped += 1;
            return AnnounceOutcome::Invalid;
        }
        let layout = |e: &mut StreamEntry| {
            e.producer_id = ann.producer_id;
            e.epoch = ann.epoch;
            e.layout_version = ann.layout_version;
            e.header_nslots = ann.header_nslots;
            e.header_region_uri = text(&ann.header_region_uri);
            e.pools = pools.clone();
            e.last_announce_ns = now_ns;
        };
        let outcome = match self.find(authority, ann.stream_id) {
            Some(e) if ann.epoch < e.epoch => AnnounceOutcome::EpochRegressed,
            Some(e) => {
                let replaced = ann.epoch > e.epoch;
                layout(e);
                if replaced {
                    AnnounceOutcome::EpochReplaced
                } else {
                    AnnounceOutcome::Refreshed
                }
            }
            None => {
                let mut e = StreamEntry {
                    authority,
                    stream_id: ann.stream_id,
                    producer_id: 0,
                    epoch: 0,
                    layout_version: 0,
                    header_nslots: 0,
                    header_region_uri: String::new(),
                    pools: Vec::new(),
                    data_source_id: None,
                    data_source_name: Vec::new(),
                    tags: Vec::new(),
                    last_announce_ns: now_ns,
                };
                layout(&mut e);
                self.entries.push(e);
                AnnounceOutcome::Added
            }
        };
        if outcome == AnnounceOutcome::EpochRegressed {
            self.counters.announces_dropped += 1;
        } else {
            self.counters.announces += 1;
        }
        outcome
    }

    /// A `DataSourceAnnounce`: the data-source name of an indexed stream.
    pub fn on_data_source_announce(&mut self, authority: usize, msg: &DataSourceAnnounce<'_>) {
        if let Some(e) = self.find(authority, msg.stream_id) {
            e.data_source_name = msg.name.as_bytes().to_vec();
        }
    }

    /// A `DataSourceMeta`: the tags (attributes `tag`) and data-source id (attribute
    /// `data_source_id`) of an indexed stream; the whole set replaces the previous one.
    pub fn on_data_source_meta(&mut self, authority: usize, msg: &DataSourceMeta<'_>) {
        let Some(e) = self.find(authority, msg.stream_id) else {
            return;
        };
        e.tags.clear();
        e.data_source_id = None;
        for a in msg.attributes.iter() {
            match a.key.as_bytes() {
                b"tag" => e.tags.push(a.value.as_bytes().to_vec()),
                b"data_source_id" => {
                    e.data_source_id = std::str::from_utf8(a.value.as_bytes())
                        .ok()
                        .and_then(|s| s.trim().parse().ok());
                }
                _ => {}
            }
        }
    }

    /// Removes entries without an announce for longer than the expiry (DS §6.2).
    pub fn expire(&mut self, now_ns: u64) {
        let expiry = self.expiry_ns;
        let before = self.entries.len();
        self.entries
            .retain(|e| now_ns.saturating_sub(e.last_announce_ns) <= expiry);
        self.counters.expired += (before - self.entries.len()) as u64;
    }

    fn matches(e: &StreamEntry, req: &DiscoveryRequest<'_>) -> bool {
        req.stream_id.is_none_or(|s| s == e.stream_id)
            && req.producer_id.is_none_or(|p| p == e.producer_id)
            && req
                .data_source_id
                .is_none_or(|d| Some(d) == e.data_source_id)
            && (req.data_source_name.as_bytes().is_empty()
                || req.data_source_name.as_bytes() == e.data_source_name.as_slice())
            && req
                .tags
                .iter()
                .all(|t| e.tags.iter().any(|have| have.as_slice() == t.as_bytes()))
    }

    /// Answers a request (DS §5.1, §5.2, §6.2): expired entries first removed; filters
    /// AND-ed; an empty response channel dropped silently; a zero response stream answered
    /// `ERROR`; too many matches answered `ERROR`.
    pub fn answer<'a>(&'a mut self, req: &'a DiscoveryRequest<'a>, now_ns: u64) -> Answer<'a> {
        let channel = req.response_channel.as_bytes();
        if channel.is_empty() {
            self.counters.requests_dropped += 1;
            return Answer::Drop;
        }
        self.expire(now_ns);
        self.counters.requests += 1;
        let error = |counters: &mut RegistryCounters, msg: &'static str| {
            counters.errors += 1;
            Answer::Respond {
                channel,
                stream_id: req.response_stream_id,
                response: DiscoveryResponse {
                    request_id: req.request_id,
                    status: DiscoveryStatus::Error,
                    results: Group::Owned(Vec::new()),
                    error_message: Bytes::new(&msg.as_bytes()[..msg.len().min(ERROR_MESSAGE_MAX)]),
                },
            }
        };
        if req.response_stream_id == 0 {
            return error(&mut self.counters, "response_stream_id must not be 0");
        }
        let count = self
            .entries
            .iter()
            .filter(|e| Self::matches(e, req))
            .count();
        if count > self.max_results {
            return error(&mut self.counters, "result limit exceeded");
        }
        let authorities = &self.authorities;
        let results: Vec<DiscoveryResult<'a>> = self
            .entries
            .iter()
            .filter(|e| Self::matches(e, req))
            .filter_map(|e| {
                let a = authorities.get(e.authority)?;
                // never a result without a usable authority (DS §5.2)
                if a.control_channel.is_empty() || a.control_stream_id == 0 {
                    return None;
                }
                Some(DiscoveryResult {
                    stream_id: e.stream_id,
                    producer_id: e.producer_id,
                    epoch: e.epoch,
                    layout_version: e.layout_version,
                    header_nslots: e.header_nslots,
                    header_slot_bytes: HEADER_SLOT_BYTES,
                    max_dims: MAX_DIMS,
                    data_source_id: e.data_source_id,
                    driver_control_stream_id: a.control_stream_id,
                    payload_pools: Group::Owned(
                        e.pools
                            .iter()
                            .map(|p| PayloadPool {
                                pool_id: p.pool_id,
                                pool_nslots: p.pool_nslots,
                                stride_bytes: p.stride_bytes,
                                region_uri: Bytes::new(p.region_uri.as_bytes()),
                            })
                            .collect(),
                    ),
                    tags: Group::Owned(e.tags.iter().map(|t| Bytes::new(t)).collect()),
                    header_region_uri: Bytes::new(e.header_region_uri.as_bytes()),
                    data_source_name: Bytes::new(&e.data_source_name),
                    driver_instance_id: Bytes::new(a.instance_id.as_bytes()),
                    driver_control_channel: Bytes::new(a.control_channel.as_bytes()),
                })
            })
            .collect();
        Answer::Respond {
            channel,
            stream_id: req.response_stream_id,
            response: DiscoveryResponse {
                request_id: req.request_id,
                status: DiscoveryStatus::Ok,
                results: Group::Owned(results),
                error_message: Bytes::EMPTY,
            },
        }
    }
}
