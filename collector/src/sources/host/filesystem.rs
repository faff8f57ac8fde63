//! Filesystems under node_exporter's `node_filesystem_*` names: the mount table of the root's view
//! (`/proc/1/mounts`) with node_exporter's default exclusions, then `statvfs` of each mount point.
//!
//! `statvfs` on a dead network filesystem can block for minutes, so it never runs on the sampling
//! thread: a worker thread calls it mount after mount, and a pass waits for the answers at most
//! `statfs_timeout` (node_exporter's `--collector.filesystem.mount-timeout`). A mount whose call does
//! not return in time is marked stuck, as node_exporter marks it: the worker blocked on it is left
//! behind and a new one serves the other mounts; until the blocked call returns, passes report that
//! mount with `device_error` 1 without calling `statvfs` on it again, and the other mounts keep
//! their series.

#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use regex::Regex;

use crate::sources::procfile::{KeptFile, ReadBuf};

/// node_exporter's default `--collector.filesystem.mount-points-exclude`.
pub const MOUNT_POINTS_EXCLUDED: &str =
    "^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)";
/// node_exporter's default `--collector.filesystem.fs-types-exclude`.
pub const FS_TYPES_EXCLUDED: &str = "^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|erofs|sysfs|tracefs)$";

/// One mount kept for sampling, with the labels node_exporter gives it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Mount {
    pub device: String,
    /// As seen from the host: the `rootfs` prefix removed.
    pub mountpoint: String,
    pub fstype: String,
}

/// The exclusion patterns (compiled once).
#[derive(Debug, Clone)]
pub struct Exclusions {
    mount_points: Regex,
    fs_types: Regex,
}

impl Default for Exclusions {
    fn default() -> Self {
        Self {
            mount_points: Regex::new(MOUNT_POINTS_EXCLUDED).expect("constant pattern"),
            fs_types: Regex::new(FS_TYPES_EXCLUDED).expect("constant pattern"),
        }
    }
}

/// Parses a `/proc/<pid>/mounts` text into the mounts to sample: octal escapes (`\040`) decoded, the
/// `rootfs` prefix stripped from mount points as node_exporter does, excluded mount points and types
/// left out, duplicates (the same mount seen twice) kept once. Malformed lines are skipped.
pub fn parse_mounts(text: &str, rootfs: &Path, ex: &Exclusions) -> Vec<Mount> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for line in text.lines() {
        let mut f = line.split_ascii_whitespace();
        let (Some(device), Some(mountpoint), Some(fstype)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let mountpoint = strip_rootfs(&unescape(mountpoint), rootfs);
        if ex.mount_points.is_match(&mountpoint) || ex.fs_types.is_match(fstype) {
            continue;
        }
        let m = Mount {
            device: unescape(device),
            mountpoint,
            fstype: fstype.to_string(),
        };
        if seen.insert(m.clone()) {
            out.push(m);
        }
    }
    out
}

/// Decodes the kernel's octal escapes of space, tab, newline and backslash (`\040`, `\011`, `\012`,
/// `\134`); anything else is kept as written.
fn unescape(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_string();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            if let Ok(c) = u8::try_from(v) {
                out.push(c);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// node_exporter's `rootfsStripPrefix`: `/host/boot` under rootfs `/host` is `/boot`, `/host` is `/`.
fn strip_rootfs(mountpoint: &str, rootfs: &Path) -> String {
    let root = rootfs.to_string_lossy();
    let root = root.trim_end_matches('/');
    if root.is_empty() {
        return mountpoint.to_string();
    }
    match mountpoint.strip_prefix(root) {
        Some("") => "/".to_string(),
        Some(rest) if rest.starts_with('/') => rest.to_string(),
        _ => mountpoint.to_string(),
    }
}

/// What `statvfs` says of one filesystem, in node_exporter's units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsStats {
    pub size_bytes: u64,
    pub free_bytes: u64,
    pub avail_bytes: u64,
    pub files: u64,
    pub files_free: u64,
    pub readonly: bool,
}

/// `statvfs` of `path`.
pub fn statvfs(path: &Path) -> io::Result<FsStats> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: `c` is a valid NUL-terminated path and `st` a valid out pointer.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let frsize = st.f_frsize as u64;
    Ok(FsStats {
        size_bytes: (st.f_blocks as u64).saturating_mul(frsize),
        free_bytes: (st.f_bfree as u64).saturating_mul(frsize),
        avail_bytes: (st.f_bavail as u64).saturating_mul(frsize),
        files: st.f_files as u64,
        files_free: st.f_ffree as u64,
        readonly: st.f_flag & libc::ST_RDONLY != 0,
    })
}

