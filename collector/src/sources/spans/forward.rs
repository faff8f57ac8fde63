//! The shell of cluster mode: resolves the peers and sends the queued edge halves to their owners,
//! every peer on its own (at most one batch in flight each), so a peer that hangs holds up only
//! the halves queued for it; once its batch fails or times out it is marked down and the traces it
//! owned are paired by the peers that are up (see `cluster`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::task::JoinSet;

use super::cluster::{self, PeerChange, Peers};
use super::Spans;
use crate::store::Millis;

/// How the forwarding runs; [`Settings::default`] is what the collector uses.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The collector's HTTP API port: which of the peers is this collector.
    pub listen_port: u16,
    /// Most halves in one batch.
    pub batch: usize,
    /// A batch not answered in this long failed (the peer is marked down).
    pub timeout: Duration,
    /// How often queued halves are sent.
    pub send_every: Duration,
    /// How often the peers are resolved again.
    pub resolve_every: Duration,
}

impl Settings {
    pub fn new(listen_port: u16, batch: usize) -> Settings {
        Settings {
            listen_port,
            batch: batch.clamp(1, 10_000),
            timeout: Duration::from_secs(5),
            send_every: Duration::from_millis(200),
            resolve_every: Duration::from_secs(10),
        }
    }
}

/// Runs until the task is dropped. `now` gives the wall time the spans component works in.
pub async fn run(spans: Spans, peers: Peers, settings: Settings, now: fn() -> Millis) {
    let client = match reqwest::Client::builder().timeout(settings.timeout).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "spans: no HTTP client for forwarding edge halves; each collector pairs what it receives");
            return;
        }
    };
    let mut resolve = tokio::time::interval(settings.resolve_every);
    let mut send = tokio::time::interval(settings.send_every);
    send.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut warned = false;
    // The peer of each batch in flight, by task (a task that panicked still frees its peer).
    let mut busy: HashMap<tokio::task::Id, SocketAddr> = HashMap::new();
    let mut sends: JoinSet<(u64, Result<(), String>)> = JoinSet::new();
    loop {
        tokio::select! {
            _ = resolve.tick() => {
                let addrs: Vec<SocketAddr> = match &peers {
                    Peers::Static(v) => v.clone(),
                    Peers::Dns { name, port } => match tokio::net::lookup_host((name.as_str(), *port)).await {
                        Ok(a) => a.collect(),
                        Err(e) => {
                            tracing::debug!(error = %e, peers = %peers, "spans: peers not resolved; keeping the last ones");
                            continue;
                        }
                    },
                };
                let me = cluster::find_me(&addrs, settings.listen_port);
                if me.is_none() && !warned {
                    tracing::warn!(peers = %peers, resolved = ?addrs, port = settings.listen_port, "spans: this collector is not among its peers; it pairs what it receives until it is");
                    warned = true;
                }
                spans.set_peers(me, addrs, now());
            }
            _ = send.tick() => {
                for (peer, halves) in spans.take_batches(settings.batch, |p| busy.values().any(|b| b == p), now()) {
                    let request = client
                        .post(format!("http://{peer}/api/v1/spans/halves"))
                        .json(&halves);
                    let n = halves.len() as u64;
                    drop(halves);
                    let task = sends.spawn(async move {
                        let sent = request.send().await.and_then(|r| r.error_for_status());
                        (n, sent.map(drop).map_err(|e| e.to_string()))
                    });
                    busy.insert(task.id(), peer);
                }
            }
            Some(done) = sends.join_next_with_id(), if !sends.is_empty() => {
                let (id, done) = match done {
                    Ok((id, done)) => (id, Some(done)),
                    Err(e) => (e.id(), None),
                };
                let (Some(peer), Some((n, sent))) = (busy.remove(&id), done) else { continue };
                if let Err(e) = &sent {
                    tracing::debug!(error = %e, %peer, "spans: edge halves not forwarded");
                }
                match spans.sent(peer, n, sent.is_ok(), now(), fastrand::f64()) {
                    Some(PeerChange::Down { retry_in }) => tracing::warn!(
                        %peer,
                        error = sent.err().unwrap_or_default(),
                        ?retry_in,
                        "spans: peer down; the traces it owns are paired by the peers that are up until it takes edge halves again"
                    ),
                    Some(PeerChange::Up) => tracing::info!(%peer, "spans: peer up again; it pairs the traces it owns"),
                    None => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
