//! The supervisor's tables: consumers and producers in preallocated slots, per-consumer
//! stream ids in preallocated pools, and who sent what (consumer-id collisions). Nothing here
//! allocates after construction.

use tensorpool_codec::wire::Mode;

use crate::config::IdRange;

/// Who is using a consumer id on one inbound stream (hellos come on the control stream, QoS
/// on the QoS stream: each has its own publication, so its own source).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SourceTrack {
    /// The source whose messages are accepted (0: unknown).
    pub owner: u64,
    /// The source displaced by the current owner (0: none).
    pub displaced: u64,
    /// Whether `displaced` spoke again after being displaced (a collision, counted once).
    pub collided: bool,
}

/// What to do with a message from a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SourceVerdict {
    /// The owner (or an unknown source): use it.
    Accept,
    /// A new source took the id over (a restarted consumer, or the second of two).
    TakeOver,
    /// The displaced source spoke again: two live consumers share the id. `first` is true
    /// the first time for this pair.
    Collision { first: bool },
}

impl SourceTrack {
    /// Observes a message from `src` (0: unknown source).
    pub fn observe(&mut self, src: u64) -> SourceVerdict {
        if src == 0 || self.owner == 0 || src == self.owner {
            if self.owner == 0 {
                self.owner = src;
            }
            return SourceVerdict::Accept;
        }
        if src == self.displaced {
            let first = !self.collided;
            self.collided = true;
            return SourceVerdict::Collision { first };
        }
        // the newest source takes the id: a consumer restarted with the same id is served at
        // once; if the displaced one speaks again, both are alive
        self.displaced = self.owner;
        self.owner = src;
        self.collided = false;
        SourceVerdict::TakeOver
    }
}

/// One per-consumer stream assignment.
#[derive(Debug, Clone, Default)]
pub(crate) struct Assignment {
    /// The assigned stream id (0: none).
    pub stream_id: u32,
    /// The assigned channel (capacity preallocated).
    pub channel: String,
}

impl Assignment {
    pub fn with_capacity(bytes: usize) -> Self {
        Self {
            stream_id: 0,
            channel: String::with_capacity(bytes),
        }
    }

    pub fn is_assigned(&self) -> bool {
        self.stream_id != 0
    }

    pub fn clear(&mut self) {
        self.stream_id = 0;
        self.channel.clear();
    }
}

/// The latest `QosConsumer` of a consumer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConsumerQos {
    /// Epoch reported.
    pub epoch: u64,
    /// Last sequence seen.
    pub last_seq_seen: u64,
    /// Sequence gaps.
    pub drops_gap: u64,
    /// Frames overwritten while read.
    pub drops_late: u64,
    /// Mode in use.
    pub mode: Option<Mode>,
    /// When it arrived (0: never).
    pub at_ns: u64,
}

/// One tracked consumer.
#[derive(Debug, Clone)]
pub(crate) struct ConsumerSlot {
    pub in_use: bool,
    pub stream_id: u32,
    pub consumer_id: u32,
    pub first_seen_ns: u64,
    pub last_seen_ns: u64,
    pub hellos: u64,
    pub supports_shm: bool,
    pub supports_progress: bool,
    pub requested_mode: Mode,
    pub requested_rate_hz: u32,
    /// What the last ConsumerConfig said.
    pub mode: Mode,
    pub use_shm: bool,
    pub rule: Option<usize>,
    pub config_sent: bool,
    pub descriptor: Assignment,
    pub control: Assignment,
    pub hello_source: SourceTrack,
    pub qos_source: SourceTrack,
    pub collisions: u64,
    pub qos: ConsumerQos,
}

impl ConsumerSlot {
    pub fn new(channel_bytes: usize) -> Self {
        Self {
            in_use: false,
            stream_id: 0,
            consumer_id: 0,
            first_seen_ns: 0,
            last_seen_ns: 0,
            hellos: 0,
            supports_shm: true,
            supports_progress: false,
            requested_mode: Mode::Stream,
            requested_rate_hz: 0,
            mode: Mode::Stream,
            use_shm: true,
            rule: None,
            config_sent: false,
            descriptor: Assignment::with_capacity(channel_bytes),
            control: Assignment::with_capacity(channel_bytes),
            hello_source: SourceTrack::default(),
            qos_source: SourceTrack::default(),
            collisions: 0,
            qos: ConsumerQos::default(),
        }
    }