/// A mount and its `statvfs` (None: the call failed or is stuck, node_exporter's `device_error`).
pub type FsSample = (Mount, Option<FsStats>);

/// How a worker calls `statvfs` (a stand-in in tests, to hang on purpose).
pub type StatFn = Arc<dyn Fn(&Path) -> io::Result<FsStats> + Send + Sync>;

/// At most this many workers are left blocked in `statvfs` at once (one per stuck mount); past it,
/// filesystems are not sampled until one returns, so that a host full of dead mounts cannot make the
/// collector pile up threads.
pub const MAX_STUCK: usize = 8;

/// A worker thread: mounts to stat in, one answer per mount out, in order.
struct Worker {
    jobs: Sender<Vec<PathBuf>>,
    answers: Receiver<io::Result<FsStats>>,
    /// Set by the thread when it ends: once left behind, when its stuck call returned.
    finished: Arc<AtomicBool>,
}

impl Worker {
    fn spawn(stat: StatFn) -> io::Result<Self> {
        let (jobs, job_rx) = mpsc::channel::<Vec<PathBuf>>();
        let (answer_tx, answers) = mpsc::channel();
        let finished = Arc::new(AtomicBool::new(false));
        let done = finished.clone();
        std::thread::Builder::new()
            .name("plimsoll-statfs".into())
            .spawn(move || {
                'jobs: while let Ok(paths) = job_rx.recv() {
                    for p in paths {
                        if answer_tx.send(stat(&p)).is_err() {
                            break 'jobs; // left behind: the pass gave up on this call
                        }
                    }
                }
                done.store(true, Ordering::Release);
            })?;
        Ok(Self {
            jobs,
            answers,
            finished,
        })
    }
}

/// Reads the mount table and has `statvfs` called off the sampling thread, per mount.
pub struct FsWorker {
    mounts: [PathBuf; 2],
    file: Option<KeptFile>,
    buf: ReadBuf,
    rootfs: PathBuf,
    exclusions: Exclusions,
    timeout: Duration,
    stat: StatFn,
    /// None after a worker was left behind and no new one could start yet.
    worker: Option<Worker>,
    /// Mount points whose call hangs, with the flag their left-behind worker sets when it returns.
    stuck: Vec<(String, Arc<AtomicBool>)>,
}

