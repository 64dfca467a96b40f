//! The discovery client (`tp_discovery_*`, Discovery v1.0 §4.3, §7; docs/discovery.md): one
//! query by name, tags, stream id, producer id or data-source id to a provider (embedded in
//! `tp driver` or `tp discovery serve`), and the results to iterate. Results are advisory:
//! attach through the driver a result names (`driver_control_channel` /
//! `driver_control_stream_id`), never map from a result.

use std::ffi::{CString, c_char};
use std::time::Duration;

use tensorpool::discovery::{ClientEndpoints, DEFAULT_REQUEST_STREAM_ID, Found, Query, QueryError};

use crate::error::{FfiError, FfiResult, guard, tp_status, tp_status::*};
use crate::handles::{self, Kind};

/// The request channel when `request_channel` is NULL (the providers' default).
const DEFAULT_CHANNEL: &str = "aeron:ipc?term-length=4m";
/// The response stream when `response_stream_id` is 0 (as `tp discover`).
pub const TP_DISCOVERY_DEFAULT_RESPONSE_STREAM_ID: i32 = 9004;
/// The wait when `timeout_ms` is 0.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// A query: where to ask and what to look for. Zero-initialise it (or call
/// [`tp_discovery_request_init`]) and set what you need; every filter is optional and they
/// are AND-ed (DS §5.1).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
#[allow(non_camel_case_types)]
pub struct tp_discovery_request {
    /// The provider's request channel (NULL: `aeron:ipc?term-length=4m`).
    pub request_channel: *const c_char,
    /// The provider's request stream (0: 9000).
    pub request_stream_id: i32,
    /// Where the answer comes back (NULL: the request channel).
    pub response_channel: *const c_char,
    /// Stream of the answer (0: 9004); negative is refused.
    pub response_stream_id: i32,
    /// Only this data-source name, byte-exact (NULL or "": any).
    pub name: *const c_char,
    /// Only streams carrying all these tags (`tag_count` UTF-8 strings; NULL when 0).
    pub tags: *const *const c_char,
    /// Number of `tags`.
    pub tag_count: usize,
    /// Only this stream, when `has_stream_id`.
    pub stream_id: u32,
    /// `stream_id` is set.
    pub has_stream_id: bool,
    /// Only this producer, when `has_producer_id`.
    pub producer_id: u32,
    /// `producer_id` is set.
    pub has_producer_id: bool,
    /// Only this data-source id, when `has_data_source_id`.
    pub data_source_id: u64,
    /// `data_source_id` is set.
    pub has_data_source_id: bool,
    /// How long to wait for the answer, in milliseconds (0: 5000).
    pub timeout_ms: u64,
}

/// One stream found. The strings are NUL-terminated UTF-8 (bytes that are not UTF-8, or a
/// NUL, are replaced by U+FFFD) and live as long as the results handle.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
#[allow(non_camel_case_types)]
pub struct tp_discovery_stream {
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
    pub header_region_uri: *const c_char,
    /// Data-source name ("" when none announced).
    pub data_source_name: *const c_char,
    /// Data-source id, when `has_data_source_id`.
    pub data_source_id: u64,
    /// `data_source_id` is set.
    pub has_data_source_id: bool,
    /// The driver to attach through.
    pub driver_instance_id: *const c_char,
    /// Its control channel.
    pub driver_control_channel: *const c_char,
    /// Its control stream.
    pub driver_control_stream_id: u32,
    /// Tags ([`tp_discovery_results_tag`]).
    pub tag_count: usize,
    /// Payload pools ([`tp_discovery_results_pool`]).
    pub pool_count: usize,
}

/// One payload pool of a stream found (informational).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
#[allow(non_camel_case_types)]
pub struct tp_discovery_pool {
    /// Pool id.
    pub pool_id: u16,
    /// Slots (equal to the header ring's).
    pub pool_nslots: u32,
    /// Bytes per slot.
    pub stride_bytes: u32,
    /// Region URI (lives as long as the results handle).
    pub region_uri: *const c_char,
}

struct Strings {
    header_region_uri: CString,
    data_source_name: CString,
    driver_instance_id: CString,
    driver_control_channel: CString,
    tags: Vec<CString>,
    pool_uris: Vec<CString>,
}

/// The results of one query. Opaque; free it with [`tp_discovery_results_close`].
#[allow(non_camel_case_types)]
pub struct tp_discovery_results {
    found: Vec<Found>,
    strings: Vec<Strings>,
}

impl std::fmt::Debug for tp_discovery_results {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("tp_discovery_results")
            .field("found", &self.found.len())
            .finish()
    }
}

fn c_string(s: &str) -> CString {
    CString::new(s.replace('\0', "\u{FFFD}")).unwrap_or_default()
}

