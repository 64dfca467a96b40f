//! What the bridge core keeps per mapping: the receiver's view of the most recent forwarded
//! source announce (epoch, pools) and its assembler.

use crate::chunks::Assembler;

/// Pools of a forwarded announce kept (more are ignored: frames naming them are dropped).
pub const MAX_POOLS: usize = 16;
/// Frames assembled at once per mapping.
pub const ASSEMBLY_SLOTS: usize = 4;

/// The most recent forwarded `ShmPoolAnnounce` of a mapping's source stream (Bridge Spec
/// §7.2): what chunks and headers are validated against.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SourceAnnounce {
    /// Source epoch.
    pub epoch: u64,
    pools: [(u16, u32); MAX_POOLS],
    npools: usize,
}

impl SourceAnnounce {
    /// An announce of `epoch` with `pools` (pool id, stride); pools past [`MAX_POOLS`] are
    /// ignored.
    pub fn new(epoch: u64, pools: impl IntoIterator<Item = (u16, u32)>) -> Self {
        let mut a = Self {
            epoch,
            ..Self::default()
        };
        for p in pools.into_iter().take(MAX_POOLS) {
            a.pools[a.npools] = p;
            a.npools += 1;
        }
        a
    }

    /// The largest stride of the announced pools (0 without pools).
    pub fn largest_stride(&self) -> u32 {
        self.pools[..self.npools]
            .iter()
            .map(|(_, s)| *s)
            .max()
            .unwrap_or(0)
    }

    /// The stride of source pool `pool_id`, if the announce names it.
    pub fn stride(&self, pool_id: u16) -> Option<u32> {
        self.pools[..self.npools]
            .iter()
            .find(|(id, _)| *id == pool_id)
            .map(|(_, s)| *s)
    }
}

/// One mapping's state in the core.
#[derive(Debug)]
pub struct MappingState {
    /// Source stream id (on the sending host).
    pub source_stream_id: u32,
    /// Destination stream id (on the receiving host; 0 until allocated).
    pub dest_stream_id: u32,
    /// The most recent forwarded announce (receiver); `None` until one arrives.
    pub announce: Option<SourceAnnounce>,
    /// Highest source epoch seen (receiver).
    pub highest_epoch: u64,
    /// In-flight frames (receiver); capacity 0 until the destination's pools are known.
    pub assembler: Assembler,
    /// Sender: the frame (epoch, seq) the payload publication's window could not take whole
    /// when it was tried, kept for the next duty cycle (see [`super::BridgeCore::send_frame`]).
    pub pending: Option<(u64, u64)>,
    /// Receiver: the source moved to a new epoch; the destination must move to a new local
    /// epoch before the next frame is written (Bridge Spec §8). Taken by the agent
    /// ([`super::BridgeCore::take_dest_remap`]).
    pub dest_remap_pending: bool,
}
