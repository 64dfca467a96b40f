//! Role counters, and their Aeron counters.
//!
//! Each role declares its counters once, in the `counters.rs` of its folder, with the
//! `counters!` macro: a plain `Copy` snapshot struct of `u64` fields (what
//! `Producer::counters()` and friends return) and the role's private cells. A cell is the
//! single writer's `u64`; when the role has an Aeron client to allocate from, the cells that
//! name a [`Kind`] also own an Aeron counter in the media driver's counters file, and every
//! update ends with one release store of the new value into it (a plain `mov` on x86-64: no
//! read-modify-write, no allocation, no system call). AeronStat and `tp stat` show them next
//! to the media driver's own counters; a role without an Aeron client (the driver core in
//! tests) keeps the plain values.
//!
//! # Type ids
//!
//! One type id per counter kind: `tensorpool_counter_type_id(n)` (`0x5450_0000 | n`), with
//! `n` = 100 + k for the producer, 200 + k for the consumer, 300 + k for the driver (400 + k
//! is kept for the bridge), 500 + k for the supervisor, 600 + k for the rate limiter. Every role declares its kinds in its
//! own `counters.rs`; the crate root lists the tables ([`crate::COUNTER_KINDS`]) and this
//! registry takes them as data ([`find_kind`]), importing no role. `docs/tools.md` has the
//! table (the supervisor's: `docs/roles.md`).
//!
//! # Key
//!
//! Every tensorpool counter carries the same 16-byte key ([`CounterKey`], little-endian), so
//! tools can associate counters with streams and clients without parsing labels:
//!
//! | bytes | field |
//! |---|---|
//! | 0..4 | `stream_id` (u32; 0 for driver-wide counters) |
//! | 4..8 | `client_id` (u32: the producer id, the consumer id; 0 for the driver) |
//! | 8..10 | `role` (u16: 1 producer, 2 consumer, 3 driver, 4 bridge, 5 supervisor, 6 rate limiter) |
//! | 10..12 | `detail` (u16: the drop cause, response code or revoke reason of a per-cause counter; 0 otherwise) |
//! | 12..16 | `pid` (u32: the process that owns the counter) |
//!
//! Labels are for people: `tp producer frames: stream=10000 client=1`,
//! `tp consumer drops late: stream=10000 client=77`, `tp driver attaches rejected
//! invalid_params: instance=driver-01`.

use std::time::Duration;

use tensorpool_aeron::{
    AddError, AeronClient, Counter, PendingCounter, tensorpool_counter_type_id,
};

/// The role a counter belongs to (key bytes 8..10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// A producer.
    Producer = 1,
    /// A consumer.
    Consumer = 2,
    /// The SHM driver.
    Driver = 3,
    /// A bridge (reserved).
    Bridge = 4,
    /// The supervisor.
    Supervisor = 5,
    /// The rate limiter (RateLimiter v1.0; the decimator).
    RateLimiter = 6,
}

impl Role {
    /// Lower-case name, as in labels.
    pub fn name(self) -> &'static str {
        match self {
            Role::Producer => "producer",
            Role::Consumer => "consumer",
            Role::Driver => "driver",
            Role::Bridge => "bridge",
            Role::Supervisor => "supervisor",
            Role::RateLimiter => "ratelimiter",
        }
    }

    fn from_u16(v: u16) -> Option<Self> {
        Some(match v {
            1 => Role::Producer,
            2 => Role::Consumer,
            3 => Role::Driver,
            4 => Role::Bridge,
            5 => Role::Supervisor,
            6 => Role::RateLimiter,
            _ => return None,
        })
    }
}

/// One kind of counter: one type id.
#[derive(Debug, Clone, Copy)]
pub struct Kind {
    /// `n` of `tensorpool_counter_type_id(n)`.
    pub n: u16,
    /// Whose counter it is.
    pub role: Role,
    /// Short name, as in labels (`frames`, `drops`).
    pub name: &'static str,
    /// What it counts.
    pub doc: &'static str,
    /// Whether it is a level (set) rather than a running total (added to).
    pub gauge: bool,
    /// Names of the per-cause counters of this kind, by `detail` (key bytes 10..12).
    pub details: Option<fn(u16) -> Option<&'static str>>,
}

impl Kind {
    /// A running total.
    pub const fn total(n: u16, role: Role, name: &'static str, doc: &'static str) -> Self {
        Self {
            n,
            role,
            name,
            doc,
            gauge: false,
            details: None,
        }
    }

    /// A level.
    pub const fn gauge(n: u16, role: Role, name: &'static str, doc: &'static str) -> Self {
        Self {
            gauge: true,
            ..Self::total(n, role, name, doc)
        }
    }

