//! Configuration of the spans component: RED metrics (spanmetrics) and the service graph
//! (servicegraph), with the OTel collector connectors' defaults.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::servicegraph::{self, ServiceGraph};
use super::spanmetrics::SpanMetrics;
use crate::config::Problems;
use crate::sources::statsd::config::check_buckets;

/// The spanmetrics connector's default explicit buckets, in milliseconds.
pub const DEFAULT_DURATION_BUCKETS_MS: [f64; 16] = [
    2.0, 4.0, 6.0, 8.0, 10.0, 50.0, 100.0, 200.0, 400.0, 800.0, 1000.0, 1400.0, 2000.0, 5000.0,
    10000.0, 15000.0,
];

/// An extra label from a span attribute (looked up first) or a resource attribute, as the
/// connector's `dimensions`: `{name: http.method}` becomes the label `http_method`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dimension {
    /// The attribute key (`http.method`, `deployment.environment`).
    pub name: String,
    /// The value when neither the span nor its resource has the attribute; without a default such
    /// spans get no such label.
    #[serde(default)]
    pub default: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpansConfig {
    /// Extra labels of the spanmetrics series.
    pub dimensions: Vec<Dimension>,
    /// Upper bounds of `traces_span_metrics_duration_milliseconds` (milliseconds).
    pub duration_buckets_ms: Vec<f64>,
    /// Series (span name, kind, status and dimensions) one service may have; spans beyond go to
    /// the service's overflow series `{service_name=...,otel_metric_overflow="true"}`.
    pub max_series_per_service: usize,
    /// Series over all services; spans of new series beyond go to `{otel_metric_overflow="true"}`.
    pub max_series: usize,
    /// Replace ids in span names (path segments that are numbers, UUIDs or long hex strings, and
    /// query strings) with `{id}`, so `GET /user/42` and `GET /user/43` are one series.
    pub normalize_span_names: bool,
    /// A series with no span for this long is forgotten (its memory and its place under the
    /// limits freed); `0s`: never, as the connector.
    #[serde(with = "crate::serde_duration")]
    pub series_ttl: Duration,
    /// How long a client or server span waits for the other span of its call (servicegraph
    /// `store.ttl`).
    #[serde(with = "crate::serde_duration")]
    pub graph_wait: Duration,
    /// Spans waiting at most (servicegraph `store.max_items`); a span beyond is dropped and counted.
    pub graph_max_items: usize,
    /// Upper bounds of the `traces_service_graph_request_{server,client}_seconds` histograms.
    pub graph_buckets_s: Vec<f64>,
    /// Edge series (client, server, connection type) at most; edges of new ones beyond are counted
    /// as dropped.
    pub graph_max_series: usize,
    /// Span attributes that name the server of a client span that no server span answers, first
    /// found wins (`unknown` when none is there).
    pub virtual_node_peer_attributes: Vec<String>,
    /// Span or resource attributes whose value names the database of a client span, which makes a
    /// `database` edge at once.
    pub database_name_attributes: Vec<String>,
    /// The collectors of the cluster, for pairing spans that different collectors received
    /// (`dns:tasks.NAME:PORT` or `ADDR,ADDR`); none: this collector pairs what it receives.
    pub peers: Option<super::cluster::Peers>,
    /// Edge halves queued for one peer at most; beyond, the oldest are dropped (counted).
    pub forward_queue: usize,
}

impl Default for SpansConfig {
    fn default() -> Self {
        SpansConfig {
            dimensions: Vec::new(),
            duration_buckets_ms: DEFAULT_DURATION_BUCKETS_MS.to_vec(),
            max_series_per_service: 1000,
            max_series: 20_000,
            normalize_span_names: false,
            series_ttl: Duration::from_secs(15 * 60),
            graph_wait: Duration::from_secs(2),
            graph_max_items: 1000,
            graph_buckets_s: servicegraph::DEFAULT_BUCKETS_S.to_vec(),
            graph_max_series: 10_000,
            virtual_node_peer_attributes: [
                "peer.service",
                "db.name",
                "db.system",
                "server.address",
                "net.peer.name",
            ]
            .map(String::from)
            .to_vec(),
            database_name_attributes: vec!["db.name".to_string()],
            peers: None,
            forward_queue: 100_000,
        }
    }
}

impl SpansConfig {
    pub fn validate(&self, errs: &mut Problems) {
        const C: &str = "spans";
        if let Err(e) = check_buckets(&self.duration_buckets_ms) {
            errs.push(C, format!("duration_buckets_ms: {e}"));
        }
        if self.max_series_per_service == 0 {
            errs.push(C, "max_series_per_service must be at least 1");
        }
        if self.max_series < self.max_series_per_service {
            errs.push(
                C,
                format!(
                    "max_series {} must be at least max_series_per_service {}",
                    self.max_series, self.max_series_per_service
                ),
            );
        }
        if !self.series_ttl.is_zero() && self.series_ttl < Duration::from_secs(1) {
            errs.push(
                C,
                format!(
                    "series_ttl {} must be 0 (never) or at least 1s",
                    humantime::format_duration(self.series_ttl)
                ),
            );
        }
        if let Err(e) = check_buckets(&self.graph_buckets_s) {
            errs.push(C, format!("graph_buckets_s: {e}"));
        }
        if self.graph_wait < Duration::from_millis(100)
            || self.graph_wait > Duration::from_secs(600)
        {
            errs.push(
                C,
                format!(
                    "graph_wait {} is outside 100ms..=10m",
                    humantime::format_duration(self.graph_wait)
                ),
            );
        }
        for (what, v) in [
            ("graph_max_items", self.graph_max_items),
            ("graph_max_series", self.graph_max_series),
            ("forward_queue", self.forward_queue),
        ] {
            if v == 0 {
                errs.push(C, format!("{what} must be at least 1"));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for d in &self.dimensions {
            let label = super::spanmetrics::label_for(&d.name);
            if d.name.is_empty() {
                errs.push(C, "a dimension has an empty name");
            } else if super::spanmetrics::BASE_LABELS.contains(&label.as_str()) {
                errs.push(
                    C,
                    format!(
                        "dimension {} would be the label {label}, which spanmetrics sets itself",
                        d.name
                    ),
                );
            } else if !seen.insert(label.clone()) {
                errs.push(
                    C,
                    format!("dimension {} gives the label {label} twice", d.name),
                );
            }
        }
    }

    /// The spanmetrics aggregator of a validated configuration.
    pub fn spanmetrics(&self) -> SpanMetrics {
        SpanMetrics::new(super::spanmetrics::Settings {
            dimensions: self
                .dimensions
                .iter()
                .map(|d| super::spanmetrics::Dim {
                    key: d.name.clone(),
                    label: super::spanmetrics::label_for(&d.name).into(),
                    default: d.default.clone(),
                })
                .collect(),
            bounds: Arc::from(self.duration_buckets_ms.as_slice()),
            max_series_per_service: self.max_series_per_service,
            max_series: self.max_series,
            normalize: self.normalize_span_names,
            ttl_ms: self.series_ttl.as_millis() as i64,
        })
    }

    /// The service graph of a validated configuration.
    pub fn servicegraph(&self) -> ServiceGraph {
        ServiceGraph::new(servicegraph::Settings {
            wait_ms: self.graph_wait.as_millis() as i64,
            max_items: self.graph_max_items,
            peer_attributes: self.virtual_node_peer_attributes.clone(),
            database_attributes: self.database_name_attributes.clone(),
            bounds: Arc::from(self.graph_buckets_s.as_slice()),
            max_series: self.graph_max_series,
        })
    }
}
