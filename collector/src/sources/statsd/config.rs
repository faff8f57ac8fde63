//! The StatsD receiver's configuration: validated at once (every problem reported together, the
//! mapping file's with `file:line:col`) into a [`Statsd`] ready to start.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::aggregate::AggregateConfig;
use super::mapping::Mapper;
use super::receive::BATCH_DATAGRAMS;
use super::Statsd;
use crate::config::ConfigErrors;

/// Prometheus client libraries' default buckets (seconds), as statsd_exporter uses them.
pub const DEFAULT_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatsdConfig {
    /// UDP listen address; `None` turns UDP off.
    pub udp: Option<SocketAddr>,
    /// Unix datagram socket path; `None` (the default) turns it off.
    pub unix: Option<PathBuf>,
    /// statsd_exporter-style mapping file.
    pub mapping: Option<PathBuf>,
    /// Series not written for this long are forgotten; `0s`: never.
    #[serde(with = "crate::serde_duration")]
    pub ttl: Duration,
    /// Histogram bucket upper bounds for timers (seconds), histograms and distributions.
    pub buckets: Vec<f64>,
    /// Series the receiver holds at most.
    pub max_series: usize,
    /// Series one metric name holds at most.
    pub max_series_per_family: usize,
    /// Distinct set members counted per interval, over all sets.
    pub max_set_members: usize,
    /// Kernel receive buffer asked for each socket.
    pub receive_buffer_bytes: usize,
    /// Bytes of datagrams waiting for the parser at most.
    pub queue_bytes: usize,
    /// Longest datagram accepted; longer ones are counted (`truncated`) and dropped.
    pub max_packet_bytes: usize,
}

impl Default for StatsdConfig {
    fn default() -> Self {
        StatsdConfig {
            udp: Some(SocketAddr::from(([0, 0, 0, 0], 8125))),
            unix: None,
            mapping: None,
            ttl: Duration::from_secs(5 * 60),
            buckets: DEFAULT_BUCKETS.to_vec(),
            max_series: 100_000,
            max_series_per_family: 10_000,
            max_set_members: 100_000,
            receive_buffer_bytes: 8 << 20,
            queue_bytes: 32 << 20,
            max_packet_bytes: 65_535,
        }
    }
}

impl StatsdConfig {
    /// Whether any socket is configured.
    pub fn enabled(&self) -> bool {
        self.udp.is_some() || self.unix.is_some()
    }

    /// Checks every setting and loads the mapping file; all problems are reported together.
    pub fn validate(self) -> Result<Statsd, ConfigErrors> {
        let mut errs = Vec::new();
        if let Err(e) = check_buckets(&self.buckets) {
            errs.push(format!("statsd buckets: {e}"));
        }
        if !self.ttl.is_zero() && self.ttl < Duration::from_secs(1) {
            errs.push(format!(
                "statsd ttl {} must be 0 (never) or at least 1s",
                humantime::format_duration(self.ttl)
            ));
        }
        for (what, v) in [
            ("max_series", self.max_series),
            ("max_series_per_family", self.max_series_per_family),
            ("max_set_members", self.max_set_members),
        ] {
            if v == 0 {
                errs.push(format!("statsd {what} must be at least 1"));
            }
        }
        if !(512..=1 << 20).contains(&self.max_packet_bytes) {
            errs.push(format!(
                "statsd max_packet_bytes {} is outside 512..=1048576",
                self.max_packet_bytes
            ));
        }
        if self.queue_bytes < BATCH_DATAGRAMS * self.max_packet_bytes {
            errs.push(format!(
                "statsd queue_bytes {} must hold one receive batch ({BATCH_DATAGRAMS} x max_packet_bytes = {})",
                self.queue_bytes,
                BATCH_DATAGRAMS * self.max_packet_bytes
            ));
        }
        if self.receive_buffer_bytes < 4096 {
            errs.push("statsd receive_buffer_bytes must be at least 4096".to_string());
        }
        if self.unix.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
            errs.push("statsd unix socket path is empty".to_string());
        }
        let mapper = match &self.mapping {
            Some(path) => match Mapper::load(path) {
                Ok(m) => Some(m),
                Err(e) => {
                    errs.push(format!("statsd mapping file:\n{e}"));
                    None
                }
            },
            None => Some(Mapper::default()),
        };
        match mapper {
            Some(mapper) if errs.is_empty() => Ok(Statsd {
                aggregate: AggregateConfig {
                    ttl: self.ttl,
                    buckets: self.buckets.clone().into(),
                    max_series: self.max_series,
                    max_series_per_family: self.max_series_per_family,
                    max_set_members: self.max_set_members,
                },
                mapper: Arc::new(mapper),
                config: self,
            }),
            _ => Err(ConfigErrors(errs)),
        }
    }
}

