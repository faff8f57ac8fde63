//! The container source: every running container's cgroup (or, where cgroupfs cannot be read, its
//! Docker stats API samples) and network namespace, under cAdvisor's names, one batch per pass.
//!
//! Two store sources: `cgroup`, read every pass (a series a pass does not write is gone), and
//! `docker_stats`, fed by the stats API poller at its own pace (a sample stays current for a few
//! intervals). Every series is attributed to its container.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::Serialize;

use super::container::{Families, Source, Tracked};
use super::{CgroupConfig, CgroupError, CgroupLayout, CgroupSample, CgroupSpec};
use crate::sampler::StatsRequest;
use crate::sources::docker::{ContainerInfo, LabelAllowList};
use crate::sources::kernel::{self, NetCounters};
use crate::sources::procfile::{KeptFile, ReadBuf};
use crate::store::{
    Ingest, IngestError, Labels, Limits, Millis, SeriesCursor, SourceDesc, SourceId, Writer,
};
use crate::telemetry::{ErrorKind, SampleFailed};

/// How a container is sampled, for the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    Cgroup,
    StatsApi,
}

/// A sampled container as readers see it.
#[derive(Debug, Clone, Serialize)]
pub struct ContainerView {
    #[serde(flatten)]
    pub info: ContainerInfo,
    /// cAdvisor's `id` label: the cgroup path.
    pub cgroup: String,
    pub spec: CgroupSpec,
    pub source: SourceKind,
}

/// The sampled containers by full id, shared with readers.
pub type Views = Arc<RwLock<BTreeMap<String, ContainerView>>>;

pub struct CgroupSource {
    fams: Families,
    src: SourceId,
    stats_src: SourceId,
    tracked: HashMap<String, Tracked>,
    layout: Option<CgroupLayout>,
    proc_root: PathBuf,
    stats_requests: Option<tokio::sync::mpsc::UnboundedSender<StatsRequest>>,
    fallback_logged: bool,
    buf: ReadBuf,
    failures: Vec<CgroupError>,
    vanished: Vec<String>,
    views: Views,
    /// Docker labels copied as `container_label_<name>`.
    allowed: LabelAllowList,
    /// The whole machine as cAdvisor's `id="/"`; None without a readable hierarchy.
    root: Option<RootCgroup>,
}

/// The root cgroup: what every process of the machine uses, as cAdvisor's `id="/"` series.
struct RootCgroup {
    cgroup: super::ContainerCgroup,
    labels: Labels,
    cursor: SeriesCursor,
    sample: CgroupSample,
    spec: CgroupSpec,
    /// The host's interfaces (pid 1's network namespace).
    net: Option<KeptFile>,
    net_buf: ReadBuf,
    /// cgroup v2 has no memory.current at the root: memory comes from /proc/meminfo then.
    meminfo: Option<KeptFile>,
    fresh: bool,
    /// Online logical CPUs and installed memory, read at start as cAdvisor's machine info.
    machine: (i64, i64),
    machine_cursor: SeriesCursor,
}

/// cAdvisor leaves these interfaces out of a cgroup's network series: loopback, the host ends of
/// containers' veth pairs and Docker's bridges (their traffic is the containers', counted there).
fn ignored_interface(name: &str) -> bool {
    ["lo", "veth", "docker"].iter().any(|p| name.starts_with(p))
}

