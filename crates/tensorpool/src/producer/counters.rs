//! Producer counters (plain integers updated by the single writer; read them any time with
//! [`super::Producer::counters`]).

counters! {
    /// What the producer did since it started.
    pub struct ProducerCounters {
        /// Frames committed (seqlock committed, descriptor attempted).
        committed,
        /// Claims dropped without commit (slot left in progress, no descriptor).
        aborted,
        /// Frames dropped because no pool's stride holds them (Wire Spec §9).
        drops_no_pool,
        /// Descriptors published on the shared stream.
        descriptors_sent,
        /// Descriptors published on per-consumer streams.
        descriptors_per_consumer,
        /// Descriptors skipped on a per-consumer stream by its `max_rate_hz` cap.
        descriptors_rate_capped,
        /// Descriptors Aeron refused (back pressure, closed); the frame stays committed.
        descriptor_failures,
        /// `FrameProgress` messages published.
        progress_sent,
        /// `ShmPoolAnnounce` messages published.
        announces_sent,
        /// `QosProducer` messages published.
        qos_sent,
        /// `DataSourceAnnounce` messages published.
        data_source_sent,
        /// `DataSourceMeta` messages published.
        meta_sent,
        /// Meta blob messages (announce, chunks, complete) published.
        meta_blob_messages,
        /// `ConsumerHello` messages received for our stream.
        hellos,
        /// `QosConsumer` messages received for our stream.
        consumer_qos,
        /// `ConsumerConfig` messages sent.
        configs_sent,
        /// Per-consumer streams granted.
        per_consumer_granted,
        /// Per-consumer stream requests declined (invalid, disabled, full or failed).
        per_consumer_declined,
        /// Consumers removed as stale (their per-consumer publications closed).
        consumers_stale,
        /// Epochs installed (created standalone, or granted by the driver).
        epochs,
        /// Times the producer paused (driver mode: lease revoked or lost, driver gone).
        pauses,
        /// Other control messages Aeron refused to send.
        send_failures,
    }
}
