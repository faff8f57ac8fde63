//! The service graph from spans, as the OTel collector's servicegraph connector makes it:
//! `traces_service_graph_request_total{client,server,connection_type}`,
//! `traces_service_graph_request_failed_total` and the histograms
//! `traces_service_graph_request_server_seconds` and `traces_service_graph_request_client_seconds`.
//!
//! Every client, server, producer and consumer span becomes an [`EdgeHalf`]: the client side is
//! keyed by (trace id, its span id), the server side by (trace id, its parent span id). The two
//! halves of one call meet in a bounded pairing store and make an edge. A half that waits longer
//! than `wait` expires: a root server span (no parent) becomes an edge from the virtual node `user`,
//! a client span without a server an edge to a virtual node named by its first peer attribute
//! (`peer.service`, `db.name`, `db.system`, and beyond the connector `server.address`,
//! `net.peer.name`), or `unknown`; both with `connection_type="virtual_node"`. A server span whose
//! client never came only counts as expired. A client span with a database name attribute is a
//! complete `database` edge at once (there is no server span to wait for). A full store drops the
//! new half (counted), after evicting expired ones. Pure: halves and `now` in.

#[cfg(test)]
mod tests;
mod waiting;

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::put_series;
use super::span::{SpanId, SpanKind, SpanView, StatusCode, TraceId};
use crate::store::{
    Batch, FamilyDesc, FamilyId, Histogram, Ingest, IngestError, Kind, Millis, SeriesRef, Value,
};

pub const REQUESTS: &str = "traces_service_graph_request_total";
pub const FAILED: &str = "traces_service_graph_request_failed_total";
pub const SERVER_SECONDS: &str = "traces_service_graph_request_server_seconds";
pub const CLIENT_SECONDS: &str = "traces_service_graph_request_client_seconds";

/// The servicegraph connector's default buckets, in seconds.
pub const DEFAULT_BUCKETS_S: [f64; 16] = [
    0.002, 0.004, 0.006, 0.008, 0.01, 0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.4, 2.0, 5.0, 10.0, 15.0,
];

/// The client of a root server span that no client span precedes.
pub const USER: &str = "user";
/// The server of a client span with no server and no peer attribute.
pub const UNKNOWN: &str = "unknown";

/// Which side of a call a span is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Side {
    /// Client or producer span: keyed by its own span id.
    Client,
    /// Server or consumer span: keyed by its parent span id (none for a root span).
    Server,
}

/// What the pairing store keeps of one span: small, owned, and sendable to the collector that owns
/// its trace (cluster mode). Names are shared (`Arc<str>`): the service name of every span of a
/// resource is one allocation, and pairing moves no string.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EdgeHalf {
    pub trace_id: TraceId,
    /// The client's span id, or the server's parent span id; None for a root server span.
    pub span_id: Option<SpanId>,
    pub side: Side,
    #[serde(with = "shared_str")]
    pub service: Arc<str>,
    /// A producer or consumer span.
    pub messaging: bool,
    pub seconds: f64,
    pub failed: bool,
    /// Client side: the first peer attribute's value, the server's virtual node if none comes.
    #[serde(default, with = "shared_opt_str")]
    pub peer: Option<Arc<str>>,
    /// Client side: the database name, which makes the edge complete at once.
    #[serde(default, with = "shared_opt_str")]
    pub database: Option<Arc<str>>,
}

/// `Arc<str>` as a JSON string (serde's own impl needs its `rc` feature for the whole workspace).
mod shared_str {
    use std::sync::Arc;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Arc<str>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Arc<str>, D::Error> {
        Box::<str>::deserialize(d).map(Arc::from)
    }
}

/// `Option<Arc<str>>` as a JSON string or null.
mod shared_opt_str {
    use std::sync::Arc;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Arc<str>>, s: S) -> Result<S::Ok, S::Error> {
        v.as_deref().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Arc<str>>, D::Error> {
        Option::<Box<str>>::deserialize(d).map(|o| o.map(Arc::from))
    }
}

/// What the graph is built from (see `SpansConfig::servicegraph`).
#[derive(Debug, Clone)]
pub struct Settings {
    pub wait_ms: Millis,
    pub max_items: usize,
    pub peer_attributes: Vec<String>,
    pub database_attributes: Vec<String>,
    pub bounds: Arc<[f64]>,
    pub max_series: usize,
}

