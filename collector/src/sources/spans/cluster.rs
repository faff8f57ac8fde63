//! Cluster mode of the service graph (README "Cluster mode: where each signal goes"): the two spans
//! of one call are often received by collectors on different nodes, so every collector hands the
//! edge half of each span to the **owner** of its trace id, the live collector with the highest
//! rendezvous hash of (trace id, collector address), and only the owner pairs it. When a collector
//! joins or leaves only the traces it owned move.
//!
//! Pure parts here: the peer list setting, the owner choice, and the bounded per-peer queues that
//! batch what is forwarded (a full queue drops its oldest halves, counted). The shell resolves the
//! peers and sends the batches.

use std::collections::VecDeque;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::servicegraph::EdgeHalf;
use super::span::TraceId;

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

    /// Up to `max` halves for each peer that has some, taken off the queues.
    pub fn batches(&mut self, max: usize) -> Vec<(SocketAddr, Vec<EdgeHalf>)> {
        let mut out = Vec::new();
        for (peer, q) in &mut self.queues {
            if q.is_empty() {
                continue;
            }
            let n = q.len().min(max);
            out.push((*peer, q.drain(..n).collect()));
        }
        self.queues.retain(|(_, q)| !q.is_empty());
        out
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
