//! The sampling pass: the host and every tracked container, read and appended to the store.
//!
//! Reads happen outside the state lock; only appending takes it, so API readers wait for microseconds,
//! not for file reads. The pass is driven by [`crate::run`], which owns the clock and passes `now` in.

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use serde::Serialize;

use crate::sources::cgroup::container::{Families, Source, Tracked};
use crate::sources::cgroup::{CgroupError, CgroupLayout, CgroupSample, CgroupSpec};
use crate::sources::docker::ContainerInfo;
use crate::sources::host::HostSampler;
use crate::sources::kernel::{self, NetCounters};
use crate::sources::procfile::{KeptFile, ReadBuf};
use crate::store::{EntityId, Millis, SeriesCursor, Store};
use crate::telemetry::{ErrorKind, PassCompleted, SampleFailed};

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

/// How a container is sampled, for the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    Cgroup,
    StatsApi,
}

/// A tracked container as readers see it.
#[derive(Debug, Clone, Serialize)]
pub struct ContainerView {
    #[serde(flatten)]
    pub info: ContainerInfo,
    /// cAdvisor's `id` label: the cgroup path.
    pub cgroup: String,
    pub spec: CgroupSpec,
    pub source: SourceKind,
    #[serde(skip)]
    pub entity: EntityId,
}

/// Everything readers share with the sampler.
#[derive(Debug)]
pub struct State {
    pub store: Store,
    pub containers: BTreeMap<String, ContainerView>,
    pub host: EntityId,
    pub cgroup: Option<CgroupLayout>,
    /// Time of the latest completed pass, for health checks and staleness.
    pub last_pass: Option<Millis>,
}

pub type Shared = Arc<RwLock<State>>;

pub struct Sampler {
    shared: Shared,
    host: HostSampler,
    fams: Families,
    tracked: HashMap<String, Tracked>,
    layout: Option<CgroupLayout>,
    proc_root: PathBuf,
    stats_requests: Option<tokio::sync::mpsc::UnboundedSender<StatsRequest>>,
    fallback_logged: bool,
    buf: ReadBuf,
    failures: Vec<CgroupError>,
    vanished: Vec<String>,
}

impl Sampler {
    /// `layout` None means cgroupfs is unreadable: every container goes through the stats API, if a
    /// poller is given in `stats_requests`.
    pub fn new(
        window_ms: Millis,
        proc_root: PathBuf,
        layout: Option<CgroupLayout>,
        stats_requests: Option<tokio::sync::mpsc::UnboundedSender<StatsRequest>>,
    ) -> Self {
        let mut store = Store::new(window_ms);
        let host = HostSampler::new(&proc_root, &mut store);
        let fams = Families::register(&mut store);
        let state = State {
            store,
            containers: BTreeMap::new(),
            host: host.entity(),
            cgroup: layout.clone(),
            last_pass: None,
        };
        Self {
            shared: Arc::new(RwLock::new(state)),
            host,
            fams,
            tracked: HashMap::new(),
            layout,
            proc_root,
            stats_requests,
            fallback_logged: false,
            buf: ReadBuf::with_capacity(8 << 10),
            failures: Vec::new(),
            vanished: Vec::new(),
        }
    }

    pub fn shared(&self) -> Shared {
        self.shared.clone()
    }

    /// Applies a discovery event.
    pub fn apply(&mut self, ev: DiscoveryEvent) {
        match ev {
            DiscoveryEvent::Upsert(info) if info.state == "running" => self.upsert(info),
            DiscoveryEvent::Upsert(info) => self.remove(&info.id),
            DiscoveryEvent::Remove(id) => self.remove(&id),
            DiscoveryEvent::StatsSample { id, sample, net } => {
                if let Some(t) = self.tracked.get_mut(&id) {
                    t.sample = sample;
                    t.stats_net = net;
                    t.fresh = true;
                }
            }
        }
    }

