//! Container cgroups: where they are (v1 or v2, cgroupfs or systemd driver) and what they hold.
//!
//! Both hierarchies are read into one [`CgroupSample`] in kernel units; the container sampler maps it
//! to cAdvisor's names. Files are opened once per container and re-read every pass.

mod config;
pub mod container;
mod source;
#[cfg(test)]
mod tests;
mod v1;
mod v2;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

pub use config::CgroupConfig;
pub use source::{CgroupSource, ContainerView, SourceKind, Views};

use crate::sources::kernel::Pressure;
use crate::sources::procfile::{is_vanished, KeptFile, ReadBuf};

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error(
        "no cgroup hierarchy found under {0} (neither cgroup.controllers nor a cpuacct controller)"
    )]
    NoHierarchy(PathBuf),
    #[error("no cgroup directory found for container {id} under {root}")]
    NotFound { id: String, root: PathBuf },
    #[error("container cgroup is gone")]
    Vanished,
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
}

/// Which cgroup hierarchy the host uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupVersion {
    V1,
    V2,
}

/// The cgroup mount of this host, detected once at start.
#[derive(Debug, Clone)]
pub struct CgroupLayout {
    pub version: CgroupVersion,
    pub root: PathBuf,
}

impl CgroupLayout {
    /// Detects the hierarchy under `root` (normally /sys/fs/cgroup). A host with the unified
    /// hierarchy mounted beside v1 controllers ("hybrid") counts as v1, since Docker puts its
    /// controllers there.
    pub fn detect(root: &Path) -> Result<Self, CgroupError> {
        let version = if root.join("cpuacct").is_dir() || root.join("cpu,cpuacct").is_dir() {
            CgroupVersion::V1
        } else if root.join("cgroup.controllers").is_file() {
            CgroupVersion::V2
        } else {
            return Err(CgroupError::NoHierarchy(root.to_path_buf()));
        };
        Ok(Self {
            version,
            root: root.to_path_buf(),
        })
    }

    /// Opens a container's cgroup files. `proc_cgroup` is the content of `/proc/<pid>/cgroup` of its
    /// main process when known: it names the real path, whatever the driver or `--cgroup-parent`;
    /// otherwise the paths of the cgroupfs and systemd drivers are tried.
    pub fn open(
        &self,
        id: &str,
        proc_cgroup: Option<&str>,
    ) -> Result<ContainerCgroup, CgroupError> {
        let mut candidates: Vec<String> = Vec::new();
        if let Some(pc) = proc_cgroup {
            if let Some(p) = path_from_proc_cgroup(pc, self.version).filter(|p| p.contains(id)) {
                candidates.push(p);
            }
        }
        candidates.push(format!("docker/{id}"));
        candidates.push(format!("system.slice/docker-{id}.scope"));
        let probe = match self.version {
            CgroupVersion::V1 => "cpuacct",
            CgroupVersion::V2 => "",
        };
        let rel = candidates
            .into_iter()
            .find(|c| self.root.join(probe).join(c).is_dir())
            .ok_or_else(|| CgroupError::NotFound {
                id: id.to_string(),
                root: self.root.clone(),
            })?;
        let dir = |controller: &str| self.root.join(controller).join(&rel);
        let inner = match self.version {
            CgroupVersion::V1 => Hierarchy::V1(v1::Files::open(&dir)),
            CgroupVersion::V2 => Hierarchy::V2(v2::Files::open(&dir(""))),
        };
        Ok(ContainerCgroup {
            name: format!("/{rel}"),
            inner,
        })
    }
}

impl CgroupLayout {
    /// Opens the root cgroup, which holds every process of the machine (cAdvisor's `id="/"`).
    pub fn open_root(&self) -> Result<ContainerCgroup, CgroupError> {
        let inner = match self.version {
            CgroupVersion::V1 => Hierarchy::V1(v1::Files::open(&|c: &str| self.root.join(c))),
            CgroupVersion::V2 => Hierarchy::V2(v2::Files::open(&self.root)),
        };
        Ok(ContainerCgroup {
            name: "/".to_string(),
            inner,
        })
    }
}

/// The container's cgroup path relative to the mount, from a `/proc/<pid>/cgroup` file.
fn path_from_proc_cgroup(content: &str, version: CgroupVersion) -> Option<String> {
    content.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let wanted = match version {
            CgroupVersion::V1 => controllers.split(',').any(|c| c == "cpuacct"),
            CgroupVersion::V2 => controllers.is_empty(),
        };
        wanted
            .then(|| path.trim_start_matches('/').to_string())
            .filter(|p| !p.is_empty())
    })
}

