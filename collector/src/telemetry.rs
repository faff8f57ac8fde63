//! The collector's own health, as small events that are emitted to the `metrics` facade and rendered
//! by metrics-exporter-prometheus next to the sampled data.

use std::time::Duration;

pub mod family;

pub use family::{
    describe_all, register_exposition, render, Buckets, Exposition, Family, Kind, LabelWriter,
};

/// Why something could not be sampled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A /proc file of the host could not be read or parsed.
    HostRead,
    /// A cgroup file of a live container could not be read or parsed.
    CgroupRead,
    /// A container went away between discovery and a read; it is skipped.
    Vanished,
    /// A call to the Docker API failed.
    Docker,
    /// The Docker events stream ended or failed and was reconnected.
    EventsStream,
    /// A one-shot stats API read (fallback mode) failed.
    StatsApi,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::HostRead => "host_read",
            ErrorKind::CgroupRead => "cgroup_read",
            ErrorKind::Vanished => "vanished",
            ErrorKind::Docker => "docker",
            ErrorKind::EventsStream => "events_stream",
            ErrorKind::StatsApi => "stats_api",
        }
    }
}

pub const ERRORS: &str = "plimsoll_collector_errors_total";
pub const PASSES: &str = "plimsoll_collector_sampling_passes_total";
pub const PASS_DURATION: &str = "plimsoll_collector_pass_duration_seconds";
pub const CONTAINERS: &str = "plimsoll_collector_containers";
pub const SERIES: &str = "plimsoll_collector_series";
pub const SAMPLE_BYTES: &str = "plimsoll_collector_store_sample_bytes";

/// Buckets of the pass duration histogram: a pass takes tens of microseconds to a few milliseconds.
pub const PASS_DURATION_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
];

/// Buckets of every other histogram of the process whose name ends in `_seconds` (the autoscaler's
/// decision, convergence and node provider times): a millisecond to two minutes.
pub const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// The collector's own metric families.
pub const FAMILIES: &[Family] = &[
    Family::counter(ERRORS, "Samples or calls that failed, by kind."),
    Family::counter(PASSES, "Sampling passes completed."),
    Family::seconds(PASS_DURATION, "Wall time of one sampling pass."),
    Family::gauge(CONTAINERS, "Containers being sampled."),
    Family::gauge(SERIES, "Series held in the in-memory window."),
    Family::gauge(
        SAMPLE_BYTES,
        "Bytes of compressed samples held in the in-memory window.",
    ),
    Family::counter(
        INGEST_ERRORS,
        "Malformed input counted and skipped by a receiver, by source and reason.",
    ),
    Family::counter(
        INGEST_DROPPED,
        "Well-formed input not kept (e.g. a new series beyond a limit), by source and reason.",
    ),
];

/// Describes the collector's own metrics once, so /metrics carries their HELP lines.
pub fn describe() {
    describe_all(FAMILIES);
}

#[derive(Debug)]
pub struct SampleFailed {
    pub kind: ErrorKind,
}

impl SampleFailed {
    pub fn emit(self) {
        metrics::counter!(ERRORS, "kind" => self.kind.as_str()).increment(1);
    }
}

#[derive(Debug)]
pub struct PassCompleted {
    pub duration: Duration,
    pub containers: usize,
    pub series: usize,
    pub sample_bytes: usize,
}

impl PassCompleted {
    pub fn emit(self) {
        metrics::counter!(PASSES).increment(1);
        metrics::histogram!(PASS_DURATION).record(self.duration.as_secs_f64());
        metrics::gauge!(CONTAINERS).set(self.containers as f64);
        metrics::gauge!(SERIES).set(self.series as f64);
        metrics::gauge!(SAMPLE_BYTES).set(self.sample_bytes as f64);
    }
}

pub const INGEST_ERRORS: &str = "plimsoll_ingest_errors_total";
pub const INGEST_DROPPED: &str = "plimsoll_ingest_dropped_total";

/// Malformed input a receiver counted and skipped (one event for every receiver).
#[derive(Debug)]
pub struct IngestErrors {
    pub source: &'static str,
    pub reason: &'static str,
    pub count: u64,
}

impl IngestErrors {
    pub fn emit(self) {
        metrics::counter!(INGEST_ERRORS, "source" => self.source, "reason" => self.reason)
            .increment(self.count);
    }
}

/// Well-formed input a receiver or the store did not keep, e.g. a new series beyond a limit.
#[derive(Debug)]
pub struct IngestDropped {
    pub source: &'static str,
    pub reason: &'static str,
    pub count: u64,
}

impl IngestDropped {
    pub fn emit(self) {
        self.counter().increment(self.count);
    }

    /// The counter itself, for a writer that drops often (the store keeps one per source and
    /// reason, so a cardinality flood costs no registry lookups).
    pub fn counter(&self) -> metrics::Counter {
        metrics::counter!(INGEST_DROPPED, "source" => self.source, "reason" => self.reason)
    }
}
