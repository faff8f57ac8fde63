//! OTLP spans into RED metrics and a service graph, as the OTel collector's spanmetrics and
//! servicegraph connectors make them (their names, labels, buckets and defaults).
//!
//! The OTLP receiver decodes an `ExportTraceServiceRequest` and hands its resource spans to
//! [`Spans::consume`]; `span` gives the compact view both connectors read, `spanmetrics` the calls
//! and duration series. [`Spans::flush`] writes every series into the store through the ingest
//! handle, once per collector interval (the shell calls it). Pure parts get `now` from the caller.

pub mod cluster;
pub mod config;
pub mod forward;
pub mod normalize;
pub mod servicegraph;
pub mod span;
pub mod spanmetrics;
#[cfg(test)]
mod tests;
pub mod topology;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::trace::v1::ResourceSpans;

pub use cluster::{PeerChange, Peers};
pub use config::{Dimension, SpansConfig};
pub use servicegraph::{EdgeHalf, ServiceGraph};
pub use span::{visit, Reject, SpanKind, SpanView, StatusCode, Visited};
pub use spanmetrics::SpanMetrics;

use crate::store::{
    Batch, FamilyId, Ingest, IngestError, Limits, Millis, SeriesRef, SourceDesc, SourceId, Value,
};

/// The `source` of the spans component's series in the store and its ingest metrics.
pub const SOURCE: &str = "spans";

pub const RECEIVED: &str = "plimsoll_spans_received_total";
pub const REJECTED: &str = "plimsoll_spans_rejected_total";
pub const SPANMETRICS_SERIES: &str = "plimsoll_spanmetrics_series";
pub const SPANMETRICS_OVERFLOW: &str = "plimsoll_spanmetrics_overflow_spans_total";
pub const SPANMETRICS_EXPIRED: &str = "plimsoll_spanmetrics_series_expired_total";
pub const GRAPH_EDGES: &str = "plimsoll_servicegraph_edges_total";
pub const GRAPH_EXPIRED: &str = "plimsoll_servicegraph_expired_total";
pub const GRAPH_DROPPED: &str = "plimsoll_servicegraph_dropped_total";
pub const GRAPH_PENDING: &str = "plimsoll_servicegraph_pending";
pub const GRAPH_SERIES: &str = "plimsoll_servicegraph_series";
pub const FORWARDED: &str = "plimsoll_servicegraph_forwarded_total";
pub const FORWARD_DROPPED: &str = "plimsoll_servicegraph_forward_dropped_total";
pub const FORWARD_QUEUED: &str = "plimsoll_servicegraph_forward_queued";
pub const FORWARD_RECEIVED: &str = "plimsoll_servicegraph_forward_received_total";
pub const FORWARD_REROUTED: &str = "plimsoll_servicegraph_forward_rerouted_total";
pub const PEER_UP: &str = "plimsoll_spans_peer_up";
pub const PEER_DOWN: &str = "plimsoll_spans_peer_down_total";