    fn upsert(&mut self, info: ContainerInfo) {
        if let Some(t) = self.tracked.get_mut(&info.id) {
            if t.info.series_labels("") == info.series_labels("") && t.info.pid == info.pid {
                // Same series and process: only metadata and limits may have changed.
                t.spec = match &t.source {
                    Source::Cgroup(cg) => cg.spec(),
                    Source::StatsApi => info.limits,
                };
                t.info = info;
                let mut st = self.shared.write().expect("state lock");
                if let Some(v) = st.containers.get_mut(&t.info.id) {
                    v.info = t.info.clone();
                    v.spec = t.spec;
                }
                return;
            }
            let id = info.id.clone();
            self.remove(&id);
        }
        let proc_cgroup = info.pid.and_then(|pid| {
            std::fs::read_to_string(self.proc_root.join(pid.to_string()).join("cgroup")).ok()
        });
        let opened = match &self.layout {
            Some(l) => l
                .open(&info.id, proc_cgroup.as_deref())
                .map_err(|e| e.to_string()),
            None => Err("cgroupfs is not readable".to_string()),
        };
        let (source, cgroup_name, spec) = match opened {
            Ok(cg) => {
                let (name, spec) = (cg.name().to_string(), cg.spec());
                (Source::Cgroup(Box::new(cg)), name, spec)
            }
            Err(why) => {
                let Some(tx) = &self.stats_requests else {
                    tracing::debug!(container = %info.name, %why, "container not sampled");
                    SampleFailed {
                        kind: ErrorKind::CgroupRead,
                    }
                    .emit();
                    return;
                };
                if !self.fallback_logged {
                    tracing::warn!(container = %info.name, %why, "falling back to the Docker stats API for containers whose cgroup cannot be read (slower, costs the daemon CPU)");
                    self.fallback_logged = true;
                }
                let _ = tx.send(StatsRequest::Start(info.id.clone()));
                (
                    Source::StatsApi,
                    format!("/docker/{}", info.id),
                    info.limits,
                )
            }
        };
        let net = match (info.host_network, info.pid) {
            (false, Some(pid)) => {
                KeptFile::open(self.proc_root.join(pid.to_string()).join("net/dev")).ok()
            }
            _ => None,
        };
        let mut st = self.shared.write().expect("state lock");
        let entity = st.store.add_entity(info.series_labels(&cgroup_name));
        let kind = match source {
            Source::Cgroup(_) => SourceKind::Cgroup,
            Source::StatsApi => SourceKind::StatsApi,
        };
        st.containers.insert(
            info.id.clone(),
            ContainerView {
                info: info.clone(),
                cgroup: cgroup_name,
                spec,
                source: kind,
                entity,
            },
        );
        drop(st);
        self.tracked.insert(
            info.id.clone(),
            Tracked {
                info,
                source,
                spec,
                entity,
                cursor: SeriesCursor::default(),
                net,
                net_buf: ReadBuf::with_capacity(1024),
                stats_net: Vec::new(),
                sample: CgroupSample::default(),
                fresh: false,
            },
        );
    }

    fn remove(&mut self, id: &str) {
        let Some(t) = self.tracked.remove(id) else {
            return;
        };
        if let (Source::StatsApi, Some(tx)) = (&t.source, &self.stats_requests) {
            let _ = tx.send(StatsRequest::Stop(id.to_string()));
        }
        let mut st = self.shared.write().expect("state lock");
        st.store.remove_entity(t.entity);
        st.containers.remove(id);
    }

    /// One sampling pass at `now`.
    pub fn pass(&mut self, now: Millis) {
        let started = Instant::now();
        for (id, t) in self.tracked.iter_mut() {
            if let Source::Cgroup(cg) = &t.source {
                match cg.read(&mut self.buf, &mut t.sample, &mut self.failures) {
                    Ok(()) => t.fresh = true,
                    Err(CgroupError::Vanished) => {
                        self.vanished.push(id.clone());
                        continue;
                    }
                    Err(e) => {
                        tracing::debug!(container = %t.info.name, error = %e, "cgroup read failed");
                        SampleFailed {
                            kind: ErrorKind::CgroupRead,
                        }
                        .emit();
                    }
                }
                for e in self.failures.drain(..) {
                    tracing::debug!(container = %t.info.name, error = %e, "cgroup file not read");
                    SampleFailed {
                        kind: ErrorKind::CgroupRead,
                    }
                    .emit();
                }
            }
            t.net_buf.clear();
            if let Some(f) = &t.net {
                // A failed read leaves the buffer empty: no interfaces this pass.
                let _ = f.read(&mut t.net_buf);
            }
        }
        for id in std::mem::take(&mut self.vanished) {
            // Stopped between discovery and this read: the events stream will say so too.
            SampleFailed {
                kind: ErrorKind::Vanished,
            }
            .emit();
            self.remove(&id);
        }
        let mut st = self.shared.write().expect("state lock");
        self.host.sample(&mut st.store, now);
        let host = &self.host;
        let device = |major, minor| host.device_name(major, minor).map(str::to_string);
        for t in self.tracked.values_mut() {
            if !std::mem::take(&mut t.fresh) {
                continue;
            }
            let mut w = st.store.writer(t.entity, &mut t.cursor, now);
            let net = kernel::net_dev(t.net_buf.content())
                .chain(t.stats_net.iter().map(|(n, c)| (n.as_str(), *c)));
            self.fams.write(&mut w, &t.sample, &t.spec, net, &device);
        }
        st.last_pass = Some(now);
        let (series, sample_bytes) = (st.store.series_count(), st.store.sample_bytes());
        drop(st);
        PassCompleted {
            duration: started.elapsed(),
            containers: self.tracked.len(),
            series,
            sample_bytes,
        }
        .emit();
    }

    pub fn tracked(&self) -> usize {
        self.tracked.len()
    }
}
