//! Cluster mode of the service graph (README "Cluster mode: where each signal goes"): the two spans
//! of one call are often received by collectors on different nodes, so every collector hands the
//! edge half of each span to the **owner** of its trace id, the live collector with the highest
//! rendezvous hash of (trace id, collector address), and only the owner pairs it. When a collector
//! joins or leaves only the traces it owned move.
//!
//! A peer that does not take a batch (refused, failed or timed out) is marked down: it is left out
//! of the owner choice, its traces paired by the owner among the peers that are up, until a retry
//! (an empty batch, after a backoff) goes through. This is safe because both halves of a trace go through the same choice (the
//! same trace id against the same up-set), so they still meet; a half that had already gone to the
//! dead owner was counted as send_failed, and collectors whose views differ for a moment lose only
//! the edges of that moment (they expire unpaired, as they did before).
//!
//! Pure parts here: the peer list setting, the owner choice, the bounded per-peer queues that
//! batch what is forwarded (a full queue drops its oldest halves, counted) and the peers' health
//! (given `now`). The shell (`forward`) resolves the peers and sends the batches.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::servicegraph::EdgeHalf;
use super::span::TraceId;
use crate::store::Millis;

/// Where the peers come from (`--spans-peers`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Peers {
    /// `dns:NAME:PORT`: every address NAME resolves to (the Swarm name `tasks.<service>`),
    /// re-resolved periodically, at PORT (the collectors' HTTP port).
    Dns { name: String, port: u16 },
    /// `ADDR,ADDR,...`: a fixed list of collector HTTP addresses.
    Static(Vec<SocketAddr>),
}

impl TryFrom<String> for Peers {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<Peers> for String {
    fn from(p: Peers) -> String {
        p.to_string()
    }
}

impl std::fmt::Display for Peers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Peers::Dns { name, port } => write!(f, "dns:{name}:{port}"),
            Peers::Static(v) => {
                let parts: Vec<String> = v.iter().map(|a| a.to_string()).collect();
                f.write_str(&parts.join(","))
            }
        }
    }
}

impl std::str::FromStr for Peers {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(rest) = s.strip_prefix("dns:") {
            let (name, port) = rest
                .rsplit_once(':')
                .ok_or_else(|| format!("{s}: expected dns:NAME:PORT"))?;
            let port: u16 = port
                .parse()
                .map_err(|_| format!("{s}: {port} is not a port"))?;
            if name.is_empty() || port == 0 {
                return Err(format!(
                    "{s}: expected dns:NAME:PORT with a name and a port"
                ));
            }
            return Ok(Peers::Dns {
                name: name.to_string(),
                port,
            });
        }
        let addrs = s
            .split(',')
            .map(|a| {
                a.trim()
                    .parse::<SocketAddr>()
                    .map_err(|_| format!("{a}: not an IP:PORT address (or use dns:NAME:PORT)"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Peers::Static(addrs))
    }
}

/// 64-bit FNV-1a then the splitmix64 finaliser: fixed (every collector, of any build, computes the
/// same owner) and well mixed.
fn score(trace: &TraceId, peer: &SocketAddr) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |b: u8| {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    };
    trace.iter().for_each(|b| feed(*b));
    match peer.ip() {
        std::net::IpAddr::V4(ip) => ip.octets().iter().for_each(|b| feed(*b)),
        std::net::IpAddr::V6(ip) => ip.octets().iter().for_each(|b| feed(*b)),
    }
    peer.port().to_be_bytes().iter().for_each(|b| feed(*b));
    let mut z = h.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The owner of `trace` among the live collectors `peers` (this one included); None without any.
pub fn owner(trace: &TraceId, peers: &[SocketAddr]) -> Option<SocketAddr> {
    peers.iter().max_by_key(|p| (score(trace, p), **p)).copied()
}

/// Counts of the forwarding queues since the last [`Outbox::take_counts`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboxCounts {
    /// Halves dropped because their peer's queue was full (the oldest go first).
    pub dropped_queue_full: u64,
}

/// The halves waiting to be forwarded, one bounded queue per peer.
#[derive(Debug)]
pub struct Outbox {
    max_per_peer: usize,
    queues: Vec<(SocketAddr, VecDeque<EdgeHalf>)>,
    counts: OutboxCounts,
}

impl Outbox {
    pub fn new(max_per_peer: usize) -> Outbox {
        Outbox {
            max_per_peer: max_per_peer.max(1),
            queues: Vec::new(),
            counts: OutboxCounts::default(),
        }
    }

    /// Queues `h` for `peer`, dropping that peer's oldest half when its queue is full.
    pub fn push(&mut self, peer: SocketAddr, h: EdgeHalf) {
        let q = match self.queues.iter().position(|(p, _)| *p == peer) {
            Some(i) => &mut self.queues[i].1,
            None => {
                self.queues.push((peer, VecDeque::new()));
                &mut self.queues.last_mut().expect("just pushed").1
            }
        };
        if q.len() >= self.max_per_peer {
            q.pop_front();
            self.counts.dropped_queue_full += 1;
        }
        q.push_back(h);
    }

    /// Up to `max` halves for each peer that has some and is not `busy` (a batch of its own still
    /// in flight), taken off the queues.
    pub fn batches(
        &mut self,
        max: usize,
        busy: impl Fn(&SocketAddr) -> bool,
    ) -> Vec<(SocketAddr, Vec<EdgeHalf>)> {
        let mut out = Vec::new();
        for (peer, q) in &mut self.queues {
            if q.is_empty() || busy(peer) {
                continue;
            }
            let n = q.len().min(max);
            out.push((*peer, q.drain(..n).collect()));
        }
        self.queues.retain(|(_, q)| !q.is_empty());
        out
    }

