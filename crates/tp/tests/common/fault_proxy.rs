//! A UDP fault proxy for the bridge tests (test code only). The kernel of the test machines
//! has no netem, so datagram reordering, duplication and delay come from here: the proxy
//! listens on one address, forwards every datagram to the upstream address from a socket of
//! its own, and forwards the upstream's answers (Aeron status messages, NAKs) back to the
//! last client seen. Every datagram is held `delay`; `reorder_pct` % of them are held three
//! times as long (so later ones overtake them) and `duplicate_pct` % are sent twice. Loss is
//! not its business: nftables drops datagrams on the sending host.
//!
//! The proxy runs on a thread of the test process; with `netns` the thread first enters
//! that network namespace (`setns`), so its sockets live there. It stops on drop.

use std::collections::BinaryHeap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the proxy does to each datagram.
#[derive(Debug, Clone, Copy)]
pub struct Faults {
    /// Percent of datagrams held longer so that later ones overtake them.
    pub reorder_pct: u32,
    /// Percent of datagrams sent twice.
    pub duplicate_pct: u32,
    /// Delay of every datagram.
    pub delay: Duration,
}

/// What the proxy did so far.
#[derive(Debug, Default)]
pub struct ProxyStats {
    pub forwarded: AtomicU64,
    pub reordered: AtomicU64,
    pub duplicated: AtomicU64,
}

/// A running proxy; stopped and joined on drop.
pub struct FaultProxy {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    pub stats: Arc<ProxyStats>,
}

/// A datagram waiting for its time.
struct Held {
    due: Instant,
    order: u64,
    to_upstream: bool,
    bytes: Vec<u8>,
}

impl PartialEq for Held {
    fn eq(&self, o: &Self) -> bool {
        (self.due, self.order) == (o.due, o.order)
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Held {
    // a min-heap on (due, order)
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (o.due, o.order).cmp(&(self.due, self.order))
    }
}

impl FaultProxy {
    /// Listens on `listen` (inside network namespace `netns` if given) and forwards to
    /// `upstream`. Returns once the sockets are bound.
    pub fn start(
        netns: Option<&str>,
        listen: SocketAddr,
        upstream: SocketAddr,
        faults: Faults,
    ) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(ProxyStats::default());
        let (tx, rx) = std::sync::mpsc::channel();
        let ns = netns.map(str::to_owned);
        let (stop2, stats2) = (stop.clone(), stats.clone());
        let thread = std::thread::spawn(move || {
            let sockets = (|| {
                if let Some(ns) = ns {
                    let f = std::fs::File::open(format!("/run/netns/{ns}"))?;
                    nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET)
                        .map_err(std::io::Error::from)?;
                }
                let front = UdpSocket::bind(listen)?;
                let back =
                    UdpSocket::bind(SocketAddr::new(std::net::Ipv4Addr::UNSPECIFIED.into(), 0))?;
                front.set_nonblocking(true)?;
                back.set_nonblocking(true)?;
                Ok::<_, std::io::Error>((front, back))
            })();
            match sockets {
                Ok((front, back)) => {
                    let _ = tx.send(Ok(()));
                    run(&front, &back, upstream, faults, &stop2, &stats2);
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(10))
            .map_err(|_| std::io::Error::other("fault proxy did not start"))??;
        Ok(Self {
            stop,
            thread: Some(thread),
            stats,
        })
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// xorshift64*: enough randomness for fault injection.
struct Rng(u64);

impl Rng {
    fn percent(&mut self, pct: u32) -> bool {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) % 100 < u64::from(pct)
    }
}

fn run(
    front: &UdpSocket,
    back: &UdpSocket,
    upstream: SocketAddr,
    f: Faults,
    stop: &AtomicBool,
    stats: &ProxyStats,
) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ u64::from(std::process::id()));
    let mut held = BinaryHeap::new();
    let mut client: Option<SocketAddr> = None;
    let mut order = 0u64;
    let mut buf = vec![0u8; 65_536];
    while !stop.load(Ordering::Acquire) {
        let mut idle = true;
        for (sock, to_upstream) in [(front, true), (back, false)] {
            while let Ok((n, from)) = sock.recv_from(&mut buf) {
                idle = false;
                if to_upstream {
                    client = Some(from);
                }
                let now = Instant::now();
                let mut due = now + f.delay;
                if rng.percent(f.reorder_pct) {
                    due += f.delay * 2;
                    stats.reordered.fetch_add(1, Ordering::Relaxed);
                }
                let copies = if rng.percent(f.duplicate_pct) {
                    stats.duplicated.fetch_add(1, Ordering::Relaxed);
                    2
                } else {
                    1
                };
                for _ in 0..copies {
                    order += 1;
                    held.push(Held {
                        due,
                        order,
                        to_upstream,
                        bytes: buf[..n].to_vec(),
                    });
                }
            }
        }
        let now = Instant::now();
        while held.peek().is_some_and(|h: &Held| h.due <= now) {
            let h = held.pop().unwrap();
            idle = false;
            let sent = if h.to_upstream {
                back.send_to(&h.bytes, upstream)
            } else if let Some(c) = client {
                front.send_to(&h.bytes, c)
            } else {
                continue;
            };
            if sent.is_ok() {
                stats.forwarded.fetch_add(1, Ordering::Relaxed);
            }
        }
        if idle {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}
