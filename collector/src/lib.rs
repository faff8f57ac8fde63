//! Plimsoll collector: samples the host and its containers from /proc and cgroupfs, keeps a recent
//! window in memory and serves it on /metrics and a JSON API.

pub mod api;
pub mod cgroup;
pub mod config;
pub mod container;
pub mod discovery;
pub mod host;
pub mod kernel;
pub mod procfile;
pub mod run;
pub mod sampler;
pub mod store;
pub mod telemetry;
pub mod yaml;

pub use config::CollectorConfig;
pub use run::Collector;
