//! OTLP spans into RED metrics and a service graph, as the OTel collector's spanmetrics and
//! servicegraph connectors make them (their names, labels, buckets and defaults).
//!
//! The OTLP receiver decodes an `ExportTraceServiceRequest` and hands its resource spans to
//! [`Spans::consume`]; `span` gives the compact view both connectors read, `spanmetrics` the calls
//! and duration series. [`Spans::flush`] writes every series into the store through the ingest
//! handle, once per collector interval (the shell calls it). Pure parts get `now` from the caller.

pub mod config;
pub mod normalize;
pub mod span;
pub mod spanmetrics;
#[cfg(test)]
mod tests;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::trace::v1::ResourceSpans;

pub use config::{Dimension, SpansConfig};
pub use span::{visit, Reject, SpanKind, SpanView, StatusCode, Visited};
pub use spanmetrics::SpanMetrics;

use crate::store::{Ingest, IngestError, Limits, Millis, SourceDesc, SourceId};

/// The `source` of the spans component's series in the store and its ingest metrics.
pub const SOURCE: &str = "spans";

pub const RECEIVED: &str = "plimsoll_spans_received_total";
pub const REJECTED: &str = "plimsoll_spans_rejected_total";
pub const SPANMETRICS_SERIES: &str = "plimsoll_spanmetrics_series";
pub const SPANMETRICS_OVERFLOW: &str = "plimsoll_spanmetrics_overflow_spans_total";
pub const SPANMETRICS_EXPIRED: &str = "plimsoll_spanmetrics_series_expired_total";

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
    for r in Reject::ALL {
        metrics::counter!(REJECTED, "reason" => r.as_str()).increment(0);
    }
}

struct State {
    spanmetrics: SpanMetrics,
}

/// The running component: aggregation state behind one lock, and where it writes.
#[derive(Clone)]
pub struct Spans {
    state: Arc<Mutex<State>>,
    ingest: Ingest,
    source: SourceId,
    families: spanmetrics::Families,
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
                max_series_per_family: Some(config.max_series + 1),
                max_series_per_source: None,
            },
        })?;
        Ok(Spans {
            state: Arc::new(Mutex::new(State {
                spanmetrics: config.spanmetrics(),
            })),
            ingest: ingest.clone(),
            source,
            families: spanmetrics::Families::register(ingest)?,
        })
    }

    /// Counts the spans of one export request; returns what was accepted and rejected (for the
    /// partial-success answer).
    pub fn consume(&self, resources: &[ResourceSpans], now: Millis) -> Visited {
        let mut st = self.state.lock().expect("spans lock");
        let v = visit(resources, |s| st.spanmetrics.observe(s, now));
        drop(st);
        metrics::counter!(RECEIVED).increment(v.accepted);
        for r in Reject::ALL {
            let n = v.count(r);
            if n > 0 {
                metrics::counter!(REJECTED, "reason" => r.as_str()).increment(n);
            }
        }
        v
    }

    /// Expires idle series and writes every series into the store at `now`.
    pub fn flush(&self, now: Millis) {
        let mut st = self.state.lock().expect("spans lock");
        st.spanmetrics.expire(now);
        let fams = self.families;
        self.ingest
            .batch(self.source, now, |b| st.spanmetrics.flush(fams, b));
        let c = st.spanmetrics.take_counts();
        metrics::gauge!(SPANMETRICS_SERIES).set(st.spanmetrics.len() as f64);
        metrics::counter!(SPANMETRICS_OVERFLOW).increment(c.overflowed);
        metrics::counter!(SPANMETRICS_EXPIRED).increment(c.series_expired);
    }
}