impl Settings {
    /// The edge half of a span, for the kinds that are one side of a call; `service` is the span's
    /// service name, shared.
    pub fn half_of(&self, span: &SpanView<'_>, service: &Arc<str>) -> Option<EdgeHalf> {
        let (side, messaging) = match span.kind {
            SpanKind::Client => (Side::Client, false),
            SpanKind::Producer => (Side::Client, true),
            SpanKind::Server => (Side::Server, false),
            SpanKind::Consumer => (Side::Server, true),
            SpanKind::Internal | SpanKind::Unspecified => return None,
        };
        let first = |keys: &[String]| {
            keys.iter()
                .find_map(|k| span.span_attr(k))
                .map(|v| Arc::from(&*v))
        };
        let client = side == Side::Client;
        Some(EdgeHalf {
            trace_id: span.trace_id,
            span_id: if client {
                Some(span.span_id)
            } else {
                span.parent
            },
            side,
            service: service.clone(),
            messaging,
            seconds: span.duration_ns() as f64 / 1e9,
            failed: span.status == StatusCode::Error,
            peer: if client {
                first(&self.peer_attributes)
            } else {
                None
            },
            database: if client {
                self.database_attributes
                    .iter()
                    .find_map(|k| span.attr(k))
                    .map(|v| Arc::from(&*v))
            } else {
                None
            },
        })
    }
}

/// An edge's `connection_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConnectionType {
    Plain,
    MessagingSystem,
    Database,
    VirtualNode,
}

impl ConnectionType {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionType::Plain => "",
            ConnectionType::MessagingSystem => "messaging_system",
            ConnectionType::Database => "database",
            ConnectionType::VirtualNode => "virtual_node",
        }
    }
}

/// One observed call between two nodes.
#[derive(Debug, Clone, PartialEq)]
pub struct Edge {
    pub client: Arc<str>,
    pub server: Arc<str>,
    pub connection_type: ConnectionType,
    pub failed: bool,
    pub client_seconds: f64,
    pub server_seconds: f64,
}

/// The store families the graph writes.
#[derive(Debug, Clone, Copy)]
pub struct Families {
    pub requests: FamilyId,
    pub failed: FamilyId,
    pub server: FamilyId,
    pub client: FamilyId,
}

impl Families {
    pub fn register(ingest: &Ingest) -> Result<Families, IngestError> {
        let hist = |name: &str, help: &str| FamilyDesc {
            unit: Some("seconds".into()),
            ..FamilyDesc::float(name, help, Kind::Histogram)
        };
        Ok(Families {
            requests: ingest.family(FamilyDesc::float(
                REQUESTS,
                "Requests between two services (or a service and a virtual node), from paired spans (OTel servicegraph).",
                Kind::Counter,
            ))?,
            failed: ingest.family(FamilyDesc::float(
                FAILED,
                "Requests between two nodes in which either span had status ERROR (OTel servicegraph).",
                Kind::Counter,
            ))?,
            server: ingest.family(hist(
                SERVER_SECONDS,
                "Duration of the server span of each request, in seconds (OTel servicegraph).",
            ))?,
            client: ingest.family(hist(
                CLIENT_SECONDS,
                "Duration of the client span of each request, in seconds (OTel servicegraph).",
            ))?,
        })
    }
}

#[derive(Debug)]
struct Series {
    labels: Vec<(Arc<str>, Box<str>)>,
    requests: f64,
    failed: f64,
    server: Histogram,
    client: Histogram,
    refs: [Option<SeriesRef>; 4],
}

/// Counts since the last [`ServiceGraph::take_counts`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Edges made of two halves that met.
    pub paired: u64,
    /// Client spans with a database name: edges at once.
    pub database: u64,
    /// Halves that waited `wait` without their other half.
    pub expired: u64,
    /// Of the expired, those that became an edge to or from a virtual node.
    pub virtual_edges: u64,
    /// Halves dropped because the store held `max_items` halves none of which had expired.
    pub dropped_store_full: u64,
    /// Edges not counted because a new series would pass `max_series`.
    pub dropped_series_limit: u64,
}

/// The pairing store and the edge series.
#[derive(Debug)]
pub struct ServiceGraph {
    s: Settings,
    /// The halves that came first; the other one completes the call at once.
    pending: waiting::Waiting,
    series: HashMap<(Arc<str>, Arc<str>, ConnectionType), Series, foldhash::fast::RandomState>,
    counts: Counts,
    names: [Arc<str>; 3],
    /// [`USER`] and [`UNKNOWN`], shared by every edge to them.
    virtual_names: [Arc<str>; 2],
    /// The service name of the last span made a half (spans come grouped by resource).
    last_service: Option<Arc<str>>,
}

impl ServiceGraph {
    pub fn new(s: Settings) -> ServiceGraph {
        ServiceGraph {
            s,
            pending: waiting::Waiting::default(),
            series: HashMap::default(),
            counts: Counts::default(),
            names: ["client", "server", "connection_type"].map(Arc::from),
            virtual_names: [USER, UNKNOWN].map(Arc::from),
            last_service: None,
        }
    }

    /// The edge half of `span` (see [`Settings::half_of`]), its service name allocated once for a
    /// run of spans of the same service.
    pub fn half(&mut self, span: &SpanView<'_>) -> Option<EdgeHalf> {
        if self.last_service.as_deref() != Some(span.service) {
            self.last_service = Some(span.service.into());
        }
        let service = self.last_service.as_ref().expect("just set");
        self.s.half_of(span, service)
    }

