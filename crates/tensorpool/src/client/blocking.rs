//! A blocking attach for programs without a duty cycle: the state machine driven until the
//! first lease or the deadline, sleeping between cycles (no busy spin).

use std::time::{Duration, Instant};

use tensorpool_aeron::AeronClient;
use tensorpool_agent::monotonic_ns;
use tensorpool_codec::driver::ResponseCode;

use super::{AeronTransport, AttachInfo, ClientConfig, ClientEvent, DriverClient};

/// Why [`attach`] gave up.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// The control-plane publication or subscriptions could not be added.
    #[error("driver control plane: {0}")]
    Aeron(#[from] tensorpool_aeron::AddError),
    /// No lease before the deadline; the last refusal or failure, if any.
    #[error("no lease within {waited:?}{}", last.as_ref().map(|l| format!(" (last answer: {l})")).unwrap_or_default())]
    Timeout {
        /// How long it tried.
        waited: Duration,
        /// The last refusal (`code: message`) or failure seen.
        last: Option<String>,
    },
}

/// Attaches as `cfg` says, retrying with backoff until a lease is granted or `timeout`
/// passes. The returned client keeps the lease alive as long as its `do_work` is called.
pub fn attach(
    aeron: &AeronClient,
    cfg: ClientConfig,
    timeout: Duration,
) -> Result<(DriverClient<AeronTransport>, AttachInfo), AttachError> {
    let transport = AeronTransport::new(aeron, &cfg, timeout)?;
    let mut client = DriverClient::new(cfg, transport);
    let start = Instant::now();
    let mut last: Option<String> = None;
    let mut granted = None;
    while start.elapsed() < timeout {
        let work = client.do_work(monotonic_ns(), &mut |event| match event {
            ClientEvent::Attached(info) => granted = Some(info),
            ClientEvent::Rejected { code, message } => {
                last = Some(format!("{}: {message}", code_name(code)))
            }
            ClientEvent::ProtocolError(e) => last = Some(format!("protocol error: {e}")),
            ClientEvent::AttachTimedOut => last = Some("no response from the driver".into()),
            _ => {}
        });
        if let Some(info) = granted.take() {
            return Ok((client, info));
        }
        if work == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    Err(AttachError::Timeout {
        waited: timeout,
        last,
    })
}

/// The response code's name as in the schema.
pub fn code_name(code: ResponseCode) -> &'static str {
    match code {
        ResponseCode::Ok => "OK",
        ResponseCode::Unsupported => "UNSUPPORTED",
        ResponseCode::InvalidParams => "INVALID_PARAMS",
        ResponseCode::Rejected => "REJECTED",
        ResponseCode::InternalError => "INTERNAL_ERROR",
    }
}