    /// Starts tracking consumer `consumer_id` of `stream_id` (buffers kept).
    pub fn occupy(&mut self, stream_id: u32, consumer_id: u32, now_ns: u64) {
        self.in_use = true;
        self.stream_id = stream_id;
        self.consumer_id = consumer_id;
        self.first_seen_ns = now_ns;
        self.last_seen_ns = now_ns;
        self.hellos = 0;
        self.supports_shm = true;
        self.supports_progress = false;
        self.requested_mode = Mode::Stream;
        self.requested_rate_hz = 0;
        self.mode = Mode::Stream;
        self.use_shm = true;
        self.rule = None;
        self.config_sent = false;
        self.descriptor.clear();
        self.control.clear();
        self.hello_source = SourceTrack::default();
        self.qos_source = SourceTrack::default();
        self.collisions = 0;
        self.qos = ConsumerQos::default();
    }
}

/// Bytes kept of an announced header region URI (a longer one is not kept: its activity
/// is not read).
pub(crate) const HEADER_URI_BYTES: usize = 1024;

/// The latest view of one stream's producer.
#[derive(Debug, Clone)]
pub(crate) struct ProducerSlot {
    pub in_use: bool,
    pub alive: bool,
    pub stream_id: u32,
    pub producer_id: u32,
    pub epoch: u64,
    pub layout_version: u32,
    pub header_nslots: u32,
    pub last_announce_ns: u64,
    pub last_seen_ns: u64,
    pub current_seq: u64,
    pub qos_at_ns: u64,
    /// Frames per second between the last two `QosProducer`, x1000.
    pub frames_per_s_milli: u64,
    pub meta_version: u32,
    /// `DataSourceAnnounce.name` (capacity preallocated; truncated to it).
    pub name: String,
    /// The announced header region URI (capacity preallocated; empty when longer).
    pub header_uri: String,
    /// Last `activity_timestamp_ns` read from the header superblock of `epoch` (0: none).
    pub activity_ns: u64,
    /// The last activity read for `epoch` was stale: dead until a fresh one or a new epoch
    /// (announces and QoS of that epoch do not revive it).
    pub activity_stale: bool,
}

impl ProducerSlot {
    pub fn new(name_bytes: usize) -> Self {
        Self {
            in_use: false,
            alive: false,
            stream_id: 0,
            producer_id: 0,
            epoch: 0,
            layout_version: 0,
            header_nslots: 0,
            last_announce_ns: 0,
            last_seen_ns: 0,
            current_seq: 0,
            qos_at_ns: 0,
            frames_per_s_milli: 0,
            meta_version: 0,
            name: String::with_capacity(name_bytes),
            header_uri: String::with_capacity(HEADER_URI_BYTES),
            activity_ns: 0,
            activity_stale: false,
        }
    }

    /// Moves to `epoch`: what was read from the previous epoch's superblock is forgotten.
    pub fn set_epoch(&mut self, epoch: u64) {
        if self.epoch != epoch {
            self.epoch = epoch;
            self.activity_ns = 0;
            self.activity_stale = false;
        }
    }

    pub fn occupy(&mut self, stream_id: u32, now_ns: u64) {
        self.in_use = true;
        self.alive = true;
        self.stream_id = stream_id;
        self.producer_id = 0;
        self.epoch = 0;
        self.layout_version = 0;
        self.header_nslots = 0;
        self.last_announce_ns = 0;
        self.last_seen_ns = now_ns;
        self.current_seq = 0;
        self.qos_at_ns = 0;
        self.frames_per_s_milli = 0;
        self.meta_version = 0;
        self.name.clear();
        self.header_uri.clear();
        self.activity_ns = 0;
        self.activity_stale = false;
    }
}

/// Per-consumer stream ids of one range: which consumer slot holds each id.
#[derive(Debug, Clone)]
pub(crate) struct IdPool {
    pub range: Option<IdRange>,
    /// `owners[i]` = consumer slot + 1 holding `range.start + i` (0: free).
    owners: Vec<u32>,
}

impl IdPool {
    pub fn new(range: Option<IdRange>) -> Self {
        let len = range.map_or(0, |r| usize::try_from(r.len()).unwrap_or(0));
        Self {
            range,
            owners: vec![0; len],
        }
    }

