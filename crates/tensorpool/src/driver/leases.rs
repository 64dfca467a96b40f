//! Leases (Driver Model §4.1, §4.4, §4.7-§4.9) and node ids (§4.2, TraceLink §6.2).
//!
//! Lease ids are opaque: a per-process random start, then +1 for every lease, so an id is
//! never reused while the process lives (§4.8) and ids of an earlier driver process are
//! unlikely to match ours (§4.8: not stable across restarts). The table is a vector scanned
//! linearly: leases are few, and after warm-up nothing is allocated.

use tensorpool_codec::driver::Role;

/// Largest node id the driver assigns by itself: 1 to 1023, the node field of a trace id
/// (`tracelink::NODE_ID_BITS`). A client's `desiredNodeId` may be larger.
pub(crate) const MAX_ASSIGNED_NODE_ID: u32 = (1 << crate::tracelink::NODE_ID_BITS) - 1;

/// Room reserved up front so that steady-state attaches never allocate.
pub(crate) const INITIAL_LEASE_CAPACITY: usize = 256;

/// One active lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    /// Opaque id, unique for the driver process's lifetime.
    pub lease_id: u64,
    /// Stream of the lease.
    pub stream_id: u32,
    /// Client holding it.
    pub client_id: u32,
    /// Producer or consumer.
    pub role: Role,
    /// Node id assigned (stable for the lease's lifetime).
    pub node_id: Option<u32>,
    /// Stream epoch when granted.
    pub epoch: u64,
    /// When granted (driver clock).
    pub attached_ns: u64,
    /// Expires when the clock passes this without a keepalive.
    pub expiry_ns: u64,
    /// Correlation id of the attach that created it (duplicate attaches are retries, §4.8).
    pub correlation_id: i64,
}

/// The active leases.
#[derive(Debug)]
pub(crate) struct LeaseTable {
    leases: Vec<Lease>,
    next_id: u64,
}

impl LeaseTable {
    pub(crate) fn new(first_id: u64) -> Self {
        Self {
            leases: Vec::with_capacity(INITIAL_LEASE_CAPACITY),
            // never 0 and far from the null value u64::MAX
            next_id: first_id.clamp(1, u64::MAX / 2),
        }
    }

    /// A new lease id (never reused). `None` only after 2^63 leases.
    pub(crate) fn next_id(&mut self) -> Option<u64> {
        let id = self.next_id;
        self.next_id = self.next_id.checked_add(1).filter(|n| *n < u64::MAX)?;
        Some(id)
    }

    pub(crate) fn insert(&mut self, lease: Lease) {
        self.leases.push(lease);
    }

    pub(crate) fn get(&self, lease_id: u64) -> Option<&Lease> {
        self.leases.iter().find(|l| l.lease_id == lease_id)
    }

    pub(crate) fn get_mut(&mut self, lease_id: u64) -> Option<&mut Lease> {
        self.leases.iter_mut().find(|l| l.lease_id == lease_id)
    }

    /// The lease held by `client_id`, if any (a client holds at most one, §4.8).
    pub(crate) fn by_client(&self, client_id: u32) -> Option<&Lease> {
        self.leases.iter().find(|l| l.client_id == client_id)
    }

    pub(crate) fn remove(&mut self, lease_id: u64) -> Option<Lease> {
        let i = self.leases.iter().position(|l| l.lease_id == lease_id)?;
        Some(self.leases.swap_remove(i))
    }

    /// The first lease whose expiry has passed.
    pub(crate) fn first_expired(&self, now_ns: u64) -> Option<u64> {
        self.leases
            .iter()
            .find(|l| now_ns > l.expiry_ns)
            .map(|l| l.lease_id)
    }

    /// Whether `node_id` is held by a lease.
    pub(crate) fn node_in_use(&self, node_id: u32) -> bool {
        self.leases.iter().any(|l| l.node_id == Some(node_id))
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Lease> {
        self.leases.iter()
    }

    pub(crate) fn len(&self) -> usize {
        self.leases.len()
    }

    /// Ids of the leases on `stream_id` (allocates: shutdown and tests only).
    pub(crate) fn count_role(&self, role: Role) -> usize {
        self.leases.iter().filter(|l| l.role == role).count()
    }
}

/// Node id assignment: ids are stable for a lease's lifetime and, once released, not handed
/// out again for `cooldown_ns` (TraceLink §6.2; the C peer's `node_id_reuse_cooldown_ms`).
#[derive(Debug)]
pub(crate) struct NodeIds {
    next: u32,
    cooldown_ns: u64,
    cooling: Vec<(u32, u64)>,
}

impl NodeIds {
    pub(crate) fn new(cooldown_ns: u64) -> Self {
        Self {
            next: 1,
            cooldown_ns,
            cooling: Vec::with_capacity(INITIAL_LEASE_CAPACITY),
        }
    }

