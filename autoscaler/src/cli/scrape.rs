//! The Prometheus scrape's flags, shared by `collect` and `run` (flattened into `CollectorArgs`).

use std::time::Duration;

use plimsoll_collector::sources::scrape::ScrapeConfig;

#[derive(Debug, Clone, clap::Args)]
pub struct ScrapeArgs {
    /// Scrape the containers labelled `plimsoll.scrape.port` or `prometheus.io/scrape=true`: on or
    /// off.
    #[arg(long, value_name = "on|off", default_value = "on", value_parser = on_off, action = clap::ArgAction::Set)]
    pub scrape: bool,
    /// Scrape interval of a target without `plimsoll.scrape.interval` [default: --interval].
    #[arg(long, value_parser = humantime::parse_duration)]
    pub scrape_interval: Option<Duration>,
    /// Scrape timeout of a target without `plimsoll.scrape.timeout` [default: min(its interval,
    /// 10s)].
    #[arg(long, value_parser = humantime::parse_duration)]
    pub scrape_timeout: Option<Duration>,
}

fn on_off(s: &str) -> Result<bool, String> {
    match s {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("{s:?} is neither `on` nor `off`")),
    }
}

impl ScrapeArgs {
    pub fn config(&self) -> ScrapeConfig {
        ScrapeConfig {
            enabled: self.scrape,
            interval: self.scrape_interval,
            timeout: self.scrape_timeout,
            ..ScrapeConfig::default()
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
        scrape: ScrapeArgs,
    }

    #[test]
    fn scrape_is_on_by_default_with_the_collector_interval_and_can_be_turned_off() {
        let c = Cli::parse_from(["x"]).scrape.config();
        assert!(c.enabled);
        assert_eq!((c.interval, c.timeout), (None, None));
        let c = Cli::parse_from([
            "x",
            "--scrape",
            "off",
            "--scrape-interval",
            "15s",
            "--scrape-timeout",
            "2s",
        ])
        .scrape
        .config();
        assert!(!c.enabled);
        assert_eq!(c.interval, Some(Duration::from_secs(15)));
        assert_eq!(c.timeout, Some(Duration::from_secs(2)));
        let e = Cli::try_parse_from(["x", "--scrape", "yes"]).unwrap_err();
        assert!(e.to_string().contains("neither `on` nor `off`"), "{e}");
    }
}
