//! proptest strategies for every message; `Some` never holds a field's null value.

use proptest::collection::vec;
use proptest::prelude::*;
use tensorpool_codec::admin::*;
use tensorpool_codec::bridge::*;
use tensorpool_codec::discovery::*;
use tensorpool_codec::driver::*;
use tensorpool_codec::merge::*;
use tensorpool_codec::tracelink::*;
use tensorpool_codec::wire::*;
use tensorpool_codec::{Bytes, Group};
/// `Some` never holds the null value: on the wire it would read back as `None`.
pub fn opt<T: Arbitrary + PartialEq + Copy + std::fmt::Debug + 'static>(
    null: T,
) -> impl Strategy<Value = Option<T>> {
    prop::option::of(any::<T>().prop_filter("null value", move |v| *v != null))
}

pub fn bytes() -> impl Strategy<Value = Bytes<'static>> {
    prop_oneof![
        4 => "[ -~]{0,40}".prop_map(Bytes::from),
        2 => vec(any::<u8>(), 0..40).prop_map(Bytes::from),
        1 => vec(any::<u8>(), 0..5000).prop_map(Bytes::from),
    ]
}

pub fn group<E: tensorpool_codec::Entry<'static> + std::fmt::Debug + 'static>(
    entry: impl Strategy<Value = E>,
    max: usize,
) -> impl Strategy<Value = Group<'static, E>> {
    vec(entry, 0..max).prop_map(Group::Owned)
}

pub fn pick<T: Copy + std::fmt::Debug + 'static>(all: &'static [T]) -> impl Strategy<Value = T> {
    prop::sample::select(all)
}

pub fn payload_pool() -> impl Strategy<Value = PayloadPool<'static>> {
    (any::<u16>(), any::<u32>(), any::<u32>(), bytes()).prop_map(
        |(pool_id, pool_nslots, stride_bytes, region_uri)| PayloadPool {
            pool_id,
            pool_nslots,
            stride_bytes,
            region_uri,
        },
    )
}

pub fn shm_pool_announce() -> impl Strategy<Value = ShmPoolAnnounce<'static>> {
    let fixed = (
        any::<u32>(),
        any::<u32>(),
        any::<u64>(),
        any::<u64>(),
        pick(ClockDomain::ALL),
    );
    (
        fixed,
        any::<u32>(),
        any::<u32>(),
        any::<u16>(),
        group(payload_pool(), 5),
        bytes(),
    )
        .prop_map(
            |(
                (stream_id, producer_id, epoch, ts, clock),
                layout_version,
                header_nslots,
                header_slot_bytes,
                pools,
                uri,
            )| {
                ShmPoolAnnounce {
                    stream_id,
                    producer_id,
                    epoch,
                    announce_timestamp_ns: ts,
                    announce_clock_domain: clock,
                    layout_version,
                    header_nslots,
                    header_slot_bytes,
                    payload_pools: pools,
                    header_region_uri: uri,
                }
            },
        )
}

pub fn consumer_hello() -> impl Strategy<Value = ConsumerHello<'static>> {
    let a = (
        any::<u32>(),
        any::<u32>(),
        any::<bool>(),
        any::<bool>(),
        pick(Mode::ALL),
        any::<u32>(),
        any::<u32>(),
    );
    let b = (
        opt(u32::MAX),
        opt(u32::MAX),
        opt(u32::MAX),
        any::<u32>(),
        any::<u32>(),
        bytes(),
        bytes(),
    );
    (a, b).prop_map(
        |(
            (stream_id, consumer_id, shm, progress, mode, rate, layout),
            (i, d, u, ds, cs, dc, cc),
        )| {
            ConsumerHello {
                stream_id,
                consumer_id,
                supports_shm: shm,
                supports_progress: progress,
                mode,
                max_rate_hz: rate,
                expected_layout_version: layout,
                progress_interval_us: i,
                progress_bytes_delta: d,
                progress_major_delta_units: u,
                descriptor_stream_id: ds,
                control_stream_id: cs,
                descriptor_channel: dc,
                control_channel: cc,
            }
        },
    )
}

pub fn consumer_config() -> impl Strategy<Value = ConsumerConfig<'static>> {
    let a = (
        any::<u32>(),
        any::<u32>(),
        any::<bool>(),
        pick(Mode::ALL),
        any::<u32>(),
        any::<u32>(),
    );
    (a, bytes(), bytes(), bytes()).prop_map(
        |((stream_id, consumer_id, use_shm, mode, ds, cs), f, dc, cc)| ConsumerConfig {
            stream_id,
            consumer_id,
            use_shm,
            mode,
            descriptor_stream_id: ds,
            control_stream_id: cs,
            payload_fallback_uri: f,
            descriptor_channel: dc,
            control_channel: cc,
        },
    )
}

