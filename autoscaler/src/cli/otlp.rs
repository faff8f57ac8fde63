//! The OTLP receiver's flags, shared by `collect` and `run` (flattened into `CollectorArgs`).

use std::net::SocketAddr;

use plimsoll_collector::sources::otlp::{config::parse_listen, OtlpConfig};

/// `std::option::Option`, not `Option`: clap would otherwise make the flag optional and expect the
/// parser to return the address alone; here `off` parses to `None`.
type Listen = std::option::Option<SocketAddr>;

#[derive(Debug, Clone, clap::Args)]
pub struct OtlpArgs {
    /// OTLP/gRPC listen address (metrics; traces too when received), or `off`.
    #[arg(long, value_name = "ADDR|off", default_value = "0.0.0.0:4317", value_parser = parse_listen)]
    pub otlp_grpc: Listen,
    /// OTLP/HTTP listen address (POST /v1/metrics; /v1/traces too when received), or `off`.
    #[arg(long, value_name = "ADDR|off", default_value = "0.0.0.0:4318", value_parser = parse_listen)]
    pub otlp_http: Listen,
}

impl OtlpArgs {
    pub fn config(&self) -> OtlpConfig {
        OtlpConfig {
            grpc: self.otlp_grpc,
            http: self.otlp_http,
            ..OtlpConfig::default()
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
        otlp: OtlpArgs,
    }

    #[test]
    fn listen_on_the_otlp_ports_by_default_and_can_be_moved_or_turned_off() {
        let c = Cli::parse_from(["x"]).otlp.config();
        assert_eq!(c.grpc, Some("0.0.0.0:4317".parse().unwrap()));
        assert_eq!(c.http, Some("0.0.0.0:4318".parse().unwrap()));
        let c = Cli::parse_from(["x", "--otlp-grpc", "off", "--otlp-http", "127.0.0.1:14318"])
            .otlp
            .config();
        assert_eq!(c.grpc, None);
        assert_eq!(c.http, Some("127.0.0.1:14318".parse().unwrap()));
        let e = Cli::try_parse_from(["x", "--otlp-http", "4318"]).unwrap_err();
        assert!(e.to_string().contains("nor `off`"), "{e}");
    }
}
