//! The sampling thread's body: the sampled sources (the host, the containers) driven through one
//! pass per tick, and the discovery events the container source follows.
//!
//! Container files are read outside the store's lock; only appending takes it, so API readers wait
//! for microseconds, not for file reads. The pass is driven by [`crate::run`], which owns the clock
//! and passes `now` in.

#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::config::CollectorConfig;
use crate::sources::cgroup::{CgroupSample, CgroupSource, Views};
use crate::sources::docker::ContainerInfo;
use crate::sources::host::HostSource;
use crate::sources::kernel::NetCounters;
use crate::store::{Ingest, IngestError, Millis};
use crate::telemetry::PassCompleted;

/// What discovery tells the sampler.
#[derive(Debug)]
pub enum DiscoveryEvent {
    /// A container started or changed (rename, update, health).
    Upsert(ContainerInfo),
    /// A container stopped or was removed.
    Remove(String),
    /// A sample read through the stats API for a container in fallback mode.
    StatsSample {
        id: String,
        sample: CgroupSample,
        net: Vec<(String, NetCounters)>,
    },
}

/// Asks the stats API poller to start or stop polling a container whose cgroup cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatsRequest {
    Start(String),
    Stop(String),
}

/// What readers share with the sampling thread.
#[derive(Debug, Clone)]
pub struct Shared {
    /// The store (lock it with `ingest.read()` for `crate::query::Query`).
    pub ingest: Ingest,
    /// The sampled containers by full id.
    pub containers: Views,
    last_pass: Arc<AtomicI64>,
}

impl Shared {
    /// Time of the latest completed pass, for health checks.
    pub fn last_pass(&self) -> Option<Millis> {
        let t = self.last_pass.load(Ordering::Relaxed);
        (t != Millis::MIN).then_some(t)
    }
}

pub struct Sampler {
    host: HostSource,
    containers: CgroupSource,
    shared: Shared,
}

impl Sampler {
    /// Builds the host and container sources from `config` on `ingest`. Containers whose cgroup
    /// cannot be read go through the stats API poller given in `stats_requests`, if any.
    pub fn build(
        config: &CollectorConfig,
        ingest: &Ingest,
        stats_requests: Option<tokio::sync::mpsc::UnboundedSender<StatsRequest>>,
    ) -> Result<Self, IngestError> {
        let host = HostSource::build(&config.host, ingest)?;
        let containers = CgroupSource::build(
            &config.cgroup,
            &config.host.proc_root,
            config.interval,
            ingest,
            stats_requests,
        )?;
        let shared = Shared {
            ingest: ingest.clone(),
            containers: containers.views(),
            last_pass: Arc::new(AtomicI64::new(Millis::MIN)),
        };
        Ok(Self {
            host,
            containers,
            shared,
        })
    }

    pub fn shared(&self) -> Shared {
        self.shared.clone()
    }

    /// Applies a discovery event.
    pub fn apply(&mut self, ev: DiscoveryEvent) {
        let ingest = &self.shared.ingest;
        match ev {
            DiscoveryEvent::Upsert(info) if info.state == "running" => {
                self.containers.upsert(ingest, info)
            }
            DiscoveryEvent::Upsert(info) => self.containers.remove(ingest, &info.id),
            DiscoveryEvent::Remove(id) => self.containers.remove(ingest, &id),
            DiscoveryEvent::StatsSample { id, sample, net } => {
                self.containers.stats_sample(&id, sample, net)
            }
        }
    }

    /// One sampling pass at `now`.
    pub fn pass(&mut self, now: Millis) {
        let started = Instant::now();
        let ingest = &self.shared.ingest;
        self.containers.read(ingest);
        self.host.sample(ingest, now);
        let host = &self.host;
        let device = |major, minor| host.device_name(major, minor).map(str::to_string);
        self.containers.write(ingest, now, &device);
        self.shared.last_pass.store(now, Ordering::Relaxed);
        let (series, sample_bytes) = {
            let st = ingest.read();
            (st.series_count(), st.sample_bytes())
        };
        PassCompleted {
            duration: started.elapsed(),
            containers: self.containers.tracked(),
            series,
            sample_bytes,
        }
        .emit();
    }

    pub fn tracked(&self) -> usize {
        self.containers.tracked()
    }
}
