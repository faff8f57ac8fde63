//! Filesystems under node_exporter's `node_filesystem_*` names: the mount table of the root's view
//! (`/proc/1/mounts`) with node_exporter's default exclusions, then `statvfs` of each mount point.
//!
//! `statvfs` on a dead network filesystem can block for minutes, so it never runs on the sampling
//! thread: a worker thread reads the mount table and calls `statvfs`, and a pass waits for its answer
//! at most `statfs_timeout` (node_exporter's `--collector.filesystem.mount-timeout` idea). While the
//! worker is stuck, passes write no filesystem series and count a `host_read` error, without waiting.

#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::time::Duration;

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

/// A mount and its `statvfs` (None: the call failed, node_exporter's `device_error`).
pub type FsSample = (Mount, Option<FsStats>);

/// Reads the mount table and `statvfs` off the sampling thread.
#[derive(Debug)]
pub struct FsWorker {
    request: SyncSender<()>,
    answer: Receiver<io::Result<Vec<FsSample>>>,
    /// A request is out and has not been answered.
    busy: bool,
    timeout: Duration,
}

impl FsWorker {
    /// Starts the worker over the mount table at `proc_root`/1/mounts (or self/mounts when pid 1's
    /// is hidden) and the host root at `rootfs`.
    pub fn start(proc_root: &Path, rootfs: &Path, timeout: Duration) -> io::Result<Self> {
        let (request, requests) = mpsc::sync_channel::<()>(1);
        let (answers, answer) = mpsc::sync_channel(1);
        let mounts = [proc_root.join("1/mounts"), proc_root.join("self/mounts")];
        let rootfs = rootfs.to_path_buf();
        std::thread::Builder::new()
            .name("plimsoll-statfs".into())
            .spawn(move || {
                let ex = Exclusions::default();
                let mut file: Option<KeptFile> = None;
                let mut buf = ReadBuf::with_capacity(8 << 10);
                while requests.recv().is_ok() {
                    let r = read_all(&mounts, &mut file, &mut buf, &rootfs, &ex);
                    if answers.send(r).is_err() {
                        return;
                    }
                }
            })?;
        Ok(Self {
            request,
            answer,
            busy: false,
            timeout,
        })
    }

    /// The filesystems now, or None (counted by the caller) when the worker failed or is stuck.
    pub fn sample(&mut self) -> Option<io::Result<Vec<FsSample>>> {
        if self.busy {
            match self.answer.try_recv() {
                // A late answer to an earlier pass: stale, ask again.
                Ok(_) => self.busy = false,
                Err(TryRecvError::Empty) | Err(TryRecvError::Disconnected) => return None,
            }
        }
        self.request.try_send(()).ok()?;
        self.busy = true;
        match self.answer.recv_timeout(self.timeout) {
            Ok(r) => {
                self.busy = false;
                Some(r)
            }
            Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => None,
        }
    }
}

fn read_all(
    mounts: &[PathBuf; 2],
    file: &mut Option<KeptFile>,
    buf: &mut ReadBuf,
    rootfs: &Path,
    ex: &Exclusions,
) -> io::Result<Vec<FsSample>> {
    if file.is_none() {
        *file = Some(match KeptFile::open(&mounts[0]) {
            Ok(f) => f,
            Err(_) => KeptFile::open(&mounts[1])?,
        });
    }
    let text = file.as_ref().expect("opened above").read(buf)?;
    let text = String::from_utf8_lossy(text);
    Ok(parse_mounts(&text, rootfs, ex)
        .into_iter()
        .map(|m| {
            let at = rootfs.join(m.mountpoint.trim_start_matches('/'));
            let st = statvfs(&at);
            if let Err(e) = &st {
                tracing::debug!(mountpoint = %m.mountpoint, error = %e, "statvfs failed");
            }
            (m, st.ok())
        })
        .collect())
}
