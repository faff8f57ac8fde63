//! The StatsD receiver's flags, part of the collector's (so `collect` and `run` both have them).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use plimsoll_collector::sources::statsd::config::{parse_buckets, parse_udp_listen};
use plimsoll_collector::sources::statsd::StatsdConfig;

/// An address, or `off`.
#[derive(Debug, Clone)]
pub struct UdpListen(pub Option<SocketAddr>);

/// Histogram bucket upper bounds.
#[derive(Debug, Clone)]
pub struct Buckets(pub Vec<f64>);

#[derive(Debug, clap::Args)]
pub struct StatsdArgs {
    /// StatsD / DogStatsD UDP listen address, or `off`.
    #[arg(long, default_value = "0.0.0.0:8125", value_name = "ADDR|off",
          value_parser = |s: &str| parse_udp_listen(s).map(UdpListen))]
    pub statsd_udp: UdpListen,
    /// Also receive StatsD on this Unix datagram socket (created writable by every user).
    #[arg(long, value_name = "PATH")]
    pub statsd_unix: Option<PathBuf>,
    /// statsd_exporter-style mapping file (glob match -> name and labels).
    #[arg(long, value_name = "FILE")]
    pub statsd_mapping: Option<PathBuf>,
    /// Bucket upper bounds of timers (seconds), histograms and distributions, comma-separated
    /// [default: Prometheus client defaults, 0.005..10].
    #[arg(long, value_name = "LIST", value_parser = |s: &str| parse_buckets(s).map(Buckets))]
    pub statsd_buckets: Option<Buckets>,
    /// A StatsD series not received for this long is forgotten (0s: never).
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub statsd_ttl: Duration,
    /// StatsD series held at most; new ones beyond are dropped and counted [default: 100000].
    #[arg(long, value_name = "N")]
    pub statsd_max_series: Option<usize>,
    /// StatsD series one metric name holds at most [default: 10000].
    #[arg(long, value_name = "N")]
    pub statsd_max_series_per_metric: Option<usize>,
    /// Distinct StatsD set members counted per interval, over all sets [default: 100000].
    #[arg(long, value_name = "N")]
    pub statsd_max_set_members: Option<usize>,
    /// Kernel receive buffer asked for each StatsD socket, in bytes [default: 8 MiB].
    #[arg(long, value_name = "BYTES")]
    pub statsd_receive_buffer: Option<usize>,
    /// Bytes of received StatsD datagrams waiting for the parser at most [default: 32 MiB].
    #[arg(long, value_name = "BYTES")]
    pub statsd_queue_bytes: Option<usize>,
    /// Longest StatsD datagram accepted; longer ones are counted and dropped [default: 65535].
    #[arg(long, value_name = "BYTES")]
    pub statsd_max_packet: Option<usize>,
}

impl StatsdArgs {
    /// The receiver's configuration, not validated yet (the collector's validation does it).
    pub fn config(&self) -> StatsdConfig {
        let d = StatsdConfig::default();
        StatsdConfig {
            udp: self.statsd_udp.0,
            unix: self.statsd_unix.clone(),
            mapping: self.statsd_mapping.clone(),
            ttl: self.statsd_ttl,
            buckets: self.statsd_buckets.clone().map_or(d.buckets, |b| b.0),
            max_series: self.statsd_max_series.unwrap_or(d.max_series),
            max_series_per_family: self
                .statsd_max_series_per_metric
                .unwrap_or(d.max_series_per_family),
            max_set_members: self.statsd_max_set_members.unwrap_or(d.max_set_members),
            receive_buffer_bytes: self.statsd_receive_buffer.unwrap_or(d.receive_buffer_bytes),
            queue_bytes: self.statsd_queue_bytes.unwrap_or(d.queue_bytes),
            max_packet_bytes: self.statsd_max_packet.unwrap_or(d.max_packet_bytes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct T {
        #[command(flatten)]
        s: StatsdArgs,
    }

    #[test]
    fn defaults_are_the_receivers() {
        let t = T::try_parse_from(["t"]).unwrap();
        assert_eq!(t.s.config(), StatsdConfig::default());
    }

    #[test]
    fn flags_set_the_config() {
        let t = T::try_parse_from([
            "t",
            "--statsd-udp",
            "off",
            "--statsd-unix",
            "/run/s.sock",
            "--statsd-buckets",
            "0.1,1",
            "--statsd-ttl",
            "30s",
            "--statsd-max-series-per-metric",
            "7",
        ])
        .unwrap();
        let c = t.s.config();
        assert_eq!(c.udp, None);
        assert_eq!(c.unix, Some(PathBuf::from("/run/s.sock")));
        assert_eq!(c.buckets, vec![0.1, 1.0]);
        assert_eq!(c.ttl, Duration::from_secs(30));
        assert_eq!(c.max_series_per_family, 7);
        let e = T::try_parse_from(["t", "--statsd-udp", "8125"]).unwrap_err();
        assert!(e.to_string().contains("nor `off`"), "{e}");
        let e = T::try_parse_from(["t", "--statsd-buckets", "1,x"]).unwrap_err();
        assert!(e.to_string().contains("`x` is not a number"), "{e}");
    }
}