/// One block device's IO counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IoDevice {
    pub major: u32,
    pub minor: u32,
    pub read_bytes: u64,
    pub write_bytes: u64,
    pub reads: u64,
    pub writes: u64,
}

/// One read of a container cgroup, in kernel units (nanoseconds, bytes, counts). Absent files give None.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CgroupSample {
    pub cpu_usage_ns: Option<u64>,
    pub cpu_user_ns: Option<u64>,
    pub cpu_system_ns: Option<u64>,
    pub cfs_periods: Option<u64>,
    pub cfs_throttled_periods: Option<u64>,
    pub cfs_throttled_ns: Option<u64>,
    pub memory_usage: Option<u64>,
    pub memory_working_set: Option<u64>,
    pub memory_rss: Option<u64>,
    pub memory_cache: Option<u64>,
    pub memory_failcnt: Option<u64>,
    pub oom_events: Option<u64>,
    pub io: Vec<IoDevice>,
    /// cpu, memory, io (cgroup v2 only).
    pub pressure: Option<[Pressure; 3]>,
}

/// Limits of a container as its cgroup enforces them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct CgroupSpec {
    /// CFS quota in microseconds per period; None when unlimited.
    pub cpu_quota_us: Option<u64>,
    pub cpu_period_us: Option<u64>,
    /// None when unlimited.
    pub memory_limit_bytes: Option<u64>,
}

impl CgroupSpec {
    /// CPU limit in cores (quota / period).
    pub fn cpu_cores(&self) -> Option<f64> {
        match (self.cpu_quota_us, self.cpu_period_us) {
            (Some(q), Some(p)) if p > 0 => Some(q as f64 / p as f64),
            _ => None,
        }
    }
}

#[derive(Debug)]
enum Hierarchy {
    V1(v1::Files),
    V2(v2::Files),
}

/// A container's cgroup with its files kept open.
#[derive(Debug)]
pub struct ContainerCgroup {
    /// The cgroup path as cAdvisor names containers in its `id` label, e.g. `/docker/<id>`.
    name: String,
    inner: Hierarchy,
}

impl ContainerCgroup {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Reads every counter into `out` (cleared first), using `buf` as scratch. A file that fails
    /// because the cgroup is gone ends the read with [`CgroupError::Vanished`]; other failures of single
    /// files are returned with the rest of the sample filled in, for the caller to count.
    pub fn read(
        &self,
        buf: &mut ReadBuf,
        out: &mut CgroupSample,
        failures: &mut Vec<CgroupError>,
    ) -> Result<(), CgroupError> {
        *out = CgroupSample {
            io: std::mem::take(&mut out.io),
            ..Default::default()
        };
        out.io.clear();
        let mut reader = Reader { buf, failures };
        match &self.inner {
            Hierarchy::V1(f) => f.read(&mut reader, out),
            Hierarchy::V2(f) => f.read(&mut reader, out),
        }
    }

    /// Reads the limits (re-read on Docker `update` events, not every pass).
    pub fn spec(&self) -> CgroupSpec {
        match &self.inner {
            Hierarchy::V1(f) => f.spec(),
            Hierarchy::V2(f) => f.spec(),
        }
    }
}

/// Shared by both hierarchies: reads one optional kept-open file and sorts its failure.
struct Reader<'a> {
    buf: &'a mut ReadBuf,
    failures: &'a mut Vec<CgroupError>,
}

impl Reader<'_> {
    /// Runs `parse` on the content of `file`; Ok(None) when the file is absent or failed for another
    /// reason than the cgroup vanishing.
    fn with<T>(
        &mut self,
        file: &Option<KeptFile>,
        parse: impl FnOnce(&[u8]) -> T,
    ) -> Result<Option<T>, CgroupError> {
        let Some(f) = file else { return Ok(None) };
        match f.read(self.buf) {
            Ok(content) => Ok(Some(parse(content))),
            Err(e) if is_vanished(&e) => Err(CgroupError::Vanished),
            Err(e) => {
                self.failures.push(CgroupError::Read {
                    path: f.path().to_path_buf(),
                    source: e,
                });
                Ok(None)
            }
        }
    }
}

/// Opens a file of the cgroup if it exists (not every kernel has every file).
fn open_opt(path: PathBuf) -> Option<KeptFile> {
    KeptFile::open(path).ok()
}

/// Reads a one-value file once (limits), for the spec.
fn read_once(path: PathBuf) -> Option<String> {
    fs::read_to_string(path).ok()
}