/// Describes the component's own metrics and shows every reason at zero from the start.
fn describe() {
    metrics::describe_counter!(RECEIVED, "OTLP spans accepted.");
    metrics::describe_counter!(
        REJECTED,
        "OTLP spans rejected (reported as partial success), by reason."
    );
    metrics::describe_gauge!(
        SPANMETRICS_SERIES,
        "Span metric series held (overflow series included)."
    );
    metrics::describe_counter!(
        SPANMETRICS_OVERFLOW,
        "Spans counted into an otel_metric_overflow series because their series would pass max_series_per_service or max_series."
    );
    metrics::describe_counter!(
        SPANMETRICS_EXPIRED,
        "Span metric series forgotten after series_ttl without a span."
    );
    metrics::describe_counter!(
        GRAPH_EDGES,
        "Service graph edges counted, by how they were made: paired (a client and a server span met), database (a client span with a database name), virtual_node (a span expired unpaired into an edge to or from a virtual node)."
    );
    metrics::describe_counter!(
        GRAPH_EXPIRED,
        "Spans that waited graph_wait in the pairing store without the other span of their call."
    );
    metrics::describe_counter!(
        GRAPH_DROPPED,
        "Spans or edges the service graph could not count, by reason: store_full (graph_max_items spans waiting), series_limit (graph_max_series edge series)."
    );
    metrics::describe_gauge!(
        GRAPH_PENDING,
        "Spans waiting in the pairing store for the other span of their call."
    );
    metrics::describe_gauge!(GRAPH_SERIES, "Service graph edge series held.");
    for r in Reject::ALL {
        metrics::counter!(REJECTED, "reason" => r.as_str()).increment(0);
    }
    metrics::describe_counter!(
        FORWARDED,
        "Edge halves sent to the collector that owns their trace (cluster mode)."
    );
    metrics::describe_counter!(
        FORWARD_DROPPED,
        "Edge halves not forwarded, by reason: queue_full (the peer's queue held forward_queue halves; the oldest went), send_failed (the peer did not take the batch)."
    );
    metrics::describe_gauge!(FORWARD_QUEUED, "Edge halves waiting to be forwarded.");
    metrics::describe_counter!(
        FORWARD_RECEIVED,
        "Edge halves other collectors forwarded to this one."
    );
    metrics::describe_counter!(
        FORWARD_REROUTED,
        "Edge halves whose owner was marked down, routed to the owner among the peers that are up (this collector or another) instead."
    );
    metrics::describe_gauge!(
        PEER_UP,
        "1 while the peer takes the edge halves forwarded to it, 0 from a failed or timed out batch until one goes through again (meanwhile it is retried after a backoff)."
    );
    metrics::describe_counter!(
        PEER_DOWN,
        "Times the peer was marked down (a batch failed or timed out while it was up)."
    );
    metrics::counter!(FORWARD_REROUTED).increment(0);
    for reason in ["queue_full", "send_failed"] {
        metrics::counter!(FORWARD_DROPPED, "reason" => reason).increment(0);
    }
    for how in ["paired", "database", "virtual_node"] {
        metrics::counter!(GRAPH_EDGES, "how" => how).increment(0);
    }
    for reason in ["store_full", "series_limit"] {
        metrics::counter!(GRAPH_DROPPED, "reason" => reason).increment(0);
    }
}

struct State {
    spanmetrics: SpanMetrics,
    graph: ServiceGraph,
    /// This collector's address among `live`, the live collectors of the cluster (cluster mode).
    me: Option<SocketAddr>,
    live: Vec<SocketAddr>,
    health: cluster::PeerHealth,
    /// The collectors of `live` that own traces (those not down).
    up: Vec<SocketAddr>,
    outbox: cluster::Outbox,
}

impl State {
    /// Pairs `h` here or queues it for the owner of its trace among the collectors that are up.
    fn place(&mut self, h: EdgeHalf, now: Millis) {
        match cluster::forward_to(&h.trace_id, self.me, &self.up) {
            Some(owner) => self.outbox.push(owner, h),
            None => self.graph.add(h, now),
        }
    }

    /// Makes the owner choice again and routes again what waits for peers that are gone or down;
    /// returns how many halves.
    fn reroute(&mut self, now: Millis) -> u64 {
        self.up = self.health.up(&self.live, self.me);
        let mut n = 0;
        for peer in self.outbox.peers() {
            if !self.up.contains(&peer) {
                for h in self.outbox.take(peer) {
                    n += 1;
                    self.place(h, now);
                }
            }
        }
        n
    }
}

/// The running component: aggregation state behind one lock, and where it writes.
#[derive(Clone)]
pub struct Spans {
    state: Arc<Mutex<State>>,
    ingest: Ingest,
    source: SourceId,
    families: spanmetrics::Families,
    graph_families: servicegraph::Families,
}

