//! Reading small kernel files (procfs, cgroupfs) on the hot path.
//!
//! A sampling pass re-reads the same files every interval, so they are opened once and re-read with
//! `pread` at offset 0, which makes the kernel regenerate their content: about a third of the cost of
//! open/read/close (see ../shared/notes/peers.md). Parsing is hand-written over bytes, without
//! allocating, because it runs for every container every second.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// A kernel file kept open between passes.
#[derive(Debug)]
pub struct KeptFile {
    path: PathBuf,
    file: File,
}

impl KeptFile {
    pub fn open(path: impl Into<PathBuf>) -> io::Result<Self> {
        let path = path.into();
        let file = File::open(&path)?;
        Ok(Self { path, file })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the whole current content in one `pread` at offset 0 (a kernel file is regenerated per
    /// read, so a bigger file is read again whole with a bigger buffer, never continued).
    pub fn read<'b>(&self, buf: &'b mut ReadBuf) -> io::Result<&'b [u8]> {
        buf.len = 0;
        loop {
            let n = self.file.read_at(&mut buf.data, 0)?;
            if n < buf.data.len() {
                buf.len = n;
                return Ok(&buf.data[..n]);
            }
            let grown = buf.data.len() * 2;
            buf.data.resize(grown, 0);
        }
    }
}

/// A scratch buffer for [`KeptFile::read`]. It stays at its full, zeroed length, so that re-reading
/// does not clear memory every time.
#[derive(Debug, Clone)]
pub struct ReadBuf {
    data: Vec<u8>,
    len: usize,
}

impl ReadBuf {
    pub fn with_capacity(bytes: usize) -> Self {
        Self {
            data: vec![0; bytes.max(64)],
            len: 0,
        }
    }

    /// What the last read returned (empty after a failed read).
    pub fn content(&self) -> &[u8] {
        &self.data[..self.len]
    }

    pub fn clear(&mut self) {
        self.len = 0;
    }
}

impl Default for ReadBuf {
    fn default() -> Self {
        Self::with_capacity(4096)
    }
}

/// True for the errors a file gives when its cgroup or process went away between passes.
pub fn is_vanished(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::ENOENT) | Some(libc::ENODEV) | Some(libc::ESRCH)
    ) || err.kind() == io::ErrorKind::NotFound
}

/// Parses an unsigned decimal at the start of `s`, skipping leading spaces; returns the value and the rest.
pub fn parse_u64(s: &[u8]) -> Option<(u64, &[u8])> {
    let s = trim_start(s);
    let mut v: u64 = 0;
    let mut i = 0;
    while i < s.len() && s[i].is_ascii_digit() {
        v = v.checked_mul(10)?.checked_add(u64::from(s[i] - b'0'))?;
        i += 1;
    }
    if i == 0 {
        return None;
    }
    Some((v, &s[i..]))
}

/// Parses a file that holds one number (e.g. `cpuacct.usage`). `max` (cgroup v2 for "no limit") gives None.
pub fn parse_single(s: &[u8]) -> Option<u64> {
    parse_u64(s).map(|(v, _)| v)
}

pub fn trim_start(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|c| **c == b' ' || **c == b'\t').count();
    &s[n..]
}

/// Iterates `key value` lines (memory.stat, cpu.stat, memory.events, cpuacct.stat).
pub fn key_values(s: &[u8]) -> impl Iterator<Item = (&[u8], u64)> {
    s.split(|c| *c == b'\n').filter_map(|line| {
        let sp = line.iter().position(|c| *c == b' ')?;
        let (v, _) = parse_u64(&line[sp + 1..])?;
        Some((&line[..sp], v))
    })
}

/// Splits a line into whitespace-separated fields.
pub fn fields(line: &[u8]) -> impl Iterator<Item = &[u8]> {
    line.split(|c| *c == b' ' || *c == b'\t')
        .filter(|f| !f.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_numbers_and_key_values() {
        assert_eq!(parse_single(b"123456\n"), Some(123456));
        assert_eq!(parse_single(b"max\n"), None);
        assert_eq!(parse_u64(b"  42 rest"), Some((42, &b" rest"[..])));
        assert_eq!(
            parse_u64(b"99999999999999999999999"),
            None,
            "overflow is rejected"
        );
        let kv: Vec<_> = key_values(b"cache 10\nrss 20\nbad\n\n").collect();
        assert_eq!(kv, vec![(&b"cache"[..], 10), (&b"rss"[..], 20)]);
    }

    #[test]
    fn kept_file_rereads_fresh_content_and_grows_its_buffer() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, "1\n").unwrap();
        let f = KeptFile::open(&p).unwrap();
        let mut buf = ReadBuf::with_capacity(64);
        assert_eq!(f.read(&mut buf).unwrap(), b"1\n");
        let big = "x".repeat(10_000);
        std::fs::write(&p, &big).unwrap();
        assert_eq!(f.read(&mut buf).unwrap().len(), 10_000);
        std::fs::remove_file(&p).unwrap();
        // An unlinked regular file stays readable; cgroupfs files instead fail with ENODEV, see is_vanished.
        assert!(is_vanished(&io::Error::from_raw_os_error(libc::ENODEV)));
    }
}