pub fn frame_descriptor() -> impl Strategy<Value = FrameDescriptor> {
    (
        any::<u32>(),
        any::<u64>(),
        any::<u64>(),
        opt(u64::MAX),
        opt(u32::MAX),
        opt(0u64),
    )
        .prop_map(
            |(stream_id, epoch, seq, timestamp_ns, meta_version, trace_id)| FrameDescriptor {
                stream_id,
                epoch,
                seq,
                timestamp_ns,
                meta_version,
                trace_id,
            },
        )
}

pub fn frame_progress() -> impl Strategy<Value = FrameProgress> {
    (
        any::<u32>(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        pick(FrameProgressState::ALL),
    )
        .prop_map(
            |(stream_id, epoch, seq, payload_bytes_filled, state)| FrameProgress {
                stream_id,
                epoch,
                seq,
                payload_bytes_filled,
                state,
            },
        )
}

pub fn qos_consumer() -> impl Strategy<Value = QosConsumer> {
    (any::<[u32; 2]>(), any::<[u64; 4]>(), pick(Mode::ALL)).prop_map(
        |([s, c], [e, l, g, d], mode)| QosConsumer {
            stream_id: s,
            consumer_id: c,
            epoch: e,
            last_seq_seen: l,
            drops_gap: g,
            drops_late: d,
            mode,
        },
    )
}

pub fn qos_producer() -> impl Strategy<Value = QosProducer> {
    (any::<[u32; 2]>(), any::<[u64; 2]>(), opt(u32::MAX)).prop_map(|([s, p], [e, c], watermark)| {
        QosProducer {
            stream_id: s,
            producer_id: p,
            epoch: e,
            current_seq: c,
            watermark,
        }
    })
}

pub fn tensor_header() -> impl Strategy<Value = TensorHeader> {
    let a = (
        pick(Dtype::ALL),
        pick(MajorOrder::ALL),
        any::<u8>(),
        any::<u8>(),
        pick(ProgressUnit::ALL),
        any::<u32>(),
    );
    (
        a,
        any::<[i32; 8]>(),
        any::<[i32; 8]>(),
        vec(any::<u8>(), tensor::PAD_LEN),
    )
        .prop_map(
            |(
                (dtype, major_order, ndims, pad_align, progress_unit, stride),
                dims,
                strides,
                pad,
            )| TensorHeader {
                dtype,
                major_order,
                ndims,
                pad_align,
                progress_unit,
                progress_stride_bytes: stride,
                dims,
                strides,
                pad: pad.try_into().unwrap(),
            },
        )
}

pub fn data_source_announce() -> impl Strategy<Value = DataSourceAnnounce<'static>> {
    (
        any::<[u32; 2]>(),
        any::<u64>(),
        any::<u32>(),
        bytes(),
        bytes(),
    )
        .prop_map(|([s, p], epoch, mv, name, summary)| DataSourceAnnounce {
            stream_id: s,
            producer_id: p,
            epoch,
            meta_version: mv,
            name,
            summary,
        })
}

pub fn data_source_meta() -> impl Strategy<Value = DataSourceMeta<'static>> {
    let attribute = (bytes(), bytes(), bytes()).prop_map(|(key, format, value)| Attribute {
        key,
        format,
        value,
    });
    (any::<[u32; 2]>(), any::<u64>(), group(attribute, 4)).prop_map(|([s, mv], ts, attributes)| {
        DataSourceMeta {
            stream_id: s,
            meta_version: mv,
            timestamp_ns: ts,
            attributes,
        }
    })
}

pub fn meta_blob_announce() -> impl Strategy<Value = MetaBlobAnnounce> {
    (any::<[u32; 3]>(), any::<[u64; 2]>()).prop_map(|([s, mv, bt], [len, sum])| MetaBlobAnnounce {
        stream_id: s,
        meta_version: mv,
        blob_type: bt,
        total_len: len,
        checksum: sum,
    })
}

pub fn meta_blob_chunk() -> impl Strategy<Value = MetaBlobChunk<'static>> {
    (any::<[u32; 2]>(), any::<u64>(), bytes()).prop_map(|([s, mv], off, bytes)| MetaBlobChunk {
        stream_id: s,
        meta_version: mv,
        chunk_offset: off,
        bytes,
    })
}