    /// Every half waiting for `peer`, taken off its queue (to be routed again).
    pub fn take(&mut self, peer: SocketAddr) -> Vec<EdgeHalf> {
        match self.queues.iter().position(|(p, _)| *p == peer) {
            Some(i) => self.queues.swap_remove(i).1.into(),
            None => Vec::new(),
        }
    }

    /// The peers that have halves waiting.
    pub fn peers(&self) -> Vec<SocketAddr> {
        self.queues.iter().map(|(p, _)| *p).collect()
    }

    /// Halves waiting over all peers.
    pub fn len(&self) -> usize {
        self.queues.iter().map(|(_, q)| q.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn take_counts(&mut self) -> OutboxCounts {
        std::mem::take(&mut self.counts)
    }
}

/// The collector `trace`'s halves must go to, when that is not this one (`me`). `live` lists the
/// live collectors' addresses, this one included; with no peers, or when `me` is not known yet,
/// every trace stays here.
pub fn forward_to(
    trace: &TraceId,
    me: Option<SocketAddr>,
    live: &[SocketAddr],
) -> Option<SocketAddr> {
    let me = me?;
    if live.len() <= 1 {
        return None;
    }
    owner(trace, live).filter(|o| *o != me)
}

/// Splits `halves`: those this collector owns are returned, the others queued for their owner.
pub fn route(
    halves: Vec<EdgeHalf>,
    me: Option<SocketAddr>,
    live: &[SocketAddr],
    outbox: &mut Outbox,
) -> Vec<EdgeHalf> {
    let mut keep = Vec::with_capacity(halves.len());
    for h in halves {
        match forward_to(&h.trace_id, me, live) {
            Some(o) => outbox.push(o, h),
            None => keep.push(h),
        }
    }
    keep
}

/// Base of a failing peer's backoff: 2 s after one failure, doubled per failure in a row up to
/// [`PEER_MAX_BACKOFF`] (±20%).
pub const PEER_BACKOFF: Duration = Duration::from_secs(1);
pub const PEER_MAX_BACKOFF: Duration = Duration::from_secs(60);

/// A peer's change of state, to be logged once and counted by the shell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerChange {
    /// It failed while up: its traces go to the peers that are up, and it is retried in
    /// `retry_in`.
    Down { retry_in: Duration },
    /// A batch (the retry) went through again after failing.
    Up,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Failing {
    /// Failures in a row: the backoff exponent.
    failures: u32,
    /// When it is retried.
    retry_at: Millis,
}

/// Which peers are down and when each is retried. A peer is down from a batch that failed until a
/// retry goes through; the retry is an empty batch, so a peer that is still down costs no halves.
/// Only failing peers are held, so it is as small as the peer list.
#[derive(Debug, Default)]
pub struct PeerHealth {
    failing: Vec<(SocketAddr, Failing)>,
}

impl PeerHealth {
    /// Whether `peer` owns traces: no batch of its own failed since the last that went through.
    pub fn is_up(&self, peer: &SocketAddr) -> bool {
        !self.failing.iter().any(|(p, _)| p == peer)
    }

    /// `peer` did not take a batch at `now`: it is down for the backoff of its failures in a row
    /// (`jitter` in [0, 1)). [`PeerChange::Down`] only when it was up; a failed retry just waits
    /// longer.
    pub fn failed(&mut self, peer: SocketAddr, now: Millis, jitter: f64) -> Option<PeerChange> {
        let i = match self.failing.iter().position(|(p, _)| *p == peer) {
            Some(i) => i,
            None => {
                self.failing.push((
                    peer,
                    Failing {
                        failures: 0,
                        retry_at: now,
                    },
                ));
                self.failing.len() - 1
            }
        };
        let f = &mut self.failing[i].1;
        f.failures = f.failures.saturating_add(1);
        let wait = crate::backoff::backoff(f.failures, PEER_BACKOFF, PEER_MAX_BACKOFF, jitter);
        f.retry_at = now.saturating_add(i64::try_from(wait.as_millis()).unwrap_or(i64::MAX));
        (f.failures == 1).then_some(PeerChange::Down { retry_in: wait })
    }

    /// `peer` took a batch: [`PeerChange::Up`] when it had been down.
    pub fn succeeded(&mut self, peer: SocketAddr) -> Option<PeerChange> {
        let before = self.failing.len();
        self.failing.retain(|(p, _)| *p != peer);
        (self.failing.len() < before).then_some(PeerChange::Up)
    }

    /// The peers that are down and due for their retry at `now`.
    pub fn due(&self, now: Millis) -> Vec<SocketAddr> {
        self.failing
            .iter()
            .filter(|(_, f)| now >= f.retry_at)
            .map(|(p, _)| *p)
            .collect()
    }

    /// Forgets the peers that are no longer in `live`.
    pub fn retain(&mut self, live: &[SocketAddr]) {
        self.failing.retain(|(p, _)| live.contains(p));
    }

    /// The collectors of `live` that own traces (`me` always does: it never sends to itself).
    pub fn up(&self, live: &[SocketAddr], me: Option<SocketAddr>) -> Vec<SocketAddr> {
        live.iter()
            .filter(|p| Some(**p) == me || self.is_up(p))
            .copied()
            .collect()
    }
}

/// Which of `addrs` is this collector: an address of this host (one that can be bound) at the port
/// this collector's HTTP API listens on.
pub fn find_me(addrs: &[SocketAddr], listen_port: u16) -> Option<SocketAddr> {
    addrs
        .iter()
        .copied()
        .find(|a| a.port() == listen_port && std::net::UdpSocket::bind((a.ip(), 0)).is_ok())
}

#[cfg(test)]
mod tests;
