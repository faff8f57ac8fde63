//! Plimsoll collector: samples the host and its containers from /proc and cgroupfs, keeps a recent
//! window in memory and serves it on /metrics and a JSON API.

pub mod host;
pub mod kernel;
pub mod procfile;
pub mod store;
pub mod telemetry;