    pub fn settings(&self) -> &Settings {
        &self.s
    }

    /// Halves waiting for their other half.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Edge series held.
    pub fn series(&self) -> usize {
        self.series.len()
    }

    pub fn take_counts(&mut self) -> Counts {
        std::mem::take(&mut self.counts)
    }

    /// Every edge series as (client, server, connection type, requests, failed), in no order.
    pub fn totals(&self) -> impl Iterator<Item = (&str, &str, ConnectionType, f64, f64)> + '_ {
        self.series
            .iter()
            .map(|((c, s, t), v)| (&**c, &**s, *t, v.requests, v.failed))
    }

    /// Adds one half: completes an edge with its waiting other half, or waits for it.
    pub fn add(&mut self, h: EdgeHalf, now: Millis) {
        if h.side == Side::Client {
            if let Some(db) = h.database.clone() {
                self.counts.database += 1;
                self.record(Edge {
                    client: h.service,
                    server: db,
                    connection_type: ConnectionType::Database,
                    failed: h.failed,
                    client_seconds: h.seconds,
                    server_seconds: h.seconds,
                });
                return;
            }
        }
        let key = (h.trace_id, h.span_id);
        if let Some(p) = self.pending.get_mut(&key) {
            if p.side == h.side {
                // A second span for the same side (a retried export) replaces the first.
                *p = h;
                return;
            }
            let p = self.pending.remove(&key).expect("just found");
            let (c, s) = match h.side {
                Side::Client => (h, p),
                Side::Server => (p, h),
            };
            self.counts.paired += 1;
            self.record(Edge {
                connection_type: if c.messaging || s.messaging {
                    ConnectionType::MessagingSystem
                } else {
                    ConnectionType::Plain
                },
                failed: c.failed || s.failed,
                client_seconds: c.seconds,
                server_seconds: s.seconds,
                client: c.service,
                server: s.service,
            });
            return;
        }
        if self.pending.len() >= self.s.max_items {
            self.expire(now);
            if self.pending.len() >= self.s.max_items {
                self.counts.dropped_store_full += 1;
                return;
            }
        }
        self.pending.insert(key, h, now, self.s.max_items);
    }

    /// Expires the halves that waited `wait` by `now` into virtual-node edges.
    pub fn expire(&mut self, now: Millis) {
        while let Some((key, half)) = self.pending.pop_expired(now, self.s.wait_ms) {
            self.counts.expired += 1;
            match half {
                s if s.side == Side::Server && key.1.is_none() => {
                    self.counts.virtual_edges += 1;
                    self.record(Edge {
                        client: self.virtual_names[0].clone(),
                        server: s.service,
                        connection_type: ConnectionType::VirtualNode,
                        failed: s.failed,
                        client_seconds: 0.0,
                        server_seconds: s.seconds,
                    });
                }
                c if c.side == Side::Client => {
                    self.counts.virtual_edges += 1;
                    self.record(Edge {
                        server: c.peer.unwrap_or_else(|| self.virtual_names[1].clone()),
                        client: c.service,
                        connection_type: ConnectionType::VirtualNode,
                        failed: c.failed,
                        client_seconds: c.seconds,
                        server_seconds: 0.0,
                    });
                }
                _ => {}
            }
        }
    }

    /// Counts one edge into its series.
    pub fn record(&mut self, e: Edge) {
        let key = (e.client, e.server, e.connection_type);
        let s = match self.series.get_mut(&key) {
            Some(s) => s,
            None => {
                if self.series.len() >= self.s.max_series {
                    self.counts.dropped_series_limit += 1;
                    return;
                }
                let labels = vec![
                    (self.names[0].clone(), (*key.0).into()),
                    (self.names[1].clone(), (*key.1).into()),
                    (self.names[2].clone(), key.2.as_str().into()),
                ];
                let b = self.s.bounds.clone();
                self.series.entry(key).or_insert(Series {
                    labels,
                    requests: 0.0,
                    failed: 0.0,
                    server: Histogram::new(b.clone()),
                    client: Histogram::new(b),
                    refs: [None; 4],
                })
            }
        };
        s.requests += 1.0;
        if e.failed {
            s.failed += 1.0;
        }
        s.server.observe(e.server_seconds, 1.0);
        s.client.observe(e.client_seconds, 1.0);
    }

    /// Writes every edge series' cumulative values in `b`. The failed counter is written from the
    /// first request on (at 0), so error ratios have both sides.
    pub fn flush(&mut self, fams: Families, b: &mut Batch<'_>) {
        for s in self.series.values_mut() {
            let l = &s.labels;
            let [r, f, sv, cl] = &mut s.refs;
            put_series(b, fams.requests, r, l, Value::Float(s.requests));
            put_series(b, fams.failed, f, l, Value::Float(s.failed));
            put_series(b, fams.server, sv, l, Value::Histogram(&s.server));
            put_series(b, fams.client, cl, l, Value::Histogram(&s.client));
        }
    }
}