pub fn meta_blob_complete() -> impl Strategy<Value = MetaBlobComplete> {
    (any::<[u32; 2]>(), any::<u64>()).prop_map(|([s, mv], sum)| MetaBlobComplete {
        stream_id: s,
        meta_version: mv,
        checksum: sum,
    })
}

pub fn control_response() -> impl Strategy<Value = ControlResponse<'static>> {
    (any::<i64>(), pick(ResponseCode::ALL), bytes()).prop_map(
        |(correlation_id, code, error_message)| ControlResponse {
            correlation_id,
            code,
            error_message,
        },
    )
}

pub fn attach_request() -> impl Strategy<Value = ShmAttachRequest> {
    let a = (
        any::<i64>(),
        any::<[u32; 2]>(),
        pick(Role::ALL),
        any::<u32>(),
    );
    (
        a,
        prop::option::of(pick(PublishMode::ALL)),
        pick(HugepagesPolicy::ALL),
        opt(u32::MAX),
    )
        .prop_map(
            |((correlation_id, [s, c], role, layout), publish_mode, hp, node)| ShmAttachRequest {
                correlation_id,
                stream_id: s,
                client_id: c,
                role,
                expected_layout_version: layout,
                publish_mode,
                require_hugepages: hp,
                desired_node_id: node,
            },
        )
}

pub fn attach_response() -> impl Strategy<Value = ShmAttachResponse<'static>> {
    let a = (
        any::<i64>(),
        pick(ResponseCode::ALL),
        opt(u64::MAX),
        opt(u64::MAX),
        opt(u32::MAX),
        opt(u64::MAX),
    );
    let b = (opt(u32::MAX), opt(u32::MAX), opt(u16::MAX), opt(u32::MAX));
    (a, b, group(payload_pool(), 5), bytes(), bytes()).prop_map(
        |(
            (correlation_id, code, lease, expiry, stream, epoch),
            (layout, nslots, slot_bytes, node),
            pools,
            uri,
            err,
        )| {
            ShmAttachResponse {
                correlation_id,
                code,
                lease_id: lease,
                lease_expiry_timestamp_ns: expiry,
                stream_id: stream,
                epoch,
                layout_version: layout,
                header_nslots: nslots,
                header_slot_bytes: slot_bytes,
                node_id: node,
                payload_pools: pools,
                header_region_uri: uri,
                error_message: err,
            }
        },
    )
}

pub fn detach_request() -> impl Strategy<Value = ShmDetachRequest> {
    (
        any::<i64>(),
        any::<u64>(),
        any::<[u32; 2]>(),
        pick(Role::ALL),
    )
        .prop_map(
            |(correlation_id, lease_id, [s, c], role)| ShmDetachRequest {
                correlation_id,
                lease_id,
                stream_id: s,
                client_id: c,
                role,
            },
        )
}

pub fn detach_response() -> impl Strategy<Value = ShmDetachResponse<'static>> {
    (any::<i64>(), pick(ResponseCode::ALL), bytes()).prop_map(
        |(correlation_id, code, error_message)| ShmDetachResponse {
            correlation_id,
            code,
            error_message,
        },
    )
}

pub fn keepalive() -> impl Strategy<Value = ShmLeaseKeepalive> {
    (
        any::<u64>(),
        any::<[u32; 2]>(),
        pick(Role::ALL),
        any::<u64>(),
    )
        .prop_map(|(lease_id, [s, c], role, ts)| ShmLeaseKeepalive {
            lease_id,
            stream_id: s,
            client_id: c,
            role,
            client_timestamp_ns: ts,
        })
}

pub fn driver_shutdown() -> impl Strategy<Value = ShmDriverShutdown<'static>> {
    (any::<u64>(), pick(ShutdownReason::ALL), bytes()).prop_map(
        |(timestamp_ns, reason, error_message)| ShmDriverShutdown {
            timestamp_ns,
            reason,
            error_message,
        },
    )
}

pub fn lease_revoked() -> impl Strategy<Value = ShmLeaseRevoked<'static>> {
    (
        any::<[u64; 2]>(),
        any::<[u32; 2]>(),
        pick(Role::ALL),
        pick(LeaseRevokeReason::ALL),
        bytes(),
    )
        .prop_map(
            |([ts, lease_id], [s, c], role, reason, error_message)| ShmLeaseRevoked {
                timestamp_ns: ts,
                lease_id,
                stream_id: s,
                client_id: c,
                role,
                reason,
                error_message,
            },
        )
}