impl Spans {
    /// Registers the source and its families with the store. `interval` is how often the shell
    /// calls [`Spans::flush`]; series stay fresh for two of them.
    pub fn new(
        config: &SpansConfig,
        ingest: &Ingest,
        interval: Duration,
    ) -> Result<Spans, IngestError> {
        describe();
        let source = ingest.register_source(SourceDesc {
            name: SOURCE,
            stale_after: interval * 2,
            limits: Limits {
                max_series_per_family: Some((config.max_series + 1).max(config.graph_max_series)),
                max_series_per_source: None,
            },
        })?;
        Ok(Spans {
            state: Arc::new(Mutex::new(State {
                spanmetrics: config.spanmetrics(),
                graph: config.servicegraph(),
                me: None,
                live: Vec::new(),
                health: cluster::PeerHealth::default(),
                up: Vec::new(),
                outbox: cluster::Outbox::new(config.forward_queue),
            })),
            ingest: ingest.clone(),
            source,
            families: spanmetrics::Families::register(ingest)?,
            graph_families: servicegraph::Families::register(ingest)?,
        })
    }

    /// Counts the spans of one export request; returns what was accepted and rejected (for the
    /// partial-success answer).
    pub fn consume(&self, resources: &[ResourceSpans], now: Millis) -> Visited {
        let mut guard = self.state.lock().expect("spans lock");
        let st = &mut *guard;
        let v = visit(resources, |s| {
            st.spanmetrics.observe(s, now);
            if let Some(h) = st.graph.half(s) {
                st.place(h, now);
            }
        });
        drop(guard);
        metrics::counter!(RECEIVED).increment(v.accepted);
        for r in Reject::ALL {
            let n = v.count(r);
            if n > 0 {
                metrics::counter!(REJECTED, "reason" => r.as_str()).increment(n);
            }
        }
        v
    }

    /// Sets the live collectors of the cluster and which of them this one is (cluster mode); from
    /// now on the halves of the traces another one owns are queued for it, and what waited for a
    /// collector that left is routed again.
    pub fn set_peers(&self, me: Option<SocketAddr>, mut live: Vec<SocketAddr>, now: Millis) {
        live.sort();
        live.dedup();
        let mut st = self.state.lock().expect("spans lock");
        st.me = me;
        st.health.retain(&live);
        st.live = live;
        st.reroute(now);
    }

    /// Up to `max` queued halves for each peer that is not `busy`, to be sent to it, and an empty
    /// batch for each peer that is down and due for its retry at `now` (a peer that is down has no
    /// halves: what waited for it was routed again).
    pub fn take_batches(
        &self,
        max: usize,
        busy: impl Fn(&SocketAddr) -> bool,
        now: Millis,
    ) -> Vec<(SocketAddr, Vec<EdgeHalf>)> {
        let mut st = self.state.lock().expect("spans lock");
        let mut out = st.outbox.batches(max, &busy);
        for peer in st.health.due(now) {
            if !busy(&peer) {
                out.push((peer, Vec::new()));
            }
        }
        out
    }

    /// What came of sending a batch of `n` halves to `peer` at `now`: counted, and a peer that did
    /// not take it is marked down (`jitter` in [0, 1) spreads its retry), the halves waiting for
    /// it routed again. Returns the peer's change of state for the shell to log.
    pub fn sent(
        &self,
        peer: SocketAddr,
        n: u64,
        ok: bool,
        now: Millis,
        jitter: f64,
    ) -> Option<PeerChange> {
        let label = peer.to_string();
        let mut st = self.state.lock().expect("spans lock");
        let change = if ok {
            st.health.succeeded(peer)
        } else {
            st.health.failed(peer, now, jitter)
        };
        let rerouted = if change.is_some() { st.reroute(now) } else { 0 };
        drop(st);
        if ok {
            metrics::counter!(FORWARDED).increment(n);
        } else {
            metrics::counter!(FORWARD_DROPPED, "reason" => "send_failed").increment(n);
        }
        metrics::counter!(FORWARD_REROUTED).increment(rerouted);
        match change {
            Some(PeerChange::Down { .. }) => {
                metrics::gauge!(PEER_UP, "peer" => label.clone()).set(0.0);
                metrics::counter!(PEER_DOWN, "peer" => label).increment(1);
            }
            Some(PeerChange::Up) => metrics::gauge!(PEER_UP, "peer" => label).set(1.0),
            None if ok => metrics::gauge!(PEER_UP, "peer" => label).set(1.0),
            None => {}
        }
        change
    }

