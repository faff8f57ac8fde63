//! cgroup v2: one unified directory per container.

use std::path::{Path, PathBuf};

use super::v1::device;
use super::{open_opt, read_once, CgroupError, CgroupSample, CgroupSpec, IoDevice, Reader};
use crate::sources::kernel;
use crate::sources::procfile::{fields, key_values, parse_single, parse_u64, KeptFile};

#[derive(Debug)]
pub(super) struct Files {
    cpu_stat: Option<KeptFile>,
    memory_current: Option<KeptFile>,
    memory_stat: Option<KeptFile>,
    memory_events: Option<KeptFile>,
    io_stat: Option<KeptFile>,
    pressure: [Option<KeptFile>; 3],
    dir: PathBuf,
}

impl Files {
    pub(super) fn open(dir: &Path) -> Self {
        Self {
            cpu_stat: open_opt(dir.join("cpu.stat")),
            memory_current: open_opt(dir.join("memory.current")),
            memory_stat: open_opt(dir.join("memory.stat")),
            memory_events: open_opt(dir.join("memory.events")),
            io_stat: open_opt(dir.join("io.stat")),
            pressure: ["cpu.pressure", "memory.pressure", "io.pressure"]
                .map(|f| open_opt(dir.join(f))),
            dir: dir.to_path_buf(),
        }
    }

    pub(super) fn read(
        &self,
        r: &mut Reader<'_>,
        out: &mut CgroupSample,
    ) -> Result<(), CgroupError> {
        r.with(&self.cpu_stat, |s| {
            for (k, v) in key_values(s) {
                match k {
                    b"usage_usec" => out.cpu_usage_ns = Some(v * 1000),
                    b"user_usec" => out.cpu_user_ns = Some(v * 1000),
                    b"system_usec" => out.cpu_system_ns = Some(v * 1000),
                    b"nr_periods" => out.cfs_periods = Some(v),
                    b"nr_throttled" => out.cfs_throttled_periods = Some(v),
                    b"throttled_usec" => out.cfs_throttled_ns = Some(v * 1000),
                    _ => {}
                }
            }
        })?;
        out.memory_usage = r.with(&self.memory_current, parse_single)?.flatten();
        r.with(&self.memory_stat, |s| {
            let mut inactive = 0;
            for (k, v) in key_values(s) {
                match k {
                    b"anon" => out.memory_rss = Some(v),
                    b"file" => out.memory_cache = Some(v),
                    b"inactive_file" => inactive = v,
                    _ => {}
                }
            }
            out.memory_working_set = out.memory_usage.map(|u| u.saturating_sub(inactive));
        })?;
        r.with(&self.memory_events, |s| {
            for (k, v) in key_values(s) {
                match k {
                    // cAdvisor reports the times the limit was hit as the v1 failcnt.
                    b"max" => out.memory_failcnt = Some(v),
                    b"oom_kill" => out.oom_events = Some(v),
                    _ => {}
                }
            }
        })?;
        r.with(&self.io_stat, |s| io_stat(s, &mut out.io))?;
        let mut pressure = [kernel::Pressure::default(); 3];
        let mut any = false;
        for (file, p) in self.pressure.iter().zip(pressure.iter_mut()) {
            if let Some(v) = r.with(file, kernel::pressure)? {
                *p = v;
                any = true;
            }
        }
        out.pressure = any.then_some(pressure);
        Ok(())
    }

    pub(super) fn spec(&self) -> CgroupSpec {
        let mut spec = CgroupSpec::default();
        if let Some(s) = read_once(self.dir.join("cpu.max")) {
            let mut it = s.split_whitespace();
            spec.cpu_quota_us = it.next().and_then(|q| q.parse().ok());
            spec.cpu_period_us = it.next().and_then(|p| p.parse().ok());
        }
        spec.memory_limit_bytes =
            read_once(self.dir.join("memory.max")).and_then(|s| s.trim().parse().ok());
        spec
    }
}

/// Memory of the v2 root cgroup, which has no memory.current: from /proc/meminfo as runc does for
/// cAdvisor (usage = MemTotal - MemFree, working set = usage - Inactive(file)); rss and cache only
/// where the root's memory.stat did not give them.
pub(super) fn root_memory(meminfo: &[u8], out: &mut CgroupSample) {
    let (mut total, mut free, mut inactive, mut anon, mut cached) = (None, None, 0, None, None);
    for line in meminfo.split(|c| *c == b'\n') {
        let mut f = fields(line);
        let (Some(k), Some(v)) = (f.next(), f.next().and_then(parse_u64)) else {
            continue;
        };
        let bytes = v.0.saturating_mul(1024);
        match k {
            b"MemTotal:" => total = Some(bytes),
            b"MemFree:" => free = Some(bytes),
            b"Inactive(file):" => inactive = bytes,
            b"AnonPages:" => anon = Some(bytes),
            b"Cached:" => cached = Some(bytes),
            _ => {}
        }
    }
    let (Some(total), Some(free)) = (total, free) else {
        return;
    };
    let usage = total.saturating_sub(free);
    out.memory_usage = Some(usage);
    out.memory_working_set = Some(usage.saturating_sub(inactive));
    out.memory_rss = out.memory_rss.or(anon);
    out.memory_cache = out.memory_cache.or(cached);
}

/// Parses `MAJ:MIN rbytes=.. wbytes=.. rios=.. wios=..` lines.
fn io_stat(s: &[u8], io: &mut Vec<IoDevice>) {
    for line in s.split(|c| *c == b'\n') {
        let mut f = fields(line);
        let Some((major, minor)) = f.next().and_then(device) else {
            continue;
        };
        let mut d = IoDevice {
            major,
            minor,
            ..Default::default()
        };
        for kv in f {
            let Some(eq) = kv.iter().position(|c| *c == b'=') else {
                continue;
            };
            let Some((v, _)) = parse_u64(&kv[eq + 1..]) else {
                continue;
            };
            match &kv[..eq] {
                b"rbytes" => d.read_bytes = v,
                b"wbytes" => d.write_bytes = v,
                b"rios" => d.reads = v,
                b"wios" => d.writes = v,
                _ => {}
            }
        }
        io.push(d);
    }
}
