//! The discovery provider agent: the registry ([`DiscoveryRegistry`]) on Aeron. It reads
//! `ShmPoolAnnounce` on the announce stream and `DataSourceAnnounce` / `DataSourceMeta` on
//! the metadata stream, answers `DiscoveryRequest`s from the request stream on each client's
//! own response endpoint (DS §4.3), and expires entries. Responses go out through
//! publications registered without blocking the duty cycle and kept for reuse; a response
//! that cannot be delivered within [`RESPONSE_TIMEOUT`] is dropped and counted.
//!
//! Spanning hosts (DS §8): each `[[discovery.endpoints]]` entry adds an authority and its
//! own announce / metadata subscriptions (a UDP channel of this host that a remote provider
//! forwards to); with `forward_channel`, the local driver's messages are published again
//! there, unchanged (never an endpoint's: no loops). Forwarding never blocks: a message the
//! forward publication does not take at once (not connected, back pressure) is counted
//! and left to the next announce period.

use std::collections::VecDeque;
use std::time::Duration;

use tensorpool_aeron::{AeronClient, PendingPublication, Publication, Subscription};
use tensorpool_agent::{Agent, AgentError, AgentResult};
use tensorpool_codec::discovery::{self as ds, DiscoveryRequest};
use tensorpool_codec::wire::ShmPoolAnnounce;
use tensorpool_codec::{AnyMessage, Message, MessageHeader};

use super::{Answer, Authority, DiscoveryConfig, DiscoveryRegistry};

/// How long a response may wait for its publication to connect.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Response publications kept open at most (least recently used closed first).
pub const MAX_RESPONDERS: usize = 64;
/// A response publication unused this long is closed.
pub const RESPONDER_IDLE: Duration = Duration::from_secs(30);

/// Counters of the provider.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProviderCounters {
    /// Responses delivered.
    pub responses_sent: u64,
    /// Responses dropped: no subscriber within the timeout, or the publication failed.
    pub responses_dropped: u64,
    /// Requests that did not decode (schema 910 of an unsupported version, malformed).
    pub requests_malformed: u64,
    /// Requests dropped: a response channel that is not UTF-8 or a response stream id above
    /// 2^31-1 (not an Aeron stream id).
    pub requests_bad_stream: u64,
    /// Local messages published on the forward channel.
    pub forwarded: u64,
    /// Local messages the forward channel did not take (no registry connected yet, back
    /// pressure); the next announce carries the same state.
    pub forward_dropped: u64,
}

/// One driver whose messages this provider reads: the local one (index 0) or an endpoint.
struct Source {
    authority: usize,
    announces: Subscription,
    metadata: Subscription,
}

/// The forward publications (announce stream, metadata stream).
struct Forward {
    announces: Publication,
    metadata: Publication,
}

enum Link {
    Pending(PendingPublication),
    Ready(Publication),
    Failed,
}

struct Responder {
    channel: String,
    stream_id: i32,
    link: Link,
    queue: VecDeque<(Vec<u8>, u64)>,
    last_used_ns: u64,
}

/// The provider: configuration, registry, subscriptions, response publications.
pub struct DiscoveryProvider {
    registry: DiscoveryRegistry,
    client: AeronClient,
    requests: Subscription,
    sources: Vec<Source>,
    forward: Option<Forward>,
    responders: Vec<Responder>,
    counters: ProviderCounters,
    timeout: Duration,
    next_expire_ns: u64,
    expire_interval_ns: u64,
}

impl std::fmt::Debug for DiscoveryProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiscoveryProvider")
            .field("entries", &self.registry.entries().len())
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

fn stream(id: u32) -> Result<i32, AgentError> {
    i32::try_from(id).map_err(|_| AgentError::failed(std::io::Error::other("stream id > 2^31-1")))
}