    /// Running totals, one counter per cause named by `details`.
    pub const fn per_cause(
        n: u16,
        role: Role,
        name: &'static str,
        doc: &'static str,
        details: fn(u16) -> Option<&'static str>,
    ) -> Self {
        Self {
            details: Some(details),
            ..Self::total(n, role, name, doc)
        }
    }

    /// The Aeron counter type id.
    pub const fn type_id(&self) -> i32 {
        tensorpool_counter_type_id(self.n)
    }

    /// The name of `detail` for a per-cause kind.
    pub fn detail_name(&self, detail: u16) -> Option<&'static str> {
        self.details.and_then(|f| f(detail))
    }
}

/// The kind with `type_id`, if it is one of ours (one of [`crate::COUNTER_KINDS`]).
pub fn kind(type_id: i32) -> Option<&'static Kind> {
    find_kind(crate::COUNTER_KINDS, type_id)
}

/// The kind with `type_id` among `tables` (one table per role).
pub fn find_kind(tables: &[&[&'static Kind]], type_id: i32) -> Option<&'static Kind> {
    tables
        .iter()
        .flat_map(|kinds| kinds.iter())
        .find(|k| k.type_id() == type_id)
        .copied()
}

/// The key every tensorpool counter carries (see the module docs for the layout).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CounterKey {
    /// The data source (0: not tied to one stream).
    pub stream_id: u32,
    /// Producer id, consumer id; 0 for the driver.
    pub client_id: u32,
    /// The role.
    pub role: Role,
    /// The cause of a per-cause counter (0 otherwise).
    pub detail: u16,
    /// The owning process.
    pub pid: u32,
}

impl CounterKey {
    /// Encoded length.
    pub const LEN: usize = 16;

    /// The 16 key bytes.
    pub fn encode(&self) -> [u8; Self::LEN] {
        let mut b = [0u8; Self::LEN];
        b[0..4].copy_from_slice(&self.stream_id.to_le_bytes());
        b[4..8].copy_from_slice(&self.client_id.to_le_bytes());
        b[8..10].copy_from_slice(&(self.role as u16).to_le_bytes());
        b[10..12].copy_from_slice(&self.detail.to_le_bytes());
        b[12..16].copy_from_slice(&self.pid.to_le_bytes());
        b
    }

    /// Decodes a key: `None` if shorter than 16 bytes or the role is unknown.
    pub fn decode(key: &[u8]) -> Option<Self> {
        let b: &[u8; Self::LEN] = key.get(..Self::LEN)?.try_into().ok()?;
        let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        Some(Self {
            stream_id: u32_at(0),
            client_id: u32_at(4),
            role: Role::from_u16(u16::from_le_bytes([b[8], b[9]]))?,
            detail: u16::from_le_bytes([b[10], b[11]]),
            pid: u32_at(12),
        })
    }
}

/// One counter of a role: the single writer's value, mirrored into its Aeron counter (if
/// any) with a release store on every update.
#[derive(Debug, Default)]
pub(crate) struct Cell {
    value: u64,
    aeron: Option<Counter>,
}

impl Cell {
    /// The value.
    pub fn get(&self) -> u64 {
        self.value
    }

    /// Sets a level (a store only when it changed).
    pub fn set(&mut self, value: u64) {
        if value != self.value {
            self.value = value;
            self.publish();
        }
    }

    fn publish(&self) {
        if let Some(c) = &self.aeron {
            c.set(i64::try_from(self.value).unwrap_or(i64::MAX));
        }
    }

    /// Takes its Aeron counter (and writes the value so far into it).
    pub fn attach(&mut self, counter: Option<Counter>) {
        self.aeron = counter;
        self.publish();
    }
}

impl std::ops::AddAssign<u64> for Cell {
    fn add_assign(&mut self, n: u64) {
        self.value = self.value.wrapping_add(n);
        self.publish();
    }
}

/// Allocates the Aeron counters of one role instance, all at once: every [`Registrar::start`]
/// sends its request, [`Registrar::finish`] polls them together (bounded by the timeout).
pub(crate) struct Registrar<'c> {
    client: &'c AeronClient,
    key: CounterKey,
    /// `stream=10000 client=1`, `instance=driver-01`.
    scope: String,
    timeout: Duration,
    pending: Vec<PendingCounter>,
}

impl std::fmt::Debug for Registrar<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registrar")
            .field("key", &self.key)
            .field("pending", &self.pending.len())
            .finish()
    }
}

impl<'c> Registrar<'c> {
    /// For the counters of `role` on `stream_id` (0: none) by `client_id`; `scope` ends the
    /// labels.
    pub fn new(
        client: &'c AeronClient,
        role: Role,
        stream_id: u32,
        client_id: u32,
        scope: String,
        timeout: Duration,
    ) -> Self {
        Self {
            client,
            key: CounterKey {
                stream_id,
                client_id,
                role,
                detail: 0,
                pid: std::process::id(),
            },
            scope,
            timeout,
            pending: Vec::new(),
        }
    }