fn results<'a>(r: *mut tp_discovery_results) -> FfiResult<&'a mut tp_discovery_results> {
    handles::get(r, Kind::DiscoveryResults, "results")
}

fn at(r: &tp_discovery_results, index: usize) -> FfiResult<(&Found, &Strings)> {
    match (r.found.get(index), r.strings.get(index)) {
        (Some(f), Some(s)) => Ok((f, s)),
        _ => Err(FfiError::new(
            TP_ERR_INVALID_ARGUMENT,
            format!("index {index} out of range ({} results)", r.found.len()),
        )),
    }
}

/// Fills `out` with the defaults: no filter, default endpoints and timeout (all zero / NULL).
#[unsafe(no_mangle)]
pub extern "C" fn tp_discovery_request_init(out: *mut tp_discovery_request) -> tp_status {
    guard("tp_discovery_request_init", || {
        let out = handles::out(out, "out")?;
        *out = tp_discovery_request {
            request_channel: std::ptr::null(),
            request_stream_id: 0,
            response_channel: std::ptr::null(),
            response_stream_id: 0,
            name: std::ptr::null(),
            tags: std::ptr::null(),
            tag_count: 0,
            stream_id: 0,
            has_stream_id: false,
            producer_id: 0,
            has_producer_id: false,
            data_source_id: 0,
            has_data_source_id: false,
            timeout_ms: 0,
        };
        Ok(())
    })
}

/// Sends `request` to a discovery provider over the Aeron connection of `ctx` and waits for
/// its answer; `*out` receives the results (possibly none). Results naming no usable
/// driver, or whose pools' slot counts differ from the ring's, are left out (DS §7). Errors:
/// `TP_ERR_TIMEOUT` (no provider answered), `TP_ERR_STATE` (the provider answered ERROR,
/// its message in `tp_last_error`), `TP_ERR_INVALID_ARGUMENT` (a negative response stream,
/// a tag or string that is not UTF-8), `TP_ERR_AERON`. A provider's `NOT_FOUND` is no
/// results.
#[unsafe(no_mangle)]
pub extern "C" fn tp_discovery_query(
    ctx: *mut crate::context::tp_context,
    request: *const tp_discovery_request,
    out: *mut *mut tp_discovery_results,
) -> tp_status {
    guard("tp_discovery_query", || {
        let out = handles::out(out, "out")?;
        *out = std::ptr::null_mut();
        let req = handles::input(request, "request")?;
        let client = crate::context::get(ctx)?.ctx.client().clone();
        let request_channel = handles::opt_string(req.request_channel, "request_channel")?
            .unwrap_or(DEFAULT_CHANNEL)
            .to_owned();
        let response_channel = handles::opt_string(req.response_channel, "response_channel")?
            .map_or_else(|| request_channel.clone(), str::to_owned);
        if req.request_stream_id < 0 || req.response_stream_id < 0 {
            return Err(FfiError::new(
                TP_ERR_INVALID_ARGUMENT,
                "request_stream_id and response_stream_id must not be negative",
            ));
        }
        let endpoints = ClientEndpoints {
            request_channel,
            request_stream_id: if req.request_stream_id == 0 {
                DEFAULT_REQUEST_STREAM_ID as i32
            } else {
                req.request_stream_id
            },
            response_channel,
            response_stream_id: if req.response_stream_id == 0 {
                TP_DISCOVERY_DEFAULT_RESPONSE_STREAM_ID
            } else {
                req.response_stream_id
            },
        };
        let tags = handles::slice(req.tags, req.tag_count, "tags")?
            .iter()
            .enumerate()
            .map(|(i, &t)| handles::string(t, &format!("tags[{i}]")).map(str::to_owned))
            .collect::<FfiResult<Vec<String>>>()?;
        let q = Query {
            stream_id: req.has_stream_id.then_some(req.stream_id),
            producer_id: req.has_producer_id.then_some(req.producer_id),
            data_source_id: req.has_data_source_id.then_some(req.data_source_id),
            name: handles::opt_string(req.name, "name")?
                .unwrap_or_default()
                .to_owned(),
            tags,
        };
        let timeout = handles::ms_or(req.timeout_ms, DEFAULT_TIMEOUT);
        let found = match tensorpool::discovery::query(&client, &endpoints, &q, timeout) {
            Ok(found) => found,
            Err(QueryError::NotFound) => Vec::new(),
            Err(e @ QueryError::Timeout(_)) => {
                return Err(FfiError::new(TP_ERR_TIMEOUT, e.to_string()));
            }
            Err(e @ QueryError::Provider(_)) => {
                return Err(FfiError::new(TP_ERR_STATE, e.to_string()));
            }
            Err(e @ QueryError::Endpoints(_)) => {
                return Err(FfiError::new(TP_ERR_INVALID_ARGUMENT, e.to_string()));
            }
            Err(e @ QueryError::Aeron(_)) => {
                return Err(FfiError::new(TP_ERR_AERON, e.to_string()));
            }
        };
        let strings = found
            .iter()
            .map(|f| Strings {
                header_region_uri: c_string(&f.header_region_uri),
                data_source_name: c_string(&f.data_source_name),
                driver_instance_id: c_string(&f.driver_instance_id),
                driver_control_channel: c_string(&f.driver_control_channel),
                tags: f.tags.iter().map(|t| c_string(t)).collect(),
                pool_uris: f.pools.iter().map(|p| c_string(&p.3)).collect(),
            })
            .collect();
        *out = handles::register(
            tp_discovery_results { found, strings },
            Kind::DiscoveryResults,
        );
        Ok(())
    })
}

