//! How a driver client reaches the driver: a publication to the control stream and
//! subscriptions to the control stream (responses are broadcast) and the announce stream.

use std::time::Duration;

use tensorpool_aeron::{AddError, AeronClient, Publication, Subscription};

use super::ClientConfig;
use crate::control::MessageSink;

/// The client's side of the control plane.
pub trait ClientTransport {
    /// Where requests go.
    fn control(&mut self) -> &mut dyn MessageSink;
    /// Delivers received messages (control and announce streams) to `handler`; returns how
    /// many were read.
    fn poll(&mut self, handler: &mut dyn FnMut(&[u8]), limit: usize) -> usize;
    /// When the announce subscription joined (monotonic ns), if known: announces stamped
    /// earlier are replays (Wire Spec §10.1.1).
    fn join_time_ns(&self) -> Option<u64> {
        None
    }
}

/// The Aeron transport.
#[derive(Debug)]
pub struct AeronTransport {
    control_pub: Publication,
    control_sub: Subscription,
    announce_sub: Option<Subscription>,
}

impl AeronTransport {
    /// Adds the publication and subscriptions `cfg` names (one subscription when the
    /// announce stream is the control stream).
    pub fn new(
        aeron: &AeronClient,
        cfg: &ClientConfig,
        timeout: Duration,
    ) -> Result<Self, AddError> {
        // All requested before any is waited for: about one round trip to the media driver.
        let control_pub =
            aeron.start_add_publication(&cfg.control_channel, cfg.control_stream_id, timeout)?;
        let control_sub =
            aeron.start_add_subscription(&cfg.control_channel, cfg.control_stream_id, timeout)?;
        let same = cfg.announce_channel == cfg.control_channel
            && cfg.announce_stream_id == cfg.control_stream_id;
        let announce_sub = if same {
            None
        } else {
            Some(aeron.start_add_subscription(
                &cfg.announce_channel,
                cfg.announce_stream_id,
                timeout,
            )?)
        };
        Ok(Self {
            control_pub: control_pub.wait()?,
            control_sub: control_sub.wait()?,
            announce_sub: announce_sub.map(|p| p.wait()).transpose()?,
        })
    }
}

impl ClientTransport for AeronTransport {
    fn control(&mut self) -> &mut dyn MessageSink {
        &mut self.control_pub
    }

    fn poll(&mut self, handler: &mut dyn FnMut(&[u8]), limit: usize) -> usize {
        let mut n = self.control_sub.poll(|b, _| handler(b), limit).unwrap_or(0);
        if let Some(a) = &mut self.announce_sub {
            n += a.poll(|b, _| handler(b), limit).unwrap_or(0);
        }
        n
    }

    fn join_time_ns(&self) -> Option<u64> {
        let sub = self.announce_sub.as_ref().unwrap_or(&self.control_sub);
        u64::try_from(sub.last_image_available_ns())
            .ok()
            .filter(|t| *t > 0)
    }
}
