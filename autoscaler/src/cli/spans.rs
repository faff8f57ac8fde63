//! The spans component's flags (RED metrics and the service graph from OTLP spans), shared by
//! `collect` and `run` (flattened into `CollectorArgs`).

use std::time::Duration;

use plimsoll_collector::sources::spans::{Dimension, Peers, SpansConfig};

#[derive(Debug, Clone, clap::Args)]
pub struct SpansArgs {
    /// A span or resource attribute that becomes a label of the span metrics (repeatable), e.g.
    /// `http.request.method` → `http_request_method`.
    #[arg(long = "spans-dimension", value_name = "ATTRIBUTE")]
    pub dimensions: Vec<String>,
    /// Fold ids in span names (numbers, UUIDs, long hex segments, query strings) into `{id}`.
    #[arg(long = "spans-normalize-names")]
    pub normalize_names: bool,
    /// Span metric series one service may have; beyond, its spans count in its overflow series.
    #[arg(
        long = "spans-max-series-per-service",
        value_name = "N",
        default_value_t = 1000
    )]
    pub max_series_per_service: usize,
    /// How long a client or server span waits for the other span of its call.
    #[arg(long = "spans-graph-wait", value_name = "DURATION", default_value = "2s", value_parser = humantime::parse_duration)]
    pub graph_wait: Duration,
    /// Spans waiting for the other span of their call at most; beyond, new ones are dropped.
    #[arg(
        long = "spans-graph-max-items",
        value_name = "N",
        default_value_t = 1000
    )]
    pub graph_max_items: usize,
    /// The collectors of the cluster (`dns:tasks.NAME:PORT`, re-resolved every 10 s, or
    /// `ADDR:PORT,...`, their API addresses): each span's edge half goes to the collector that owns
    /// its trace, so calls whose spans different collectors received are paired.
    #[arg(long = "spans-peers", value_name = "dns:NAME:PORT|ADDR,...")]
    pub peers: Option<Peers>,
}

impl SpansArgs {
    pub fn config(&self) -> SpansConfig {
        SpansConfig {
            dimensions: self
                .dimensions
                .iter()
                .map(|d| Dimension {
                    name: d.clone(),
                    default: None,
                })
                .collect(),
            normalize_span_names: self.normalize_names,
            max_series_per_service: self.max_series_per_service,
            graph_wait: self.graph_wait,
            graph_max_items: self.graph_max_items,
            peers: self.peers.clone(),
            ..SpansConfig::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        spans: SpansArgs,
    }

    #[test]
    fn defaults_are_the_connectors_and_flags_set_the_config() {
        assert_eq!(
            Cli::parse_from(["x"]).spans.config(),
            SpansConfig::default()
        );
        let c = Cli::parse_from([
            "x",
            "--spans-dimension",
            "http.method",
            "--spans-dimension",
            "deployment.environment",
            "--spans-normalize-names",
            "--spans-graph-wait",
            "5s",
            "--spans-graph-max-items",
            "50000",
            "--spans-peers",
            "dns:tasks.plimsoll:9180",
        ])
        .spans
        .config();
        assert_eq!(c.dimensions.len(), 2);
        assert_eq!(c.dimensions[1].name, "deployment.environment");
        assert!(c.normalize_span_names);
        assert_eq!(c.graph_wait, Duration::from_secs(5));
        assert_eq!(c.graph_max_items, 50_000);
        assert_eq!(
            c.peers,
            Some(Peers::Dns {
                name: "tasks.plimsoll".into(),
                port: 9180
            })
        );
        let e = Cli::try_parse_from(["x", "--spans-peers", "node1"]).unwrap_err();
        assert!(e.to_string().contains("dns:NAME:PORT"), "{e}");
    }
}
