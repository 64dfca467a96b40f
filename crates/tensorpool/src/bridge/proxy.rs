//! One `send_<message>` per outbound message, each through the one send path.

use crate::control::{MessageSink, SendError, send_bytes};

/// Forwards a source `ShmPoolAnnounce` (as received, bytes unchanged) on the bridge control
/// channel (Bridge Spec §7.2).
pub fn send_announce(control: &mut dyn MessageSink, announce: &[u8]) -> Result<(), SendError> {
    send_bytes(control, announce)
}