/// Bucket bounds: at least one, finite, strictly increasing.
pub fn check_buckets(b: &[f64]) -> Result<(), String> {
    if b.is_empty() {
        return Err("at least one bucket is needed".to_string());
    }
    if let Some(x) = b.iter().find(|x| !x.is_finite()) {
        return Err(format!("{x} is not a finite bound (+Inf is implicit)"));
    }
    if let Some(w) = b.windows(2).find(|w| w[0] >= w[1]) {
        return Err(format!(
            "bounds must be strictly increasing, got {} after {}",
            w[1], w[0]
        ));
    }
    Ok(())
}

/// Parses `0.01,0.1,1` (the `--statsd-buckets` flag); [`StatsdConfig::validate`] checks the order.
pub fn parse_buckets(s: &str) -> Result<Vec<f64>, String> {
    s.split(',')
        .map(|x| {
            x.trim()
                .parse::<f64>()
                .map_err(|_| format!("`{}` is not a number", x.trim()))
        })
        .collect()
}

/// Parses the `--statsd-udp` flag: an address, or `off`.
pub fn parse_udp_listen(s: &str) -> Result<Option<SocketAddr>, String> {
    if s.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    s.parse()
        .map(Some)
        .map_err(|_| format!("`{s}` is neither an address such as 0.0.0.0:8125 nor `off`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_listen_on_8125() {
        let s = StatsdConfig::default().validate().unwrap();
        assert_eq!(s.config.udp, Some("0.0.0.0:8125".parse().unwrap()));
        assert_eq!(&*s.aggregate.buckets, &DEFAULT_BUCKETS);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let mapping = dir.path().join("mapping.yml");
        std::fs::write(&mapping, "mappings:\n  - match: a.*\n    nme: x\n").unwrap();
        let c = StatsdConfig {
            buckets: vec![1.0, 0.5],
            ttl: Duration::from_millis(10),
            max_series: 0,
            queue_bytes: 1000,
            mapping: Some(mapping.clone()),
            ..Default::default()
        };
        let e = c.validate().unwrap_err();
        let text = e.to_string();
        assert_eq!(e.0.len(), 5, "{text}");
        assert!(
            text.contains("strictly increasing, got 0.5 after 1"),
            "{text}"
        );
        assert!(text.contains("ttl 10ms"), "{text}");
        assert!(text.contains("max_series must be at least 1"), "{text}");
        assert!(text.contains("queue_bytes 1000"), "{text}");
        assert!(
            text.contains(&format!(
                "{}:3:5: mapping: unknown field `nme`",
                mapping.display()
            )),
            "{text}"
        );
    }

    #[test]
    fn serde_is_strict_and_reads_human_durations() {
        let c: StatsdConfig =
            serde_json::from_str(r#"{"udp": null, "unix": "/tmp/s.sock", "ttl": "10m"}"#).unwrap();
        assert_eq!(c.udp, None);
        assert_eq!(c.ttl, Duration::from_secs(600));
        assert!(c.enabled());
        let e = serde_json::from_str::<StatsdConfig>(r#"{"tll": "10m"}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `tll`"), "{e}");
        let e = serde_json::from_str::<StatsdConfig>(r#"{"ttl": "10 parsecs"}"#).unwrap_err();
        assert!(e.to_string().contains("invalid duration"), "{e}");
        let back: StatsdConfig = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn flags_parse() {
        assert_eq!(parse_buckets("0.1, 1,10").unwrap(), vec![0.1, 1.0, 10.0]);
        assert!(parse_buckets("1,x").unwrap_err().contains("`x`"));
        assert!(check_buckets(&parse_buckets("1,1").unwrap()).is_err());
        assert!(check_buckets(&parse_buckets("1,inf").unwrap()).is_err());
        assert_eq!(parse_udp_listen("off"), Ok(None));
        assert_eq!(
            parse_udp_listen("127.0.0.1:9125"),
            Ok(Some("127.0.0.1:9125".parse().unwrap()))
        );
        assert!(parse_udp_listen("8125").unwrap_err().contains("nor `off`"));
    }
}