/// The number of streams in `results`.
#[unsafe(no_mangle)]
pub extern "C" fn tp_discovery_results_count(
    results: *mut tp_discovery_results,
    out: *mut usize,
) -> tp_status {
    guard("tp_discovery_results_count", || {
        let r = self::results(results)?;
        *handles::out(out, "out")? = r.found.len();
        Ok(())
    })
}

/// The stream at `index` (0 .. count-1) into `out`; its strings live as long as `results`.
#[unsafe(no_mangle)]
pub extern "C" fn tp_discovery_results_get(
    results: *mut tp_discovery_results,
    index: usize,
    out: *mut tp_discovery_stream,
) -> tp_status {
    guard("tp_discovery_results_get", || {
        let r = self::results(results)?;
        let out = handles::out(out, "out")?;
        let (f, s) = at(r, index)?;
        *out = tp_discovery_stream {
            stream_id: f.stream_id,
            producer_id: f.producer_id,
            epoch: f.epoch,
            layout_version: f.layout_version,
            header_nslots: f.header_nslots,
            header_region_uri: s.header_region_uri.as_ptr(),
            data_source_name: s.data_source_name.as_ptr(),
            data_source_id: f.data_source_id.unwrap_or(0),
            has_data_source_id: f.data_source_id.is_some(),
            driver_instance_id: s.driver_instance_id.as_ptr(),
            driver_control_channel: s.driver_control_channel.as_ptr(),
            driver_control_stream_id: f.driver_control_stream_id,
            tag_count: s.tags.len(),
            pool_count: s.pool_uris.len(),
        };
        Ok(())
    })
}

/// Tag `tag` (0 .. tag_count-1) of the stream at `index` into `*out` (NUL-terminated, lives
/// as long as `results`).
#[unsafe(no_mangle)]
pub extern "C" fn tp_discovery_results_tag(
    results: *mut tp_discovery_results,
    index: usize,
    tag: usize,
    out: *mut *const c_char,
) -> tp_status {
    guard("tp_discovery_results_tag", || {
        let r = self::results(results)?;
        let out = handles::out(out, "out")?;
        let (_, s) = at(r, index)?;
        let t = s.tags.get(tag).ok_or_else(|| {
            FfiError::new(
                TP_ERR_INVALID_ARGUMENT,
                format!("tag {tag} out of range ({} tags)", s.tags.len()),
            )
        })?;
        *out = t.as_ptr();
        Ok(())
    })
}

/// Payload pool `pool` (0 .. pool_count-1) of the stream at `index` into `out`.
#[unsafe(no_mangle)]
pub extern "C" fn tp_discovery_results_pool(
    results: *mut tp_discovery_results,
    index: usize,
    pool: usize,
    out: *mut tp_discovery_pool,
) -> tp_status {
    guard("tp_discovery_results_pool", || {
        let r = self::results(results)?;
        let out = handles::out(out, "out")?;
        let (f, s) = at(r, index)?;
        let (Some(p), Some(uri)) = (f.pools.get(pool), s.pool_uris.get(pool)) else {
            return Err(FfiError::new(
                TP_ERR_INVALID_ARGUMENT,
                format!("pool {pool} out of range ({} pools)", f.pools.len()),
            ));
        };
        *out = tp_discovery_pool {
            pool_id: p.0,
            pool_nslots: p.1,
            stride_bytes: p.2,
            region_uri: uri.as_ptr(),
        };
        Ok(())
    })
}

/// Frees `results` (every string it handed out goes with it). NULL is a no-op.
#[unsafe(no_mangle)]
pub extern "C" fn tp_discovery_results_close(results: *mut tp_discovery_results) -> tp_status {
    guard("tp_discovery_results_close", || {
        handles::free(results, Kind::DiscoveryResults, "results")
    })
}
