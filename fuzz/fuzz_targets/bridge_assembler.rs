//! The bridge receiver under arbitrary chunk sequences: the chunks of a few real frames
//! (sent by the bridge's own sender, with and without CRC32C) dropped, duplicated, reordered,
//! corrupted byte by byte and mixed with raw bytes, forwarded announces of two epochs and
//! clock advances with the assembly timeout run. Never panics; every frame handed on is
//! byte for byte the frame the sender sent with that sequence, and is handed on once.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tensorpool::bridge::{Assembled, BridgeConfig, BridgeCore, SourceFrame};
use tensorpool::config::NoEnv;
use tensorpool::control::RecordingSink;
use tensorpool_codec::wire::{ClockDomain, PayloadPool, ShmPoolAnnounce};
use tensorpool_codec::{Bytes, Group, Message};
use tensorpool_shm::tensor::{Dtype, MajorOrder, new_header};

const SOURCE: u32 = 10_000;
const STRIDE: u32 = 8192;
const MS: u64 = 1_000_000;

fn core(crc: bool) -> BridgeCore {
    let cfg = BridgeConfig::from_toml(
        &format!(
            "[bridge]\ninstance_id = \"f\"\npayload_channel = \"aeron:udp?endpoint=127.0.0.1:1\"\npayload_stream_id = 1\ncontrol_channel = \"aeron:udp?endpoint=127.0.0.1:2\"\ncontrol_stream_id = 2\nchunk_bytes = 300\nassembly_timeout_ms = 5\nintegrity_crc32c = {crc}\n[[mappings]]\nsource_stream_id = {SOURCE}\ndest_stream_id = 20000\nprofile = \"p\"\n"
        ),
        &NoEnv,
    )
    .unwrap();
    let mut c = BridgeCore::new(&cfg);
    c.set_local_capacity(0, 20_000, STRIDE);
    c
}

fn announce(epoch: u64) -> Vec<u8> {
    let pools = [PayloadPool {
        pool_id: 1,
        pool_nslots: 8,
        stride_bytes: STRIDE,
        region_uri: Bytes::new(b"shm:file?path=/dev/shm/p"),
    }];
    ShmPoolAnnounce {
        stream_id: SOURCE,
        producer_id: 1,
        epoch,
        announce_timestamp_ns: 0,
        announce_clock_domain: ClockDomain::Monotonic,
        layout_version: 1,
        header_nslots: 8,
        header_slot_bytes: 256,
        payload_pools: Group::Slice(&pools),
        header_region_uri: Bytes::new(b"shm:file?path=/dev/shm/h"),
    }
    .encode_to_vec()
    .unwrap()
}

fn payload(epoch: u64, seq: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u64 ^ seq.wrapping_mul(131) ^ epoch << 5) as u8)
        .collect()
}

fn frame_chunks(tx: &mut BridgeCore, epoch: u64, seq: u64, len: usize) -> Vec<Vec<u8>> {
    let t = new_header(Dtype::Uint8, MajorOrder::Row, &[len as i32], &[0]).unwrap();
    let h = tensorpool_shm::slot::slot_for_frame(seq, 0, 1, len as u32, &t);
    let mut hb = [0u8; 256];
    tensorpool_shm::slot::encode_slot(&h, &mut hb).unwrap();
    let data = payload(epoch, seq, len);
    let mut sink = RecordingSink::with_capacity(64, 1 << 16);
    tx.send_frame(
        &SourceFrame {
            stream_id: SOURCE,
            epoch,
            seq,
            trace_id: seq,
            header: &hb,
            payload: &data,
        },
        &mut || true,
        &mut sink,
    );
    sink.messages().map(<[u8]>::to_vec).collect()
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, mut data)) = data.split_first() else {
        return;
    };
    let crc = flags & 1 == 1;
    let mut tx = core(crc);
    let mut rx = core(crc);
    let lens = [1usize, 299, 300, 1000, 2500, 8192];
    let mut pool: Vec<(u64, u64, Vec<u8>)> = Vec::new();
    for epoch in 1..=2u64 {
        for seq in 1..=4u64 {
            let len = lens[((seq + epoch) as usize + usize::from(flags >> 1)) % lens.len()];
            for c in frame_chunks(&mut tx, epoch, seq, len) {
                pool.push((epoch, seq, c));
            }
        }
    }
    let mut now = 0u64;
    let mut seen = std::collections::HashSet::new();
    let mut corrupted = false;
    let take = |n: usize, d: &mut &[u8]| -> Vec<u8> {
        let n = n.min(d.len());
        let (h, r) = d.split_at(n);
        *d = r;
        h.to_vec()
    };
    while let Some((&op, rest)) = data.split_first() {
        data = rest;
        let arg = data.first().copied().unwrap_or(0);
        data = data.get(1..).unwrap_or_default();
        let msg: Vec<u8> = match op % 6 {
            0 | 1 => pool[usize::from(arg) % pool.len()].2.clone(),
            2 => {
                let mut m = pool[usize::from(arg) % pool.len()].2.clone();
                let b = take(2, &mut data);
                if let [pos, x] = b[..] {
                    let i = usize::from(pos) % m.len();
                    m[i] ^= x;
                }
                m
            }
            3 => {
                rx.on_control(&announce(u64::from(arg % 3)), now);
                continue;
            }
            4 => {
                now += u64::from(arg) * MS / 16;
                rx.poll_timers(now);
                continue;
            }
            _ => take(usize::from(arg), &mut data),
        };
        corrupted |= op % 6 == 2 || op % 6 == 5;
        let mut bad = None;
        rx.on_chunk(&msg, now, &mut |f: &Assembled<'_>| {
            let once = seen.insert((f.epoch, f.seq));
            let exact = *f.payload == payload(f.epoch, f.seq, f.payload.len())[..]
                && f.trace_id == Some(f.seq);
            // a corrupted byte the CRC does not cover (no CRC, or a chunk field) cannot
            // always be detected (Bridge Spec §5.4): bytes are checked for runs of loss,
            // duplication and reordering; a frame is never handed on twice in any run
            if !once || (!corrupted && !exact) {
                bad = Some((f.epoch, f.seq));
            }
            true
        });
        if let Some(b) = bad {
            panic!("frame {b:?} handed on with wrong bytes or twice");
        }
    }
});