    /// Picks an id for consumer slot `slot`: `requested` if in range and free, else the id at
    /// `consumer_id % len` from the start of the range, else the next free one after it
    /// (wrapping). Deterministic: the same consumers get the same ids whatever the order
    /// their hellos arrive in, unless two of them prefer one id. `None`: exhausted.
    pub fn allocate(&mut self, slot: usize, consumer_id: u32, requested: u32) -> Option<u32> {
        let r = self.range?;
        let len = self.owners.len();
        if len == 0 {
            return None;
        }
        let tag = u32::try_from(slot + 1).ok()?;
        if r.contains(requested) {
            let i = (requested - r.start) as usize;
            if self.owners[i] == 0 || self.owners[i] == tag {
                self.owners[i] = tag;
                return Some(requested);
            }
        }
        let preferred = consumer_id as usize % len;
        for k in 0..len {
            let i = (preferred + k) % len;
            if self.owners[i] == 0 {
                self.owners[i] = tag;
                return Some(r.start + i as u32);
            }
        }
        None
    }

    /// Releases `id` if slot `slot` holds it.
    pub fn release(&mut self, slot: usize, id: u32) {
        if let Some(r) = self.range
            && r.contains(id)
        {
            let i = (id - r.start) as usize;
            if self.owners[i] as usize == slot + 1 {
                self.owners[i] = 0;
            }
        }
    }

    /// Ids held now.
    pub fn in_use(&self) -> usize {
        self.owners.iter().filter(|o| **o != 0).count()
    }

    /// The slot holding `id` (if any).
    pub fn holder(&self, id: u32) -> Option<usize> {
        let r = self.range?;
        if !r.contains(id) {
            return None;
        }
        let o = self.owners[(id - r.start) as usize];
        (o != 0).then(|| o as usize - 1)
    }
}

/// A consumer as the supervisor sees it (for tools and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerView<'a> {
    /// Stream consumed.
    pub stream_id: u32,
    /// Consumer id.
    pub consumer_id: u32,
    /// When first seen (monotonic ns).
    pub first_seen_ns: u64,
    /// When last heard from (hello or QoS).
    pub last_seen_ns: u64,
    /// Hellos received.
    pub hellos: u64,
    /// Whether it can map SHM.
    pub supports_shm: bool,
    /// Mode it asked for.
    pub requested_mode: Mode,
    /// Rate it asked for.
    pub requested_rate_hz: u32,
    /// Mode the supervisor assigned.
    pub mode: Mode,
    /// Whether it was told to use SHM.
    pub use_shm: bool,
    /// Rate meant for it by a rule (`max_rate_hz`), if any.
    pub forced_rate_hz: Option<u32>,
    /// Index of the rule that selected it.
    pub rule: Option<usize>,
    /// Assigned per-consumer descriptor stream (`""`, 0: none).
    pub descriptor: (&'a str, u32),
    /// Assigned per-consumer control stream (`""`, 0: none).
    pub control: (&'a str, u32),
    /// Collisions seen on its id.
    pub collisions: u64,
    /// Its latest QoS.
    pub qos: ConsumerQos,
    /// How far it lags its producer: producer `current_seq` - consumer `last_seq_seen`,
    /// when both report the same epoch.
    pub lag: Option<u64>,
}

/// A stream's producer as the supervisor sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerView<'a> {
    /// Stream.
    pub stream_id: u32,
    /// Producer id (0 until known).
    pub producer_id: u32,
    /// Whether it announced or sent QoS within `producer_stale_ms`.
    pub alive: bool,
    /// Epoch announced.
    pub epoch: u64,
    /// Layout version announced.
    pub layout_version: u32,
    /// Header ring slots.
    pub header_nslots: u32,
    /// Last announce (monotonic ns; 0: never).
    pub last_announce_ns: u64,
    /// Last sequence published (QosProducer).
    pub current_seq: u64,
    /// Frames per second between the last two QosProducer messages, x1000.
    pub frames_per_s_milli: u64,
    /// `DataSourceAnnounce` name (empty: none yet).
    pub name: &'a str,
    /// Metadata version.
    pub meta_version: u32,
    /// Header region URI of the last announce (empty: none, or longer than 1024 bytes).
    pub header_uri: &'a str,
    /// Last `activity_timestamp_ns` read from that region's superblock (0: not read).
    pub activity_ns: u64,
    /// Whether that activity timestamp was stale when read (the producer is dead).
    pub activity_stale: bool,
}