pub fn shutdown_request() -> impl Strategy<Value = ShmDriverShutdownRequest<'static>> {
    (any::<i64>(), pick(ShutdownReason::ALL), bytes(), bytes()).prop_map(
        |(correlation_id, reason, token, error_message)| ShmDriverShutdownRequest {
            correlation_id,
            reason,
            token,
            error_message,
        },
    )
}

pub fn bridge_chunk() -> impl Strategy<Value = BridgeFrameChunk<'static>> {
    let header = vec(any::<u8>(), 0..=HEADER_BYTES_MAX_LEN).prop_map(Bytes::from);
    (
        any::<u32>(),
        any::<[u64; 2]>(),
        opt(0u64),
        any::<[u32; 6]>(),
        any::<bool>(),
        header,
        bytes(),
    )
        .prop_map(
            |(
                stream_id,
                [epoch, seq],
                trace_id,
                [ci, cc, co, cl, pl, crc],
                hi,
                header_bytes,
                payload_bytes,
            )| {
                BridgeFrameChunk {
                    stream_id,
                    epoch,
                    seq,
                    trace_id,
                    chunk_index: ci,
                    chunk_count: cc,
                    chunk_offset: co,
                    chunk_length: cl,
                    payload_length: pl,
                    payload_crc32c: crc,
                    header_included: hi,
                    header_bytes,
                    payload_bytes,
                }
            },
        )
}

pub fn seq_merge_announce() -> impl Strategy<Value = SequenceMergeMapAnnounce<'static>> {
    let rule = (
        any::<u32>(),
        pick(MergeRuleType::ALL),
        opt(i32::MIN),
        opt(u32::MAX),
    )
        .prop_map(
            |(input_stream_id, rule_type, offset, window_size)| SequenceMergeRule {
                input_stream_id,
                rule_type,
                offset,
                window_size,
            },
        );
    (any::<u32>(), any::<u64>(), opt(u64::MAX), group(rule, 6)).prop_map(
        |(out_stream_id, epoch, stale, rules)| SequenceMergeMapAnnounce {
            out_stream_id,
            epoch,
            stale_timeout_ns: stale,
            rules,
        },
    )
}

pub fn ts_merge_announce() -> impl Strategy<Value = TimestampMergeMapAnnounce<'static>> {
    let rule = (
        any::<u32>(),
        pick(MergeTimeRuleType::ALL),
        pick(TimestampSource::ALL),
        opt(i64::MIN),
        opt(u64::MAX),
    )
        .prop_map(
            |(input_stream_id, rule_type, timestamp_source, offset_ns, window_ns)| {
                TimestampMergeRule {
                    input_stream_id,
                    rule_type,
                    timestamp_source,
                    offset_ns,
                    window_ns,
                }
            },
        );
    (
        any::<u32>(),
        any::<u64>(),
        opt(u64::MAX),
        pick(ClockDomain::ALL),
        opt(u64::MAX),
        group(rule, 6),
    )
        .prop_map(
            |(out_stream_id, epoch, stale, clock_domain, lateness, rules)| {
                TimestampMergeMapAnnounce {
                    out_stream_id,
                    epoch,
                    stale_timeout_ns: stale,
                    clock_domain,
                    lateness_ns: lateness,
                    rules,
                }
            },
        )
}

pub fn trace_link_set() -> impl Strategy<Value = TraceLinkSet<'static>> {
    let parent = any::<u64>().prop_map(|trace_id| Parent { trace_id });
    (any::<u32>(), any::<[u64; 3]>(), group(parent, 8)).prop_map(
        |(stream_id, [epoch, seq, trace_id], parents)| TraceLinkSet {
            stream_id,
            epoch,
            seq,
            trace_id,
            parents,
        },
    )
}

pub fn discovery_request() -> impl Strategy<Value = DiscoveryRequest<'static>> {
    let a = (
        any::<u64>(),
        any::<[u32; 2]>(),
        opt(u32::MAX),
        opt(u32::MAX),
        opt(u64::MAX),
    );
    (a, group(bytes(), 5), bytes(), bytes()).prop_map(
        |((request_id, [c, r], stream_id, producer_id, ds), tags, ch, name)| DiscoveryRequest {
            request_id,
            client_id: c,
            response_stream_id: r,
            stream_id,
            producer_id,
            data_source_id: ds,
            tags,
            response_channel: ch,
            data_source_name: name,
        },
    )
}

