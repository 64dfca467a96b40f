//! Streams: the static ones from `[streams]` (provisioned at startup, epoch E0, so consumers
//! can attach before any producer: PITFALLS #12) and dynamic ones created on demand from
//! `driver.stream_id_range` (Driver Model §11).

use super::files::LiveEpoch;

/// The producer holding a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerRef {
    /// Its lease.
    pub lease_id: u64,
    /// Its client id (announced as `producerId`, Driver Model §8).
    pub client_id: u32,
}

/// An epoch that is no longer live, with when it was retired (for GC's minimum age).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Retired {
    pub epoch: u64,
    pub retired_ns: u64,
}

/// One stream the driver manages.
#[derive(Debug)]
pub(crate) struct Stream {
    pub stream_id: u32,
    /// Index into the configuration's profiles.
    pub profile: usize,
    /// Created on demand (removed again when its last lease ends).
    pub dynamic: bool,
    /// The last epoch number issued (0: none yet).
    pub epoch: u64,
    /// The files of the live epoch; `None` while the stream has none (creation failed).
    pub live: Option<LiveEpoch>,
    /// The attached producer (exclusive, Driver Model §5).
    pub producer: Option<ProducerRef>,
    /// Attached consumers.
    pub consumers: u32,
    /// Announce at the next opportunity (something changed).
    pub announce_now: bool,
    /// The epoch must be bumped before the stream is served again (a bump failed).
    pub needs_bump: bool,
    /// Epochs retired by this process.
    pub retired: Vec<Retired>,
    /// GC has something to look at; retry no earlier than `gc_next_ns`.
    pub gc_pending: bool,
    pub gc_next_ns: u64,
}

impl Stream {
    pub(crate) fn new(stream_id: u32, profile: usize, dynamic: bool, previous_epoch: u64) -> Self {
        Self {
            stream_id,
            profile,
            dynamic,
            epoch: previous_epoch,
            live: None,
            producer: None,
            consumers: 0,
            announce_now: false,
            needs_bump: false,
            retired: Vec::with_capacity(8),
            gc_pending: false,
            gc_next_ns: 0,
        }
    }

    /// Makes `live` the live epoch; the previous one is retired (kept on disk for GC).
    pub(crate) fn install(&mut self, live: LiveEpoch, now_ns: u64) {
        self.epoch = live.epoch;
        if let Some(old) = self.live.replace(live) {
            self.retired.push(Retired {
                epoch: old.epoch,
                retired_ns: now_ns,
            });
            self.gc_pending = true;
        }
        self.needs_bump = false;
        self.announce_now = true;
    }

    /// Drops the live epoch (its files stay until GC) and marks the stream for a bump.
    pub(crate) fn retire_live(&mut self, now_ns: u64) {
        if let Some(old) = self.live.take() {
            self.retired.push(Retired {
                epoch: old.epoch,
                retired_ns: now_ns,
            });
            self.gc_pending = true;
        }
        self.needs_bump = true;
    }

    /// Leases on this stream.
    pub(crate) fn lease_count(&self) -> u32 {
        self.consumers + u32::from(self.producer.is_some())
    }
}

/// The streams, looked up by id (few: a linear scan).
#[derive(Debug, Default)]
pub(crate) struct StreamTable {
    streams: Vec<Stream>,
}

impl StreamTable {
    pub(crate) fn push(&mut self, s: Stream) {
        self.streams.push(s);
    }

    pub(crate) fn get(&self, stream_id: u32) -> Option<&Stream> {
        self.streams.iter().find(|s| s.stream_id == stream_id)
    }

    pub(crate) fn get_mut(&mut self, stream_id: u32) -> Option<&mut Stream> {
        self.streams.iter_mut().find(|s| s.stream_id == stream_id)
    }

    pub(crate) fn remove(&mut self, stream_id: u32) -> Option<Stream> {
        let i = self.streams.iter().position(|s| s.stream_id == stream_id)?;
        Some(self.streams.remove(i))
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Stream> {
        self.streams.iter()
    }

    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut Stream> {
        self.streams.iter_mut()
    }

    pub(crate) fn len(&self) -> usize {
        self.streams.len()
    }

    /// The `i`th stream (`i < len()`).
    pub(crate) fn at(&self, i: usize) -> &Stream {
        &self.streams[i]
    }

    /// The `i`th stream (`i < len()`), mutably.
    pub(crate) fn at_mut(&mut self, i: usize) -> &mut Stream {
        &mut self.streams[i]
    }

    /// Whether `stream_id` is taken.
    pub(crate) fn contains(&self, stream_id: u32) -> bool {
        self.get(stream_id).is_some()
    }
}
