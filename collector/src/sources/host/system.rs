//! Small node_exporter collectors with no per-device labels: `uname`, `time`, `filefd`, `entropy`.

#[cfg(test)]
mod tests;

use std::ffi::CStr;

use crate::sources::procfile::{fields, parse_u64};

/// `uname(2)` as node_exporter's `node_uname_info` labels.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Uname {
    pub sysname: String,
    pub release: String,
    pub version: String,
    pub machine: String,
    pub nodename: String,
    pub domainname: String,
}

impl Uname {
    /// The labels in node_exporter's order.
    pub fn labels(&self) -> [(&'static str, &str); 6] {
        [
            ("domainname", &self.domainname),
            ("machine", &self.machine),
            ("nodename", &self.nodename),
            ("release", &self.release),
            ("sysname", &self.sysname),
            ("version", &self.version),
        ]
    }

    /// Calls `uname`, updating `self` only where a field changed (no allocation in the usual pass).
    pub fn refresh(&mut self) -> bool {
        // SAFETY: `u` is a valid out pointer; uname fills NUL-terminated arrays.
        let mut u: libc::utsname = unsafe { std::mem::zeroed() };
        if unsafe { libc::uname(&mut u) } != 0 {
            return false;
        }
        fn set(dst: &mut String, src: &[libc::c_char]) {
            // SAFETY: the kernel NUL-terminates every utsname field within its array.
            let s = unsafe { CStr::from_ptr(src.as_ptr()) }.to_string_lossy();
            if *dst != s {
                *dst = s.into_owned();
            }
        }
        set(&mut self.sysname, &u.sysname);
        set(&mut self.release, &u.release);
        set(&mut self.version, &u.version);
        set(&mut self.machine, &u.machine);
        set(&mut self.nodename, &u.nodename);
        set(&mut self.domainname, &u.domainname);
        true
    }
}

/// `/proc/sys/fs/file-nr` ("allocated unused maximum") as (allocated, maximum).
pub fn file_nr(s: &[u8]) -> Option<(u64, u64)> {
    let mut f = fields(s.trim_ascii());
    let allocated = parse_u64(f.next()?)?.0;
    let _unused = f.next()?;
    let maximum = parse_u64(f.next()?)?.0;
    Some((allocated, maximum))
}