impl std::fmt::Debug for FsWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FsWorker")
            .field("rootfs", &self.rootfs)
            .field(
                "stuck",
                &self.stuck.iter().map(|(m, _)| m).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl FsWorker {
    /// Starts the worker over the mount table at `proc_root`/1/mounts (or self/mounts when pid 1's
    /// is hidden) and the host root at `rootfs`.
    pub fn start(proc_root: &Path, rootfs: &Path, timeout: Duration) -> io::Result<Self> {
        Self::start_with(proc_root, rootfs, timeout, Arc::new(|p: &Path| statvfs(p)))
    }

    /// As [`FsWorker::start`], calling `stat` instead of `statvfs`.
    pub fn start_with(
        proc_root: &Path,
        rootfs: &Path,
        timeout: Duration,
        stat: StatFn,
    ) -> io::Result<Self> {
        Ok(Self {
            mounts: [proc_root.join("1/mounts"), proc_root.join("self/mounts")],
            file: None,
            buf: ReadBuf::with_capacity(8 << 10),
            rootfs: rootfs.to_path_buf(),
            exclusions: Exclusions::default(),
            timeout,
            worker: Some(Worker::spawn(stat.clone())?),
            stat,
            stuck: Vec::new(),
        })
    }

    /// Mount points being skipped because their `statvfs` hangs.
    pub fn stuck(&self) -> impl Iterator<Item = &str> {
        self.stuck.iter().map(|(m, _)| m.as_str())
    }

    /// The filesystems now: every mount of the table, a stuck one with None; in the pass that finds a
    /// mount stuck, the mounts after it are left out. Err when the mount table cannot be read, or no
    /// worker can run (too many stuck, or no thread).
    pub fn sample(&mut self) -> io::Result<Vec<FsSample>> {
        self.stuck.retain(|(m, finished)| {
            let back = finished.load(Ordering::Acquire);
            if back {
                tracing::info!(mountpoint = %m, "statvfs returned: the filesystem is sampled again");
            }
            !back
        });
        let mounts = self.read_table()?;
        self.ensure_worker()?;
        let (to_stat, paths): (Vec<usize>, Vec<PathBuf>) = mounts
            .iter()
            .enumerate()
            .filter(|(_, m)| !self.stuck.iter().any(|(s, _)| *s == m.mountpoint))
            .map(|(i, m)| (i, self.rootfs.join(m.mountpoint.trim_start_matches('/'))))
            .unzip();
        let mut stats: Vec<Option<Option<FsStats>>> = vec![None; mounts.len()];
        let worker = self.worker.as_ref().expect("ensured above");
        if worker.jobs.send(paths).is_err() {
            self.worker = None;
            return Err(io::Error::other("statfs worker ended"));
        }
        let deadline = Instant::now() + self.timeout;
        for &i in &to_stat {
            let left = deadline.saturating_duration_since(Instant::now());
            match worker.answers.recv_timeout(left) {
                Ok(r) => {
                    if let Err(e) = &r {
                        tracing::debug!(mountpoint = %mounts[i].mountpoint, error = %e, "statvfs failed");
                    }
                    stats[i] = Some(r.ok());
                }
                Err(RecvTimeoutError::Timeout) => {
                    tracing::warn!(mountpoint = %mounts[i].mountpoint, timeout = ?self.timeout, "statvfs does not return: the mount is reported with device_error until it does");
                    let w = self.worker.take().expect("worker in use");
                    self.stuck.push((mounts[i].mountpoint.clone(), w.finished));
                    stats[i] = Some(None);
                    break;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.worker = None;
                    break;
                }
            }
        }
        Ok(mounts
            .into_iter()
            .zip(stats)
            .filter_map(|(m, st)| {
                let stuck = self.stuck.iter().any(|(s, _)| *s == m.mountpoint);
                match st {
                    Some(st) => Some((m, st)),
                    None if stuck => Some((m, None)),
                    None => None,
                }
            })
            .collect())
    }

    fn read_table(&mut self) -> io::Result<Vec<Mount>> {
        if self.file.is_none() {
            self.file = Some(match KeptFile::open(&self.mounts[0]) {
                Ok(f) => f,
                Err(_) => KeptFile::open(&self.mounts[1])?,
            });
        }
        let text = self
            .file
            .as_ref()
            .expect("opened above")
            .read(&mut self.buf)?;
        let text = String::from_utf8_lossy(text);
        Ok(parse_mounts(&text, &self.rootfs, &self.exclusions))
    }

    /// Starts a worker anew after one was left behind, unless too many are.
    fn ensure_worker(&mut self) -> io::Result<()> {
        if self.worker.is_none() {
            if self.stuck.len() >= MAX_STUCK {
                return Err(io::Error::other(format!(
                    "{} mounts hang in statvfs; waiting for one to return",
                    self.stuck.len()
                )));
            }
            self.worker = Some(Worker::spawn(self.stat.clone())?);
        }
        Ok(())
    }
}