    fn prune(&mut self, now_ns: u64) {
        self.cooling.retain(|&(_, until)| until > now_ns);
    }

    fn available(&self, id: u32, leases: &LeaseTable) -> bool {
        id != 0
            && id != u32::MAX
            && !leases.node_in_use(id)
            && !self.cooling.iter().any(|&(c, _)| c == id)
    }

    /// Whether `desired` could be assigned now.
    pub(crate) fn can_assign(&mut self, desired: u32, leases: &LeaseTable, now_ns: u64) -> bool {
        self.prune(now_ns);
        self.available(desired, leases)
    }

    /// Assigns `desired` (checked with [`NodeIds::can_assign`] first) or the next free id.
    pub(crate) fn assign(
        &mut self,
        desired: Option<u32>,
        leases: &LeaseTable,
        now_ns: u64,
    ) -> Option<u32> {
        self.prune(now_ns);
        if let Some(d) = desired {
            return self.available(d, leases).then_some(d);
        }
        for _ in 0..=leases.len() + self.cooling.len() {
            let candidate = self.next;
            // assigned ids stay within the 10-bit node field of trace ids (TraceLink §6.1,
            // §6.2: node ids are what producers mint trace ids with)
            self.next = if self.next >= MAX_ASSIGNED_NODE_ID {
                1
            } else {
                self.next + 1
            };
            if self.available(candidate, leases) {
                return Some(candidate);
            }
        }
        None
    }

    /// A lease gave its node id back.
    pub(crate) fn release(&mut self, node_id: u32, now_ns: u64) {
        if self.cooldown_ns > 0 {
            self.prune(now_ns);
            self.cooling
                .push((node_id, now_ns.saturating_add(self.cooldown_ns)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(id: u64, client: u32, node: u32) -> Lease {
        Lease {
            lease_id: id,
            stream_id: 1,
            client_id: client,
            role: Role::Consumer,
            node_id: Some(node),
            epoch: 1,
            attached_ns: 0,
            expiry_ns: 100,
            correlation_id: 0,
        }
    }

    #[test]
    fn lease_ids_are_never_reused() {
        let mut t = LeaseTable::new(5);
        let a = t.next_id().unwrap();
        t.insert(lease(a, 1, 1));
        t.remove(a);
        let b = t.next_id().unwrap();
        assert!(b > a);
        assert!(LeaseTable::new(0).next_id().unwrap() >= 1);
    }

    #[test]
    fn node_ids_cool_down_after_release() {
        let mut t = LeaseTable::new(1);
        let mut n = NodeIds::new(1_000);
        let id = n.assign(Some(7), &t, 0).unwrap();
        t.insert(lease(1, 1, id));
        assert!(!n.can_assign(7, &t, 0), "in use");
        t.remove(1);
        n.release(7, 10);
        assert!(!n.can_assign(7, &t, 500), "cooling down");
        assert!(n.can_assign(7, &t, 1_011), "cooldown over");
        let auto = n.assign(None, &t, 0).unwrap();
        assert_ne!(auto, 0);
        assert_ne!(auto, u32::MAX);
    }

    /// TraceLink §6.1, §6.2: the ids the driver picks fit the 10-bit node field of trace ids,
    /// wrapping past 1023 to the first free one.
    #[test]
    fn assigned_node_ids_fit_trace_ids() {
        let mut t = LeaseTable::new(1);
        let mut n = NodeIds::new(0);
        for i in 0..3_000u64 {
            let id = n.assign(None, &t, 0).unwrap();
            assert!((1..=MAX_ASSIGNED_NODE_ID).contains(&id), "{id}");
            if i == 5 {
                // one held lease is skipped when the ids wrap around
                t.insert(lease(i + 1, 1, id));
            }
        }
        assert_eq!(MAX_ASSIGNED_NODE_ID, 1023);
    }
}
