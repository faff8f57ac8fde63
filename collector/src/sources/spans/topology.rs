//! The topology of `GET /api/v1/topology`: who calls whom over a window, read from the spanmetrics
//! and servicegraph series of the store through the query layer.
//!
//! Nodes are the services that sent spans (request rate, error ratio and latency quantiles of their
//! server and consumer spans) and the nodes only edges name: `user`, databases and other virtual
//! nodes. Edges carry the request and error rates and the quantiles of the server and the client
//! span durations. Virtual nodes get the rates of their incoming edges (of their outgoing ones for
//! `user`). Rates are per second over the window; quantiles as Prometheus'
//! `histogram_quantile` over the window's increase; a figure without two samples in the window is
//! null.

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use serde::Serialize;

use super::servicegraph::{CLIENT_SECONDS, FAILED, REQUESTS, SERVER_SECONDS};
use super::span::{SpanKind, StatusCode};
use super::spanmetrics::{CALLS, DURATION};
use crate::query::{Query, Selector};
use crate::store::{Millis, SeriesRef};

/// p50, p95 and p99 in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
pub struct Latency {
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    /// A service that sent spans.
    Service,
    /// The server of a `database` edge that sent no spans.
    Database,
    /// `user`, or a peer named by a client span no server answered.
    Virtual,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Node {
    pub id: String,
    pub kind: NodeKind,
    /// Server and consumer spans per second.
    pub request_rate: Option<f64>,
    /// Of those, the share with status ERROR.
    pub error_ratio: Option<f64>,
    pub latency_ms: Latency,
    /// The replicas of the scaled target this service is, when the server knows them
    /// ([`Topology::with_replicas`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Edge {
    pub client: String,
    pub server: String,
    pub connection_type: String,
    pub request_rate: Option<f64>,
    pub error_rate: Option<f64>,
    pub error_ratio: Option<f64>,
    pub server_latency_ms: Latency,
    pub client_latency_ms: Latency,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Topology {
    pub window_seconds: f64,
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
}

impl Topology {
    /// Puts on each service node the replicas `counts` has for its name (`plimsoll run`: its scaled
    /// targets' current replicas). Only nodes of services that sent spans: `user`, databases and
    /// other virtual nodes are not deployments.
    pub fn with_replicas(mut self, counts: &BTreeMap<String, u32>) -> Self {
        for n in &mut self.nodes {
            if n.kind == NodeKind::Service {
                n.replicas = counts.get(&n.id).copied();
            }
        }
        self
    }
}

fn sum(xs: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    xs.fold(None, |acc, x| match (acc, x) {
        (None, x) => x,
        (a, None) => a,
        (Some(a), Some(b)) => Some(a + b),
    })
}

fn ratio(part: Option<f64>, whole: Option<f64>) -> Option<f64> {
    match (part, whole) {
        (_, Some(w)) if w > 0.0 => Some(part.unwrap_or(0.0) / w),
        _ => None,
    }
}

fn latency(
    q: &Query<'_>,
    series: &[SeriesRef],
    end: Millis,
    window: Millis,
    scale: f64,
) -> Latency {
    let at = |phi| {
        q.histogram_quantile(phi, series, end, window)
            .map(|v| v * scale)
    };
    Latency {
        p50: at(0.5),
        p95: at(0.95),
        p99: at(0.99),
    }
}

/// The topology over the `window` that ends at `end`.
pub fn build(q: &Query<'_>, end: Millis, window: Millis) -> Topology {
    let store = q.store();
    let label = |s: SeriesRef, k: &str| -> String {
        store
            .labels(s)
            .and_then(|l| l.get(k))
            .unwrap_or("")
            .to_string()
    };
    // Edges, grouped by their labels (several collectors' series may share them).
    type EdgeKey = (String, String, String);
    let mut groups: BTreeMap<EdgeKey, [Vec<SeriesRef>; 4]> = BTreeMap::new();
    for (i, name) in [REQUESTS, FAILED, SERVER_SECONDS, CLIENT_SECONDS]
        .iter()
        .enumerate()
    {
        for s in q.select(&Selector {
            name,
            ..Default::default()
        }) {
            let k = (
                label(s, "client"),
                label(s, "server"),
                label(s, "connection_type"),
            );
            groups.entry(k).or_default()[i].push(s);
        }
    }
    let edges: Vec<Edge> = groups
        .into_iter()
        .map(
            |((client, server, connection_type), [req, failed, sv, cl])| {
                let request_rate = sum(req.iter().map(|s| q.rate(*s, end, window)));
                let error_rate = sum(failed.iter().map(|s| q.rate(*s, end, window)));
                Edge {
                    error_ratio: ratio(error_rate, request_rate),
                    server_latency_ms: latency(q, &sv, end, window, 1000.0),
                    client_latency_ms: latency(q, &cl, end, window, 1000.0),
                    client,
                    server,
                    connection_type,
                    request_rate,
                    error_rate,
                }
            },
        )
        .collect();
    // Services: their server and consumer spans.
    let mut services: BTreeMap<String, (Vec<SeriesRef>, Vec<SeriesRef>)> = BTreeMap::new();
    let served = |s: SeriesRef| {
        let kind = label(s, "span_kind");
        kind == SpanKind::Server.as_str() || kind == SpanKind::Consumer.as_str()
    };
    for s in q.select(&Selector {
        name: CALLS,
        ..Default::default()
    }) {
        let svc = label(s, "service_name");
        if svc.is_empty() {
            continue;
        }
        let e = services.entry(svc).or_default();
        if served(s) {
            e.0.push(s);
        }
    }
    let mut durations: BTreeMap<String, Vec<SeriesRef>> = BTreeMap::new();
    for s in q.select(&Selector {
        name: DURATION,
        ..Default::default()
    }) {
        if served(s) {
            durations
                .entry(label(s, "service_name"))
                .or_default()
                .push(s);
        }
    }
    let mut nodes: Vec<Node> = services
        .into_iter()
        .map(|(id, (calls, _))| {
            let request_rate = sum(calls.iter().map(|s| q.rate(*s, end, window)));
            let errors = sum(calls
                .iter()
                .filter(|s| label(**s, "status_code") == StatusCode::Error.as_str())
                .map(|s| q.rate(*s, end, window)));
            let d = durations.remove(&id).unwrap_or_default();
            Node {
                latency_ms: latency(q, &d, end, window, 1.0),
                error_ratio: ratio(errors, request_rate),
                request_rate,
                kind: NodeKind::Service,
                id,
                replicas: None,
            }
        })
        .collect();
    // Nodes only edges name.
    let mut extra: BTreeMap<String, NodeKind> = BTreeMap::new();
    for e in &edges {
        for (id, kind) in [
            (&e.client, NodeKind::Virtual),
            (
                &e.server,
                if e.connection_type == "database" {
                    NodeKind::Database
                } else {
                    NodeKind::Virtual
                },
            ),
        ] {
            if !nodes.iter().any(|n| &n.id == id) {
                extra.entry(id.clone()).or_insert(kind);
            }
        }
    }
    // Their figures come from their edges: in (a database, a peer) or else out (`user`).
    nodes.extend(extra.into_iter().map(|(id, kind)| {
        let incoming: Vec<&Edge> = edges.iter().filter(|e| e.server == id).collect();
        let adjacent = if incoming.is_empty() {
            edges.iter().filter(|e| e.client == id).collect()
        } else {
            incoming
        };
        let request_rate = sum(adjacent.iter().map(|e| e.request_rate));
        let errors = sum(adjacent.iter().map(|e| e.error_rate));
        Node {
            id,
            kind,
            error_ratio: ratio(errors, request_rate),
            request_rate,
            latency_ms: Latency::default(),
            replicas: None,
        }
    }));
    Topology {
        window_seconds: window as f64 / 1000.0,
        nodes,
        edges,
    }
}
