//! The StatsD receiver's own metrics, emitted once per flush from counts kept on the parser thread
//! (never per line: the facade costs tens of nanoseconds a call).

use std::sync::atomic::Ordering;

use super::aggregate::{Counts, DropReason, ErrorReason};
use super::receive::ReceiveStats;
use super::SOURCE;
use crate::telemetry::{describe_all, Family, IngestDropped, IngestErrors};

pub const PACKETS: &str = "plimsoll_statsd_packets_received_total";
pub const BYTES: &str = "plimsoll_statsd_bytes_received_total";
pub const LINES: &str = "plimsoll_statsd_lines_received_total";
pub const EVENTS: &str = "plimsoll_statsd_events_total";
pub const SERIES: &str = "plimsoll_statsd_series";
pub const CREATED: &str = "plimsoll_statsd_series_created_total";
pub const EXPIRED: &str = "plimsoll_statsd_series_expired_total";
pub const QUEUE_BYTES: &str = "plimsoll_statsd_queue_bytes";
pub const KERNEL_DROPS: &str = "plimsoll_statsd_udp_kernel_drops_total";
pub const KERNEL_QUEUE: &str = "plimsoll_statsd_udp_kernel_queue_bytes";
pub const RECEIVE_ERRORS: &str = "plimsoll_statsd_receive_errors_total";

/// The reason of a datagram longer than `max_packet_bytes`.
const TRUNCATED: &str = "truncated";

const FAMILIES: &[Family] = &[
    Family::counter(PACKETS, "StatsD datagrams received, by transport."),
    Family::counter(BYTES, "StatsD bytes received."),
    Family::counter(
        LINES,
        "StatsD lines received (metrics, events, service checks, malformed).",
    ),
    Family::counter(
        EVENTS,
        "DogStatsD events and service checks received and skipped, by kind.",
    ),
    Family::gauge(SERIES, "StatsD series being aggregated and flushed."),
    Family::counter(
        CREATED,
        "StatsD series created (first seen, or seen again after their TTL).",
    ),
    Family::counter(
        EXPIRED,
        "StatsD series forgotten after their TTL without a line.",
    ),
    Family::gauge(
        QUEUE_BYTES,
        "StatsD bytes received and waiting for the parser.",
    ),
    Family::counter(
        KERNEL_DROPS,
        "Datagrams the kernel dropped on the StatsD UDP socket (its buffer was full), from /proc/net/udp.",
    ),
    Family::gauge(
        KERNEL_QUEUE,
        "Bytes waiting in the kernel buffer of the StatsD UDP socket.",
    ),
    Family::counter(RECEIVE_ERRORS, "Failed receive calls on a StatsD socket."),
];

/// Describes the metrics and makes every reason visible at zero from the start, so that a dashboard
/// or an alert on a reason does not wait for its first occurrence.
pub fn register() {
    describe_all(FAMILIES);
    for i in 0..ErrorReason::COUNT {
        IngestErrors {
            source: SOURCE,
            reason: ErrorReason::from_index(i).as_str(),
            count: 0,
        }
        .emit();
    }
    IngestErrors {
        source: SOURCE,
        reason: TRUNCATED,
        count: 0,
    }
    .emit();
    for r in DropReason::ALL {
        IngestDropped {
            source: SOURCE,
            reason: r.as_str(),
            count: 0,
        }
        .emit();
    }
    for t in ["udp", "unix"] {
        metrics::counter!(PACKETS, "transport" => t).absolute(0);
    }
    for k in ["event", "service_check"] {
        metrics::counter!(EVENTS, "kind" => k).increment(0);
    }
}

/// One flush of the parser thread.
pub struct Flushed<'a> {
    pub counts: Counts,
    pub series: usize,
    pub receive: &'a ReceiveStats,
    pub queue_bytes: usize,
    /// Kernel drops and queued bytes of the UDP socket, when it is open and was found.
    pub kernel: Option<(u64, u64)>,
}

impl Flushed<'_> {
    pub fn emit(self) {
        let c = &self.counts;
        metrics::counter!(LINES).increment(c.lines);
        metrics::counter!(EVENTS, "kind" => "event").increment(c.events);
        metrics::counter!(EVENTS, "kind" => "service_check").increment(c.service_checks);
        for (i, n) in c.errors.iter().enumerate().filter(|(_, n)| **n > 0) {
            IngestErrors {
                source: SOURCE,
                reason: ErrorReason::from_index(i).as_str(),
                count: *n,
            }
            .emit();
        }
        for r in DropReason::ALL {
            let n = c.dropped(r);
            if n > 0 {
                IngestDropped {
                    source: SOURCE,
                    reason: r.as_str(),
                    count: n,
                }
                .emit();
            }
        }
        metrics::counter!(CREATED).increment(c.created);
        metrics::counter!(EXPIRED).increment(c.expired);
        metrics::gauge!(SERIES).set(self.series as f64);
        metrics::gauge!(QUEUE_BYTES).set(self.queue_bytes as f64);
        let r = self.receive;
        metrics::counter!(PACKETS, "transport" => "udp")
            .absolute(r.udp_packets.load(Ordering::Relaxed));
        metrics::counter!(PACKETS, "transport" => "unix")
            .absolute(r.unix_packets.load(Ordering::Relaxed));
        metrics::counter!(BYTES).absolute(r.bytes.load(Ordering::Relaxed));
        metrics::counter!(RECEIVE_ERRORS).absolute(r.receive_errors.load(Ordering::Relaxed));
        // Truncation is counted by the receiver threads; it is malformed input like the rest.
        metrics::counter!(crate::telemetry::INGEST_ERRORS, "source" => SOURCE, "reason" => TRUNCATED)
            .absolute(r.truncated.load(Ordering::Relaxed));
        if let Some((drops, queued)) = self.kernel {
            metrics::counter!(KERNEL_DROPS).absolute(drops);
            metrics::gauge!(KERNEL_QUEUE).set(queued as f64);
        }
    }
}
