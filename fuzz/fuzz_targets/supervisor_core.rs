//! The supervisor core under arbitrary message sequences: raw bytes, and structured hellos
//! (with valid, invalid and absent per-consumer requests), QoS, announces and clock advances
//! from a handful of sources, with small ranges and a small table so exhaustion, refusals,
//! collisions and staleness all happen. Never panics; after every step no two live consumers
//! share an assigned stream id (`SupervisorCore::check_invariants`), and every answer is a
//! decodable `ConsumerConfig` whose assignment is either complete or an empty decline.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tensorpool::config::NoEnv;
use tensorpool::control::RecordingSink;
use tensorpool::supervisor::{SupervisorConfig, SupervisorCore};
use tensorpool_codec::wire::{
    ClockDomain, ConsumerConfig, ConsumerHello, Mode, QosConsumer, QosProducer, ShmPoolAnnounce,
};
use tensorpool_codec::{Bytes, Group, Message};

const STREAMS: [u32; 3] = [10_000, 10_001, 31_001];
const CHANNELS: [&str; 3] = ["", "aeron:ipc", "aeron:udp?endpoint=x:1"];

struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from(self.u8()?) << 8 | u32::from(self.u8()?))
    }
    fn take(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.0.len());
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head
    }
}

fn config(flags: u8) -> SupervisorConfig {
    let base = if flags & 1 == 0 { 31_000 } else { 0 };
    let text = format!(
        r#"[supervisor]
per_consumer_enabled = {}
consumer_capacity = 6
consumer_stale_ms = 20
producer_stale_ms = 20
per_consumer_descriptor_base = {base}
per_consumer_descriptor_range = 3
per_consumer_control_range = 2
per_consumer_descriptor_channel = "{}"
force_mode = {}
[[supervisor.rules]]
consumer_id = 7
force_mode = 2
max_rate_hz = 5
[[supervisor.rules]]
stream_id = 10001
force_no_shm = true
payload_fallback_uri = "bridge://b"
"#,
        flags & 2 == 0,
        if flags & 4 == 0 {
            ""
        } else {
            "aeron:ipc?alias=d"
        },
        (flags >> 3) % 3,
    );
    SupervisorConfig::from_toml(&text, &NoEnv).expect("valid config")
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let Some(flags) = input.u8() else { return };
    let mut core = SupervisorCore::new(config(flags), 0);
    let mut sink = RecordingSink::default();
    let mut now = 0u64;
    while let Some(op) = input.u8() {
        sink.clear();
        let source = u64::from(op >> 5); // 0 (unknown) .. 7
        match op % 8 {
            0 => {
                let n = usize::from(input.u8().unwrap_or(0));
                let raw = input.take(n).to_vec();
                core.on_message_from(&raw, source, now, &mut sink);
            }
            1 | 2 => {
                let Some(id) = input.u8() else { break };
                let Some(sel) = input.u8() else { break };
                let req_d = input.u32().unwrap_or(0);
                let req_c = input.u32().unwrap_or(0);
                let h = ConsumerHello {
                    stream_id: STREAMS[usize::from(sel % 3)],
                    consumer_id: u32::from(id % 12),
                    supports_shm: sel & 4 == 0,
                    supports_progress: false,
                    mode: if sel & 8 == 0 {
                        Mode::Stream
                    } else {
                        Mode::RateLimited
                    },
                    max_rate_hz: 0,
                    expected_layout_version: 1,
                    progress_interval_us: None,
                    progress_bytes_delta: None,
                    progress_major_delta_units: None,
                    descriptor_stream_id: 30_990 + req_d % 40,
                    control_stream_id: if sel & 16 == 0 {
                        0
                    } else {
                        31_990 + req_c % 20
                    },
                    descriptor_channel: Bytes::new(CHANNELS[usize::from(sel >> 5) % 3].as_bytes()),
                    control_channel: Bytes::new(CHANNELS[usize::from(sel >> 6) % 3].as_bytes()),
                };
                let buf = h.encode_to_vec().unwrap();
                // sometimes truncated
                let cut = if op & 16 != 0 {
                    buf.len() / 2
                } else {
                    buf.len()
                };
                core.on_message_from(&buf[..cut], source, now, &mut sink);
            }
            3 => {
                let Some(id) = input.u8() else { break };
                let q = QosConsumer {
                    stream_id: STREAMS[usize::from(id >> 6) % 3],
                    consumer_id: u32::from(id % 12),
                    epoch: u64::from(id & 1),
                    last_seq_seen: u64::from(input.u32().unwrap_or(0)),
                    drops_gap: 1,
                    drops_late: 2,
                    mode: Mode::Stream,
                };
                core.on_message_from(&q.encode_to_vec().unwrap(), source, now, &mut sink);
            }
            4 => {
                let Some(s) = input.u8() else { break };
                let q = QosProducer {
                    stream_id: STREAMS[usize::from(s) % 3],
                    producer_id: 1,
                    epoch: u64::from(s & 1),
                    current_seq: u64::from(input.u32().unwrap_or(0)),
                    watermark: None,
                };
                core.on_message_from(&q.encode_to_vec().unwrap(), source, now, &mut sink);
            }
            5 => {
                let Some(s) = input.u8() else { break };
                let a = ShmPoolAnnounce {
                    stream_id: STREAMS[usize::from(s) % 3],
                    producer_id: 1,
                    epoch: u64::from(s),
                    announce_timestamp_ns: now,
                    announce_clock_domain: ClockDomain::Monotonic,
                    layout_version: 1,
                    header_nslots: 8,
                    header_slot_bytes: 256,
                    payload_pools: Group::default(),
                    header_region_uri: Bytes::new(b"shm:file?path=/dev/shm/x"),
                };
                core.on_message_from(&a.encode_to_vec().unwrap(), source, now, &mut sink);
            }
            _ => {
                let step = input.u8().unwrap_or(1);
                now += u64::from(step) * 1_000_000 / 4;
                if step & 1 == 1 {
                    // a superblock activity read by the agent: any stream, epoch and age
                    let s = input.u8().unwrap_or(0);
                    let age = u64::from(input.u8().unwrap_or(0)) * 10_000_000;
                    let stream = STREAMS[usize::from(s) % 3];
                    core.on_activity(stream, u64::from(s), now.saturating_sub(age), now);
                }
                core.poll_timers(now);
            }
        }
        if let Err(e) = core.check_invariants() {
            panic!("invariant broken: {e}");
        }
        let alive = core.producers().filter(|p| p.alive).count() as u64;
        assert_eq!(alive, core.counters().producers, "producers level");
        for m in sink.messages() {
            let c = ConsumerConfig::decode(m).expect("answers decode");
            assert_eq!(c.descriptor_channel.is_empty(), c.descriptor_stream_id == 0);
            assert_eq!(c.control_channel.is_empty(), c.control_stream_id == 0);
        }
        let live: Vec<_> = core.consumers().collect();
        assert!(live.len() <= 6);
        for (i, a) in live.iter().enumerate() {
            for b in &live[i + 1..] {
                assert!(a.descriptor.1 == 0 || a.descriptor.1 != b.descriptor.1);
                assert!(a.control.1 == 0 || a.control.1 != b.control.1);
            }
        }
    }
});
