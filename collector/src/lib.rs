//! Plimsoll collector: samples the host and its containers from /proc and cgroupfs, keeps a recent
//! window in memory and serves it on /metrics and a JSON API.
//!
//! Laid out by responsibility: `sources` (the components that write), `store` (the in-memory window),
//! `http` (exposition and JSON API), and `run` (the shell that builds and drives them).

pub mod backoff;
pub mod config;
pub mod http;
pub mod query;
pub mod run;
pub mod sampler;
pub mod serde_duration;
pub mod sources;
pub mod store;
pub mod telemetry;
pub mod yaml;

#[cfg(test)]
mod testutil;

pub use config::CollectorConfig;
pub use run::Collector;
