//! The supervisor's outbound message: `ConsumerConfig`, encoded into any
//! [`MessageSink`] through [`crate::control::send`].

use tensorpool_codec::Bytes;
use tensorpool_codec::wire::{ConsumerConfig, Mode};

use crate::control::{MessageSink, SendError, send};

/// What one `ConsumerConfig` says (borrowed from the supervisor's state).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConfigAnswer<'a> {
    pub stream_id: u32,
    pub consumer_id: u32,
    pub use_shm: bool,
    pub mode: Mode,
    pub payload_fallback_uri: &'a str,
    /// Assigned descriptor stream (`""`, 0: declined or not requested).
    pub descriptor: (&'a str, u32),
    /// Assigned control stream (`""`, 0: declined or not requested).
    pub control: (&'a str, u32),
}

/// Sends `ConsumerConfig` (W §10.1.3; a decline is an empty channel with stream id 0).
pub(crate) fn send_consumer_config(
    out: &mut dyn MessageSink,
    a: &ConfigAnswer<'_>,
) -> Result<(), SendError> {
    send(
        out,
        &ConsumerConfig {
            stream_id: a.stream_id,
            consumer_id: a.consumer_id,
            use_shm: a.use_shm,
            mode: a.mode,
            descriptor_stream_id: a.descriptor.1,
            control_stream_id: a.control.1,
            payload_fallback_uri: Bytes::new(a.payload_fallback_uri.as_bytes()),
            descriptor_channel: Bytes::new(a.descriptor.0.as_bytes()),
            control_channel: Bytes::new(a.control.0.as_bytes()),
        },
    )
}