impl DiscoveryProvider {
    /// Subscribes to the request, announce and metadata streams of `cfg` (waiting at most
    /// `timeout` for each registration).
    pub fn new(
        cfg: &DiscoveryConfig,
        client: AeronClient,
        timeout: Duration,
    ) -> Result<Self, AgentError> {
        let sub = |channel: &str, id: u32| -> Result<Subscription, AgentError> {
            client
                .add_subscription(channel, stream(id)?, timeout)
                .map_err(AgentError::failed)
        };
        let requests = sub(&cfg.request_channel, cfg.request_stream_id)?;
        let mut registry = DiscoveryRegistry::new(cfg.expiry_ns(), cfg.max_results as usize);
        let mut sources = Vec::with_capacity(1 + cfg.endpoints.len());
        sources.push(Source {
            authority: registry.authority(Authority {
                instance_id: cfg.driver_instance_id.clone(),
                control_channel: cfg.driver_control_channel.clone(),
                control_stream_id: cfg.driver_control_stream_id,
            }),
            announces: sub(&cfg.announce_channel, cfg.announce_stream_id)?,
            metadata: sub(&cfg.metadata_channel, cfg.metadata_stream_id)?,
        });
        for e in &cfg.endpoints {
            sources.push(Source {
                authority: registry.authority(Authority {
                    instance_id: e.driver_instance_id.clone(),
                    control_channel: e.driver_control_channel.clone(),
                    control_stream_id: e.driver_control_stream_id,
                }),
                announces: sub(&e.announce_channel, e.announce_stream_id)?,
                metadata: sub(e.metadata_channel(), e.metadata_stream_id)?,
            });
        }
        let forward = if cfg.forward_channel.trim().is_empty() {
            None
        } else {
            let publication = |id: u32| -> Result<Publication, AgentError> {
                client
                    .add_publication(&cfg.forward_channel, stream(id)?, timeout)
                    .map_err(AgentError::failed)
            };
            Some(Forward {
                announces: publication(cfg.announce_stream_id)?,
                metadata: publication(cfg.metadata_stream_id)?,
            })
        };
        let expire_interval_ns = (u64::from(cfg.announce_period_ms) * 1_000_000 / 2).max(1);
        Ok(Self {
            registry,
            client,
            requests,
            sources,
            forward,
            responders: Vec::with_capacity(MAX_RESPONDERS),
            counters: ProviderCounters::default(),
            timeout,
            next_expire_ns: 0,
            expire_interval_ns,
        })
    }

    /// The registry.
    pub fn registry(&self) -> &DiscoveryRegistry {
        &self.registry
    }

    /// The provider's counters.
    pub fn counters(&self) -> ProviderCounters {
        self.counters
    }

    fn poll_inputs(&mut self, now_ns: u64) -> Result<usize, AgentError> {
        let Self {
            registry,
            sources,
            forward,
            counters,
            ..
        } = self;
        let mut work = 0;
        for (i, source) in sources.iter_mut().enumerate() {
            let a = source.authority;
            // only the local driver's messages (source 0) are forwarded
            let mut fwd = if i == 0 { forward.as_mut() } else { None };
            work += source
                .announces
                .poll(
                    |msg, _| {
                        if let Ok(ann) = ShmPoolAnnounce::decode(msg) {
                            registry.on_pool_announce(a, &ann, now_ns);
                            if let Some(f) = fwd.as_deref_mut() {
                                forward_one(&mut f.announces, msg, counters);
                            }
                        }
                    },
                    64,
                )
                .map_err(AgentError::failed)?;
            work += source
                .metadata
                .poll(
                    |msg, _| {
                        let known = match AnyMessage::decode_any_version(msg) {
                            Ok(AnyMessage::DataSourceAnnounce(m)) => {
                                registry.on_data_source_announce(a, &m);
                                true
                            }
                            Ok(AnyMessage::DataSourceMeta(m)) => {
                                registry.on_data_source_meta(a, &m);
                                true
                            }
                            _ => false,
                        };
                        if known && let Some(f) = fwd.as_deref_mut() {
                            forward_one(&mut f.metadata, msg, counters);
                        }
                    },
                    64,
                )
                .map_err(AgentError::failed)?;
        }
        Ok(work)
    }