impl CgroupSource {
    /// Detects the cgroup hierarchy under `config.root`; without one, containers go through the
    /// stats API when a poller is given in `stats_requests`. `proc_root` is the host's /proc (for
    /// each container's /proc/PID/cgroup and net/dev); `interval` the sampling interval.
    pub fn build(
        config: &CgroupConfig,
        proc_root: &Path,
        interval: Duration,
        ingest: &Ingest,
        stats_requests: Option<tokio::sync::mpsc::UnboundedSender<StatsRequest>>,
    ) -> Result<Self, IngestError> {
        let layout = match CgroupLayout::detect(&config.root) {
            Ok(l) => {
                tracing::info!(version = ?l.version, root = %l.root.display(), "cgroup hierarchy detected");
                Some(l)
            }
            Err(e) => {
                tracing::warn!(error = %e, "cgroupfs unreadable: containers will be sampled through the Docker stats API");
                None
            }
        };
        let src = ingest.register_source(SourceDesc {
            name: "cgroup",
            stale_after: Duration::ZERO,
            limits: Limits::UNLIMITED,
        })?;
        // A one-shot stats call takes about a second on the daemon; its sample stays current a few
        // intervals, as it did when it was the container's latest.
        let stats_src = ingest.register_source(SourceDesc {
            name: "docker_stats",
            stale_after: (interval * 5).max(Duration::from_secs(5)),
            limits: Limits::UNLIMITED,
        })?;
        let root = layout.as_ref().and_then(|l| {
            let cgroup = l
                .open_root()
                .map_err(|e| tracing::warn!(error = %e, "root cgroup (id=\"/\") not sampled"))
                .ok()?;
            let meminfo = (l.version == super::CgroupVersion::V2)
                .then(|| KeptFile::open(proc_root.join("meminfo")).ok())
                .flatten();
            let net = KeptFile::open(proc_root.join("1/net/dev"))
                .or_else(|_| KeptFile::open(proc_root.join("net/dev")))
                .ok();
            Some(RootCgroup {
                spec: cgroup.spec(),
                cgroup,
                labels: vec![("id".into(), "/".to_string())],
                cursor: SeriesCursor::default(),
                sample: CgroupSample::default(),
                net,
                net_buf: ReadBuf::with_capacity(4096),
                meminfo,
                fresh: false,
                machine: machine_info(),
                machine_cursor: SeriesCursor::default(),
            })
        });
        Ok(Self {
            fams: Families::register(ingest)?,
            src,
            stats_src,
            tracked: HashMap::new(),
            layout,
            proc_root: proc_root.to_path_buf(),
            stats_requests,
            fallback_logged: false,
            buf: ReadBuf::with_capacity(8 << 10),
            failures: Vec::new(),
            vanished: Vec::new(),
            views: Views::default(),
            allowed: LabelAllowList::new(&config.container_labels),
            root,
        })
    }

    pub fn views(&self) -> Views {
        self.views.clone()
    }

    pub fn tracked(&self) -> usize {
        self.tracked.len()
    }

    /// A container started or changed (rename, update, health).
    pub fn upsert(&mut self, ingest: &Ingest, info: ContainerInfo) {
        if let Some(t) = self.tracked.get_mut(&info.id) {
            if t.info.series_labels("", &self.allowed) == info.series_labels("", &self.allowed)
                && t.info.pid == info.pid
            {
                // Same series and process: only metadata and limits may have changed.
                t.spec = match &t.source {
                    Source::Cgroup(cg) => cg.spec(),
                    Source::StatsApi => info.limits,
                };
                t.info = info;
                let mut views = self.views.write().expect("views lock");
                if let Some(v) = views.get_mut(&t.info.id) {
                    v.info = t.info.clone();
                    v.spec = t.spec;
                }
                return;
            }
            // Renamed or restarted: its series change labels, so this source's old ones go.
            let id = info.id.clone();
            self.forget(ingest, &id, false);
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
        let kind = match source {
            Source::Cgroup(_) => SourceKind::Cgroup,
            Source::StatsApi => SourceKind::StatsApi,
        };
        self.views.write().expect("views lock").insert(
            info.id.clone(),
            ContainerView {
                info: info.clone(),
                cgroup: cgroup_name.clone(),
                spec,
                source: kind,
            },
        );
        self.tracked.insert(
            info.id.clone(),
            Tracked {
                labels: info.series_labels(&cgroup_name, &self.allowed),
                started_ms: info
                    .started_at
                    .as_deref()
                    .and_then(|s| humantime::parse_rfc3339_weak(s).ok())
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map(|d| d.as_millis() as Millis),
                info,
                source,
                spec,
                cursor: SeriesCursor::default(),
                net,
                net_buf: ReadBuf::with_capacity(1024),
                stats_net: Vec::new(),
                sample: CgroupSample::default(),
                fresh: false,
            },
        );
    }

    /// A container stopped or was removed: its series go, every source's (business series
    /// attributed to it too).
    pub fn remove(&mut self, ingest: &Ingest, id: &str) {
        self.forget(ingest, id, true);
    }

    fn forget(&mut self, ingest: &Ingest, id: &str, all_sources: bool) {
        if all_sources {
            // Even a container this source could not sample may have series of receivers.
            ingest.remove_attributed(id, None);
        }
        let Some(t) = self.tracked.remove(id) else {
            return;
        };
        if let (Source::StatsApi, Some(tx)) = (&t.source, &self.stats_requests) {
            let _ = tx.send(StatsRequest::Stop(id.to_string()));
        }
        if !all_sources {
            ingest.remove_attributed(id, Some(self.src));
            ingest.remove_attributed(id, Some(self.stats_src));
        }
        self.views.write().expect("views lock").remove(id);
    }

    /// A sample the stats API poller read for a container in fallback mode.
    pub fn stats_sample(
        &mut self,
        id: &str,
        sample: CgroupSample,
        net: Vec<(String, NetCounters)>,
    ) {
        if let Some(t) = self.tracked.get_mut(id) {
            t.sample = sample;
            t.stats_net = net;
            t.fresh = true;
        }
    }

    /// Reads every container's cgroup and net/dev files, outside the store's lock. Containers whose
    /// cgroup vanished are forgotten.
    pub fn read(&mut self, ingest: &Ingest) {
        if let Some(r) = &mut self.root {
            r.read(&mut self.buf, &mut self.failures);
        }
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
            self.remove(ingest, &id);
        }
    }