    /// Requests one counter of `kind` (with `detail` for a per-cause kind).
    pub fn start(&mut self, kind: &Kind, detail: u16) -> Result<(), AddError> {
        let key = CounterKey { detail, ..self.key }.encode();
        let role = kind.role.name();
        let label = match kind.detail_name(detail) {
            Some(d) => format!("tp {role} {} {d}: {}", kind.name, self.scope),
            None => format!("tp {role} {}: {}", kind.name, self.scope),
        };
        let pending = self
            .client
            .start_add_counter(kind.type_id(), &key, &label, self.timeout)?;
        self.pending.push(pending);
        Ok(())
    }

    /// Waits (bounded) until every requested counter is allocated; in request order.
    pub fn finish(self) -> Result<Vec<Counter>, AddError> {
        let mut pending = self.pending;
        let mut done: Vec<Option<Counter>> = pending.iter().map(|_| None).collect();
        let mut sleep = Duration::from_micros(20);
        loop {
            let mut left = 0;
            for (p, d) in pending.iter_mut().zip(done.iter_mut()) {
                if d.is_none() {
                    *d = p.poll()?;
                    left += usize::from(d.is_none());
                }
            }
            if left == 0 {
                return Ok(done.into_iter().flatten().collect());
            }
            // each pending counter carries its own deadline: poll() ends this loop with a
            // timeout error once it passes
            std::thread::sleep(sleep);
            sleep = (sleep * 2).min(Duration::from_millis(2));
        }
    }
}

/// Declares a role's counters once: the public `Copy` snapshot struct (every field a
/// documented `u64`, `table()` listing them) and the role's cells; a field followed by
/// `= KIND` (or `= KIND[detail]`) also gets an Aeron counter of that kind.
macro_rules! counters {
    (
        $(#[$meta:meta])*
        pub struct $name:ident, cells $cells:ident {
            $( $(#[doc = $doc:literal])* $field:ident $(= $kind:ident $([$detail:expr])? )?, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct $name {
            $( $(#[doc = $doc])* pub $field: u64, )*
        }

        impl $name {
            /// Every counter as (name, value), in declaration order.
            pub fn table(&self) -> impl Iterator<Item = (&'static str, u64)> + use<> {
                [ $( (stringify!($field), self.$field), )* ].into_iter()
            }
        }

        /// The role's counter cells (single writer); see [`crate::counters`].
        #[derive(Debug, Default)]
        pub(crate) struct $cells {
            $( pub $field: $crate::counters::Cell, )*
        }

        #[allow(dead_code)]
        impl $cells {
            /// The values now.
            pub fn snapshot(&self) -> $name {
                $name { $( $field: self.$field.get(), )* }
            }

            /// Requests the Aeron counters of the fields that name a kind.
            pub fn register(
                reg: &mut $crate::counters::Registrar<'_>,
            ) -> Result<(), tensorpool_aeron::AddError> {
                $( $( reg.start(&$kind, 0 $( + $detail )?)?; )? )*
                Ok(())
            }

            /// Takes the counters [`Self::register`] requested, in the same order.
            pub fn attach(&mut self, counters: &mut impl Iterator<Item = tensorpool_aeron::Counter>) {
                $( $( let _ = &$kind; self.$field.attach(counters.next()); )? )*
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_round_trip_and_short_keys() {
        let k = CounterKey {
            stream_id: 10_000,
            client_id: 0xDEAD_BEEF,
            role: Role::Consumer,
            detail: 7,
            pid: 4242,
        };
        let b = k.encode();
        assert_eq!(&b[..4], &10_000u32.to_le_bytes());
        assert_eq!(&b[8..10], &[2, 0]);
        assert_eq!(CounterKey::decode(&b), Some(k));
        assert_eq!(CounterKey::decode(&b[..15]), None);
        let mut bad = b;
        bad[8] = 9;
        assert_eq!(CounterKey::decode(&bad), None, "unknown role");
    }

    #[test]
    fn one_type_id_per_kind_in_its_roles_hundred() {
        let all: Vec<&Kind> = crate::COUNTER_KINDS
            .iter()
            .flat_map(|k| k.iter().copied())
            .collect();
        let mut ids: Vec<i32> = all.iter().map(|k| k.type_id()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), all.len(), "type ids are unique");
        for k in &all {
            assert_eq!(k.n / 100, k.role as u16, "{} in its role's range", k.name);
            assert!(tensorpool_aeron::is_tensorpool_counter_type_id(k.type_id()));
            assert_eq!(kind(k.type_id()).map(|f| f.n), Some(k.n));
        }
        assert!(kind(tensorpool_counter_type_id(999)).is_none());
    }
}
