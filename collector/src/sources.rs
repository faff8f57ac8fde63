//! Every component that writes into the store, one folder each, and the kernel-file readers the
//! sampled ones share.

pub mod cgroup;
pub mod directory;
pub mod docker;
pub mod host;
pub mod kernel;
pub mod otlp;
pub mod procfile;
pub mod scrape;
pub mod spans;
pub mod statsd;