    /// Writes what `read` (or the stats API poller) got this pass at `now`: one batch per store
    /// source. `device` names a block device by its numbers.
    pub fn write(
        &mut self,
        ingest: &Ingest,
        now: Millis,
        device: &dyn Fn(u32, u32) -> Option<String>,
    ) {
        for (src, stats_api) in [(self.src, false), (self.stats_src, true)] {
            let (fams, tracked, root) = (&self.fams, &mut self.tracked, &mut self.root);
            ingest.batch(src, now, |b| {
                for t in tracked.values_mut() {
                    if matches!(t.source, Source::StatsApi) != stats_api
                        || !std::mem::take(&mut t.fresh)
                    {
                        continue;
                    }
                    let mut w = Writer::new(b, &mut t.cursor, &t.labels, Some(&t.info.id));
                    let net = kernel::net_dev(t.net_buf.content())
                        .chain(t.stats_net.iter().map(|(n, c)| (n.as_str(), *c)));
                    fams.write(&mut w, &t.sample, &t.spec, net, device);
                    fams.write_times(&mut w, now, t.started_ms);
                }
                if let Some(r) = root.as_mut().filter(|r| !stats_api && r.fresh) {
                    r.fresh = false;
                    let mut w = Writer::new(b, &mut r.machine_cursor, &[], None);
                    fams.write_machine(&mut w, r.machine.0, r.machine.1);
                    let mut w = Writer::new(b, &mut r.cursor, &r.labels, None);
                    let net =
                        kernel::net_dev(r.net_buf.content()).filter(|(n, _)| !ignored_interface(n));
                    fams.write(&mut w, &r.sample, &r.spec, net, device);
                    fams.write_times(&mut w, now, None);
                }
            });
        }
    }
}

impl RootCgroup {
    fn read(&mut self, buf: &mut ReadBuf, failures: &mut Vec<CgroupError>) {
        self.fresh = match self.cgroup.read(buf, &mut self.sample, failures) {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!(error = %e, "root cgroup read failed");
                SampleFailed {
                    kind: ErrorKind::CgroupRead,
                }
                .emit();
                false
            }
        };
        for e in failures.drain(..) {
            tracing::debug!(error = %e, "root cgroup file not read");
            SampleFailed {
                kind: ErrorKind::CgroupRead,
            }
            .emit();
        }
        if let Some(f) = &self.meminfo {
            if self.sample.memory_usage.is_none() && f.read(buf).is_ok() {
                super::v2::root_memory(buf.content(), &mut self.sample);
            }
        }
        self.net_buf.clear();
        if let Some(f) = &self.net {
            let _ = f.read(&mut self.net_buf);
        }
    }
}

/// Online logical CPUs and total memory (`sysconf`, `sysinfo`).
fn machine_info() -> (i64, i64) {
    // SAFETY: sysconf has no preconditions; `si` is a valid out pointer for sysinfo.
    let cores = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(0) as i64;
    let mut si: libc::sysinfo = unsafe { std::mem::zeroed() };
    let memory = if unsafe { libc::sysinfo(&mut si) } == 0 {
        (si.totalram as i64).saturating_mul(i64::from(si.mem_unit.max(1)))
    } else {
        0
    };
    (cores, memory)
}