pub fn discovery_result() -> impl Strategy<Value = DiscoveryResult<'static>> {
    let a = (
        any::<[u32; 4]>(),
        any::<u64>(),
        any::<u16>(),
        any::<u8>(),
        opt(u64::MAX),
        any::<u32>(),
    );
    (
        a,
        group(payload_pool(), 3),
        group(bytes(), 3),
        [bytes(), bytes(), bytes(), bytes()],
    )
        .prop_map(
            |(
                ([s, p, l, n], epoch, slot_bytes, max_dims, ds, dcs),
                payload_pools,
                tags,
                [hu, dn, di, dc],
            )| DiscoveryResult {
                stream_id: s,
                producer_id: p,
                epoch,
                layout_version: l,
                header_nslots: n,
                header_slot_bytes: slot_bytes,
                max_dims,
                data_source_id: ds,
                driver_control_stream_id: dcs,
                payload_pools,
                tags,
                header_region_uri: hu,
                data_source_name: dn,
                driver_instance_id: di,
                driver_control_channel: dc,
            },
        )
}

pub fn discovery_response() -> impl Strategy<Value = DiscoveryResponse<'static>> {
    (
        any::<u64>(),
        pick(DiscoveryStatus::ALL),
        group(discovery_result(), 3),
        bytes(),
    )
        .prop_map(
            |(request_id, status, results, error_message)| DiscoveryResponse {
                request_id,
                status,
                results,
                error_message,
            },
        )
}

pub fn status_response() -> impl Strategy<Value = DriverStatusResponse<'static>> {
    (
        any::<(i64, u64, u64, u64)>(),
        pick(DriverState::ALL),
        any::<[u32; 4]>(),
        any::<[u64; 9]>(),
        bytes(),
        bytes(),
    )
        .prop_map(
            |((correlation_id, pid, start, now), state, c, n, instance_id, shm_base_dir)| {
                DriverStatusResponse {
                    correlation_id,
                    state,
                    pid,
                    start_timestamp_ns: start,
                    now_ns: now,
                    stream_count: c[0],
                    lease_count: c[1],
                    producer_count: c[2],
                    consumer_count: c[3],
                    attaches_granted: n[0],
                    attaches_rejected: n[1],
                    keepalives: n[2],
                    leases_expired: n[3],
                    leases_revoked: n[4],
                    leases_detached: n[5],
                    epoch_bumps: n[6],
                    announces_sent: n[7],
                    messages_dropped: n[8],
                    instance_id,
                    shm_base_dir,
                }
            },
        )
}

pub fn lease_entry() -> impl Strategy<Value = LeaseEntry> {
    (
        any::<(u64, u32, u32)>(),
        pick(Role::ALL),
        opt(u32::MAX),
        any::<[u64; 3]>(),
    )
        .prop_map(
            |((lease_id, stream_id, client_id), role, node_id, t)| LeaseEntry {
                lease_id,
                stream_id,
                client_id,
                role,
                node_id,
                epoch: t[0],
                attached_timestamp_ns: t[1],
                expiry_timestamp_ns: t[2],
            },
        )
}

pub fn leases_response() -> impl Strategy<Value = DriverLeasesResponse<'static>> {
    (any::<(i64, u64)>(), group(lease_entry(), 4)).prop_map(|((correlation_id, now_ns), leases)| {
        DriverLeasesResponse {
            correlation_id,
            now_ns,
            leases,
        }
    })
}

pub fn stream_entry() -> impl Strategy<Value = StreamEntry<'static>> {
    (
        any::<(u32, u32, u32, u16, u32, bool)>(),
        opt(u64::MAX),
        opt(u32::MAX),
        opt(u64::MAX),
        bytes(),
        bytes(),
    )
        .prop_map(
            |(
                (stream_id, layout_version, header_nslots, pool_count, consumer_count, dynamic),
                epoch,
                pc,
                pl,
                profile,
                uri,
            )| StreamEntry {
                stream_id,
                epoch,
                layout_version,
                header_nslots,
                pool_count,
                producer_client_id: pc,
                producer_lease_id: pl,
                consumer_count,
                dynamic,
                profile,
                header_region_uri: uri,
            },
        )
}

pub fn streams_response() -> impl Strategy<Value = DriverStreamsResponse<'static>> {
    (any::<i64>(), group(stream_entry(), 3)).prop_map(|(correlation_id, streams)| {
        DriverStreamsResponse {
            correlation_id,
            streams,
        }
    })
}
