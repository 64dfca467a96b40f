//! One small error enum per operation. Every message names what failed and what was expected.

use std::time::Duration;

/// What a wait on something outside the process was waiting for when its deadline passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WaitingFor {
    /// The media driver's CnC file (`cnc.dat`) to exist and be initialised.
    CncFile,
    /// A fresh heartbeat from the media driver's conductor in the CnC file.
    DriverHeartbeat,
    /// The media driver to acknowledge a publication registration.
    Publication,
    /// The media driver to acknowledge an exclusive publication registration.
    ExclusivePublication,
    /// The media driver to acknowledge a subscription registration.
    Subscription,
    /// The media driver to acknowledge a counter allocation.
    Counter,
}

impl std::fmt::Display for WaitingFor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WaitingFor::CncFile => "the media driver's CnC file (cnc.dat) to be created",
            WaitingFor::DriverHeartbeat => "a live heartbeat from the media driver",
            WaitingFor::Publication => "the media driver to register the publication",
            WaitingFor::ExclusivePublication => {
                "the media driver to register the exclusive publication"
            }
            WaitingFor::Subscription => "the media driver to register the subscription",
            WaitingFor::Counter => "the media driver to allocate the counter",
        })
    }
}

/// Starting, running or stopping a media driver failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DriverError {
    /// A configuration value cannot be used.
    #[error("invalid media driver configuration: {field}: {reason}")]
    InvalidConfig {
        /// The configuration field.
        field: &'static str,
        /// What was expected of it.
        reason: &'static str,
    },
    /// An Aeron C driver call failed.
    #[error("media driver: {op} failed (aeron error {code}): {message}")]
    Aeron {
        /// The C function that failed.
        op: &'static str,
        /// Aeron's error code.
        code: i32,
        /// Aeron's error message.
        message: String,
    },
    /// Installing a signal handler failed.
    #[error("media driver: cannot install the handler for signal {signal} (errno {errno})")]
    SignalHandler {
        /// The signal number.
        signal: i32,
        /// The OS error number.
        errno: i32,
    },
    /// The driver stopped but its directory is still there.
    #[error("media driver: directory {dir} was not removed on shutdown: {message}")]
    DirNotRemoved {
        /// The Aeron directory.
        dir: String,
        /// Why it could not be removed.
        message: String,
    },
}

/// Connecting a client to a media driver failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    /// An argument (the Aeron directory, the client name) cannot be passed to Aeron.
    #[error("aeron client: invalid {what} {value:?}: {reason}")]
    InvalidArgument {
        /// Which argument (`"Aeron directory"`, `"client name"`).
        what: &'static str,
        /// The value as given (lossy).
        value: String,
        /// What was expected of it.
        reason: &'static str,
    },
    /// No media driver answered before the deadline.
    #[error(
        "aeron client: no media driver in {dir} answered within {waited:?}: timed out waiting for {waiting_for}"
    )]
    Timeout {
        /// The Aeron directory.
        dir: String,
        /// What did not arrive.
        waiting_for: WaitingFor,
        /// How long the client waited.
        waited: Duration,
    },
    /// An Aeron C client call failed.
    #[error("aeron client: {op} failed (aeron error {code}): {message}")]
    Aeron {
        /// The C function that failed.
        op: &'static str,
        /// Aeron's error code.
        code: i32,
        /// Aeron's error message.
        message: String,
    },
}

/// Adding a publication, subscription or counter failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddError {
    /// A string argument contains a NUL byte, which C strings cannot carry.
    #[error("aeron: {what} must not contain a NUL byte")]
    ContainsNul {
        /// Which argument (`"channel"`, `"label"`).
        what: &'static str,
    },
    /// An argument is longer than Aeron allows.
    #[error("aeron: {what} is {len} bytes, at most {max} allowed")]
    TooLong {
        /// Which argument (`"counter key"`, `"counter label"`).
        what: &'static str,
        /// Its length.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// The media driver did not answer before the deadline.
    #[error("aeron: timed out after {waited:?} waiting for {waiting_for}")]
    Timeout {
        /// What did not arrive.
        waiting_for: WaitingFor,
        /// How long the client waited.
        waited: Duration,
    },
    /// The client or the media driver rejected the request (bad channel, driver gone, ...).
    #[error("aeron: {op} failed (aeron error {code}): {message}")]
    Rejected {
        /// The C function that reported the failure.
        op: &'static str,
        /// Aeron's error code.
        code: i32,
        /// Aeron's error message (the driver's reason, for a registration error).
        message: String,
    },
}

/// Publishing a message failed. `is_retryable` tells a caller whether trying again later can
/// succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum PublishError {
    /// No subscriber is connected to the publication.
    #[error("publication not connected: no subscriber is attached")]
    NotConnected,
    /// The subscribers have not kept up: the publication limit is reached.
    #[error("publication back-pressured: subscribers have not consumed enough to make room")]
    BackPressured,
    /// An administrative action (term rotation) is in progress; retry at once.
    #[error("publication admin action (term rotation) in progress; retry")]
    AdminAction,
    /// The publication is closed (by the caller, or because the client lost its driver).
    #[error("publication closed")]
    Closed,
    /// The stream reached its maximum position and cannot carry more data.
    #[error("publication reached its maximum stream position")]
    MaxPositionExceeded,
    /// The message does not fit the path asked for.
    #[error("message of {len} bytes is too long: at most {max} bytes allowed")]
    TooLong {
        /// The message length.
        len: usize,
        /// The maximum for this path (claim or offer).
        max: usize,
    },
    /// Aeron returned an unexpected result.
    #[error("publication failed with aeron result {result}")]
    Failed {
        /// The raw Aeron result.
        result: i64,
    },
}

impl PublishError {
    /// Whether the same call can succeed later (not connected yet, back-pressured, admin action).
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            PublishError::NotConnected | PublishError::BackPressured | PublishError::AdminAction
        )
    }
}

/// `try_claim` or `publish` failed: either the publication refused, or the caller's fill
/// function returned an error (and the claim was aborted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum ClaimError<E> {
    /// The publication refused the claim or offer.
    #[error(transparent)]
    Publish(#[from] PublishError),
    /// The fill function failed; nothing was published.
    #[error("filling the claimed buffer failed: {0}")]
    Fill(E),
}

/// Polling a subscription failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum PollError {
    /// The subscription is closed.
    #[error("subscription closed")]
    Closed,
    /// Aeron reported an error while polling.
    #[error("subscription poll failed (aeron error {code})")]
    Failed {
        /// Aeron's error code.
        code: i32,
    },
    /// The client lost its media driver (no heartbeat within the client's driver timeout):
    /// Aeron closed every publication and subscription; nothing will arrive any more.
    #[error("the Aeron media driver is lost (no heartbeat within the driver timeout)")]
    MediaDriverLost,
}
