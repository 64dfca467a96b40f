//! The driver client's outbound messages, one `send_<message>` each, every one through
//! [`crate::control::send`] (its bounded retry rule; never a wait).

use tensorpool_codec::driver::{ShmAttachRequest, ShmDetachRequest, ShmLeaseKeepalive};

use crate::control::{MessageSink, SendError, send};

/// `ShmAttachRequest` (Driver Model §4.2).
pub(super) fn send_attach(
    sink: &mut dyn MessageSink,
    req: &ShmAttachRequest,
) -> Result<(), SendError> {
    send(sink, req)
}

/// `ShmLeaseKeepalive` (§4.4).
pub(super) fn send_keepalive(
    sink: &mut dyn MessageSink,
    ka: &ShmLeaseKeepalive,
) -> Result<(), SendError> {
    send(sink, ka)
}

/// `ShmDetachRequest` (§4.9).
pub(super) fn send_detach(
    sink: &mut dyn MessageSink,
    req: &ShmDetachRequest,
) -> Result<(), SendError> {
    send(sink, req)
}