    /// The collectors that own traces (those not down).
    #[cfg(test)]
    pub(crate) fn up_peers(&self) -> Vec<SocketAddr> {
        self.state.lock().expect("spans lock").up.clone()
    }

    /// Halves waiting to be forwarded.
    pub fn queued(&self) -> usize {
        self.state.lock().expect("spans lock").outbox.len()
    }

    /// Halves another collector forwarded here: they pair (or expire) as the ones received here do,
    /// whether or not this collector still owns their trace.
    pub fn receive_halves(&self, halves: Vec<EdgeHalf>, now: Millis) {
        let n = halves.len() as u64;
        let mut st = self.state.lock().expect("spans lock");
        for h in halves {
            st.graph.add(h, now);
        }
        drop(st);
        metrics::counter!(FORWARD_RECEIVED).increment(n);
    }

    /// Expires idle series and writes every series into the store at `now`.
    pub fn flush(&self, now: Millis) {
        let mut guard = self.state.lock().expect("spans lock");
        let st = &mut *guard;
        st.spanmetrics.expire(now);
        st.graph.expire(now);
        let (fams, gfams) = (self.families, self.graph_families);
        self.ingest.batch(self.source, now, |b| {
            st.spanmetrics.flush(fams, b);
            st.graph.flush(gfams, b);
        });
        let g = st.graph.take_counts();
        metrics::gauge!(GRAPH_PENDING).set(st.graph.pending() as f64);
        metrics::gauge!(GRAPH_SERIES).set(st.graph.series() as f64);
        metrics::counter!(GRAPH_EDGES, "how" => "paired").increment(g.paired);
        metrics::counter!(GRAPH_EDGES, "how" => "database").increment(g.database);
        metrics::counter!(GRAPH_EDGES, "how" => "virtual_node").increment(g.virtual_edges);
        metrics::counter!(GRAPH_EXPIRED).increment(g.expired);
        metrics::counter!(GRAPH_DROPPED, "reason" => "store_full").increment(g.dropped_store_full);
        metrics::counter!(GRAPH_DROPPED, "reason" => "series_limit")
            .increment(g.dropped_series_limit);
        let o = st.outbox.take_counts();
        metrics::counter!(FORWARD_DROPPED, "reason" => "queue_full")
            .increment(o.dropped_queue_full);
        metrics::gauge!(FORWARD_QUEUED).set(st.outbox.len() as f64);
        let c = st.spanmetrics.take_counts();
        metrics::gauge!(SPANMETRICS_SERIES).set(st.spanmetrics.len() as f64);
        metrics::counter!(SPANMETRICS_OVERFLOW).increment(c.overflowed);
        metrics::counter!(SPANMETRICS_EXPIRED).increment(c.series_expired);
    }
}

/// Puts `v` into the cached series, resolving it (again) when it is unknown or gone; a series the
/// store refuses is counted there and tried again at the next flush.
pub(crate) fn put_series(
    b: &mut Batch<'_>,
    fam: FamilyId,
    cached: &mut Option<SeriesRef>,
    labels: &[(Arc<str>, Box<str>)],
    v: Value<'_>,
) {
    if let Some(s) = *cached {
        if b.is_live(s) {
            b.put(s, v);
            return;
        }
    }
    let pairs: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (&**k, &**v)).collect();
    *cached = b.series(fam, &pairs, None).ok();
    if let Some(s) = *cached {
        b.put(s, v);
    }
}
