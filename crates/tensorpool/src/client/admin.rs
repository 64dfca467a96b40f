//! Administrative requests to a running driver over its control stream: the admin schema's
//! status queries (990, ours) and `ShmDriverShutdownRequest` (Driver Model §4.13). Used by
//! `tp driver status|leases|streams|shutdown`.

use std::time::{Duration, Instant};

use tensorpool_aeron::AeronClient;
use tensorpool_codec::admin::{
    self, DriverLeasesRequest, DriverStatusRequest, DriverStreamsRequest,
};
use tensorpool_codec::driver::{ShmDriverShutdownRequest, ShutdownReason};
use tensorpool_codec::{Message, peek_header};

use super::next_correlation_id;
use crate::control::{MessageSink, send};

/// What to ask the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminQuery {
    /// `DriverStatusRequest`.
    Status,
    /// `DriverLeasesRequest`.
    Leases,
    /// `DriverStreamsRequest`.
    Streams,
}

/// Why an admin request failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The control-plane publication or subscription could not be added.
    #[error("driver control plane: {0}")]
    Aeron(#[from] tensorpool_aeron::AddError),
    /// No driver subscribed to the control stream before the deadline.
    #[error("no driver listens on {channel} stream {stream_id} (waited {waited:?})")]
    NoDriver {
        /// Control channel.
        channel: String,
        /// Control stream id.
        stream_id: i32,
        /// How long.
        waited: Duration,
    },
    /// The driver did not answer before the deadline.
    #[error("the driver did not answer within {0:?}")]
    NoAnswer(Duration),
    /// The request could not be published.
    #[error("sending the request failed: {0}")]
    Send(#[from] crate::control::SendError),
}

fn connected_publication(
    aeron: &AeronClient,
    channel: &str,
    stream_id: i32,
    deadline: Instant,
    timeout: Duration,
) -> Result<tensorpool_aeron::Publication, AdminError> {
    let publication = aeron.add_publication(channel, stream_id, timeout)?;
    while !MessageSink::is_connected(&publication) {
        if Instant::now() >= deadline {
            return Err(AdminError::NoDriver {
                channel: channel.to_owned(),
                stream_id,
                waited: timeout,
            });
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(publication)
}

/// Sends `query` and returns the encoded answer (an admin-schema message with our
/// correlation id; decode it with `tensorpool_codec::AnyMessage::decode`).
pub fn query_driver(
    aeron: &AeronClient,
    channel: &str,
    stream_id: i32,
    query: AdminQuery,
    timeout: Duration,
) -> Result<Vec<u8>, AdminError> {
    let deadline = Instant::now() + timeout;
    let mut sub = aeron.add_subscription(channel, stream_id, timeout)?;
    let mut publication = connected_publication(aeron, channel, stream_id, deadline, timeout)?;
    let correlation_id = next_correlation_id();
    let (template, encoded) = match query {
        AdminQuery::Status => (2, DriverStatusRequest { correlation_id }.encode_to_vec()),
        AdminQuery::Leases => (4, DriverLeasesRequest { correlation_id }.encode_to_vec()),
        AdminQuery::Streams => (6, DriverStreamsRequest { correlation_id }.encode_to_vec()),
    };
    let encoded = encoded.map_err(|e| AdminError::Send(e.into()))?;
    publication
        .offer(&encoded)
        .map_err(|e| AdminError::Send(e.into()))?;
    let mut answer = None;
    while Instant::now() < deadline {
        let n = sub
            .poll(
                |buf, _| {
                    let ours = peek_header(buf).is_ok_and(|h| {
                        h.schema_id == admin::SCHEMA_ID && h.template_id == template
                    }) && buf
                        .get(8..16)
                        .is_some_and(|c| c == correlation_id.to_le_bytes());
                    if ours && answer.is_none() {
                        answer = Some(buf.to_vec());
                    }
                },
                64,
            )
            .unwrap_or(0);
        if let Some(a) = answer.take() {
            return Ok(a);
        }
        if n == 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    Err(AdminError::NoAnswer(timeout))
}

/// Publishes `ShmDriverShutdownRequest` with `token` once a driver listens. The driver does
/// not answer (§4.13): watch for `ShmDriverShutdown` to see it accepted.
pub fn request_shutdown(
    aeron: &AeronClient,
    channel: &str,
    stream_id: i32,
    token: &str,
    reason: ShutdownReason,
    message: &str,
    timeout: Duration,
) -> Result<i64, AdminError> {
    let deadline = Instant::now() + timeout;
    let mut publication = connected_publication(aeron, channel, stream_id, deadline, timeout)?;
    let correlation_id = next_correlation_id();
    let req = ShmDriverShutdownRequest {
        correlation_id,
        reason,
        token: token.into(),
        error_message: message.into(),
    };
    send(&mut publication, &req)?;
    Ok(correlation_id)
}