    fn poll_requests(&mut self, now_ns: u64) -> Result<usize, AgentError> {
        let Self {
            registry,
            requests,
            responders,
            counters,
            client,
            timeout,
            ..
        } = self;
        requests
            .poll(
                |msg, _| {
                    // requests share a stream with nothing else in our deployments, but a
                    // message of another schema is skipped, never decoded (DS §10)
                    let Ok(h) = MessageHeader::decode(msg) else {
                        counters.requests_malformed += 1;
                        return;
                    };
                    if h.schema_id != ds::SCHEMA_ID {
                        return;
                    }
                    let Ok(req) = DiscoveryRequest::decode(msg) else {
                        counters.requests_malformed += 1;
                        return;
                    };
                    let Answer::Respond {
                        channel,
                        stream_id,
                        response,
                    } = registry.answer(&req, now_ns)
                    else {
                        return;
                    };
                    let (Ok(channel), Ok(stream_id)) =
                        (std::str::from_utf8(channel), i32::try_from(stream_id))
                    else {
                        counters.requests_bad_stream += 1;
                        return;
                    };
                    let Ok(bytes) = response.encode_to_vec() else {
                        counters.responses_dropped += 1;
                        return;
                    };
                    enqueue(
                        responders, client, *timeout, channel, stream_id, bytes, now_ns,
                    );
                },
                16,
            )
            .map_err(AgentError::failed)
    }

    fn drive_responders(&mut self, now_ns: u64) -> usize {
        let deadline_ns = RESPONSE_TIMEOUT.as_nanos() as u64;
        let mut work = 0;
        for r in &mut self.responders {
            if let Link::Pending(p) = &mut r.link {
                match p.poll() {
                    Ok(Some(publication)) => r.link = Link::Ready(publication),
                    Ok(None) => {}
                    Err(_) => r.link = Link::Failed,
                }
            }
            while let Some((bytes, queued_ns)) = r.queue.front() {
                let expired = now_ns.saturating_sub(*queued_ns) > deadline_ns;
                let sent = match &mut r.link {
                    Link::Ready(p) => match p.offer(bytes) {
                        Ok(_) => Some(true),
                        Err(e) if e.is_retryable() && !expired => None,
                        Err(_) => Some(false),
                    },
                    Link::Pending(_) if !expired => None,
                    _ => Some(false),
                };
                match sent {
                    None => break,
                    Some(ok) => {
                        if ok {
                            self.counters.responses_sent += 1;
                        } else {
                            self.counters.responses_dropped += 1;
                        }
                        r.queue.pop_front();
                        work += 1;
                    }
                }
            }
        }
        let idle_ns = RESPONDER_IDLE.as_nanos() as u64;
        self.responders.retain(|r| {
            !r.queue.is_empty()
                || (!matches!(r.link, Link::Failed)
                    && now_ns.saturating_sub(r.last_used_ns) < idle_ns)
        });
        work
    }
}

fn forward_one(publication: &mut Publication, msg: &[u8], counters: &mut ProviderCounters) {
    match publication.offer(msg) {
        Ok(_) => counters.forwarded += 1,
        Err(_) => counters.forward_dropped += 1,
    }
}

fn enqueue(
    responders: &mut Vec<Responder>,
    client: &AeronClient,
    timeout: Duration,
    channel: &str,
    stream_id: i32,
    bytes: Vec<u8>,
    now_ns: u64,
) {
    let i = match responders
        .iter()
        .position(|r| r.channel == channel && r.stream_id == stream_id)
    {
        Some(i) => i,
        None => {
            if responders.len() >= MAX_RESPONDERS
                && let Some(oldest) = responders
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| r.queue.is_empty())
                    .min_by_key(|(_, r)| r.last_used_ns)
                    .map(|(i, _)| i)
            {
                responders.swap_remove(oldest);
            }
            let link = match client.start_add_publication(channel, stream_id, timeout) {
                Ok(p) => Link::Pending(p),
                Err(_) => Link::Failed,
            };
            responders.push(Responder {
                channel: channel.to_owned(),
                stream_id,
                link,
                queue: VecDeque::new(),
                last_used_ns: now_ns,
            });
            responders.len() - 1
        }
    };
    let r = &mut responders[i];
    r.last_used_ns = now_ns;
    r.queue.push_back((bytes, now_ns));
}

impl Agent for DiscoveryProvider {
    fn do_work(&mut self, now_ns: u64) -> AgentResult {
        let mut work = self.poll_inputs(now_ns)?;
        work += self.poll_requests(now_ns)?;
        work += self.drive_responders(now_ns);
        if now_ns >= self.next_expire_ns {
            self.registry.expire(now_ns);
            self.next_expire_ns = now_ns + self.expire_interval_ns;
        }
        Ok(work)
    }

    fn role_name(&self) -> &str {
        "discovery"
    }
}
