//! cgroup v1: one directory per controller (cpu, cpuacct, memory, blkio).

use std::path::PathBuf;

use super::{open_opt, read_once, CgroupError, CgroupSample, CgroupSpec, IoDevice, Reader};
use crate::sources::procfile::{fields, key_values, parse_single, parse_u64, KeptFile};

/// The kernel reports "no memory limit" as the largest page-aligned i64.
const UNLIMITED_MEMORY: u64 = 0x7FFF_FFFF_FFFF_F000;

#[derive(Debug)]
pub(super) struct Files {
    cpuacct_usage: Option<KeptFile>,
    cpuacct_stat: Option<KeptFile>,
    cpu_stat: Option<KeptFile>,
    memory_usage: Option<KeptFile>,
    memory_stat: Option<KeptFile>,
    memory_failcnt: Option<KeptFile>,
    memory_oom_control: Option<KeptFile>,
    io_bytes: Option<KeptFile>,
    io_ops: Option<KeptFile>,
    cpu_dir: PathBuf,
    memory_dir: PathBuf,
    /// USER_HZ, for cpuacct.stat's ticks.
    clk_tck: u64,
}

impl Files {
    pub(super) fn open(dir: &dyn Fn(&str) -> PathBuf) -> Self {
        let (cpu, cpuacct, memory, blkio) =
            (dir("cpu"), dir("cpuacct"), dir("memory"), dir("blkio"));
        // SAFETY: sysconf has no preconditions.
        let clk_tck = match unsafe { libc::sysconf(libc::_SC_CLK_TCK) } {
            n if n > 0 => n as u64,
            _ => 100,
        };
        Self {
            cpuacct_usage: open_opt(cpuacct.join("cpuacct.usage")),
            cpuacct_stat: open_opt(cpuacct.join("cpuacct.stat")),
            cpu_stat: open_opt(cpu.join("cpu.stat")),
            memory_usage: open_opt(memory.join("memory.usage_in_bytes")),
            memory_stat: open_opt(memory.join("memory.stat")),
            memory_failcnt: open_opt(memory.join("memory.failcnt")),
            memory_oom_control: open_opt(memory.join("memory.oom_control")),
            io_bytes: open_opt(blkio.join("blkio.throttle.io_service_bytes")),
            io_ops: open_opt(blkio.join("blkio.throttle.io_serviced")),
            cpu_dir: cpu,
            memory_dir: memory,
            clk_tck,
        }
    }

    pub(super) fn read(
        &self,
        r: &mut Reader<'_>,
        out: &mut CgroupSample,
    ) -> Result<(), CgroupError> {
        out.cpu_usage_ns = r.with(&self.cpuacct_usage, parse_single)?.flatten();
        let tick_ns = 1_000_000_000 / self.clk_tck;
        if let Some((user, system)) = r.with(&self.cpuacct_stat, |s| {
            let get = |k: &[u8]| {
                key_values(s)
                    .find(|(key, _)| *key == k)
                    .map(|(_, v)| v * tick_ns)
            };
            (get(b"user"), get(b"system"))
        })? {
            out.cpu_user_ns = user;
            out.cpu_system_ns = system;
        }
        if let Some((p, t, ns)) = r.with(&self.cpu_stat, |s| {
            let (mut p, mut t, mut ns) = (None, None, None);
            for (k, v) in key_values(s) {
                match k {
                    b"nr_periods" => p = Some(v),
                    b"nr_throttled" => t = Some(v),
                    b"throttled_time" => ns = Some(v),
                    _ => {}
                }
            }
            (p, t, ns)
        })? {
            (
                out.cfs_periods,
                out.cfs_throttled_periods,
                out.cfs_throttled_ns,
            ) = (p, t, ns);
        }
        out.memory_usage = r.with(&self.memory_usage, parse_single)?.flatten();
        if let Some((rss, cache, inactive)) = r.with(&self.memory_stat, |s| {
            let (mut rss, mut cache, mut inactive) = (None, None, None);
            // The total_ keys include descendants, as cAdvisor reads them.
            for (k, v) in key_values(s) {
                match k {
                    b"total_rss" => rss = Some(v),
                    b"total_cache" => cache = Some(v),
                    b"total_inactive_file" => inactive = Some(v),
                    _ => {}
                }
            }
            (rss, cache, inactive)
        })? {
            out.memory_rss = rss;
            out.memory_cache = cache;
            out.memory_working_set = out
                .memory_usage
                .map(|u| u.saturating_sub(inactive.unwrap_or(0)));
        }
        out.memory_failcnt = r.with(&self.memory_failcnt, parse_single)?.flatten();
        out.oom_events = r
            .with(&self.memory_oom_control, |s| {
                key_values(s)
                    .find(|(k, _)| *k == b"oom_kill")
                    .map(|(_, v)| v)
            })?
            .flatten();
        r.with(&self.io_bytes, |s| {
            blkio(s, &mut out.io, |d, op, v| match op {
                b"Read" => d.read_bytes = v,
                b"Write" => d.write_bytes = v,
                _ => {}
            })
        })?;
        r.with(&self.io_ops, |s| {
            blkio(s, &mut out.io, |d, op, v| match op {
                b"Read" => d.reads = v,
                b"Write" => d.writes = v,
                _ => {}
            })
        })?;
        Ok(())
    }

    pub(super) fn spec(&self) -> CgroupSpec {
        let num = |p: PathBuf| read_once(p).and_then(|s| s.trim().parse::<i64>().ok());
        let quota = num(self.cpu_dir.join("cpu.cfs_quota_us"));
        let period = num(self.cpu_dir.join("cpu.cfs_period_us"));
        let mem = num(self.memory_dir.join("memory.limit_in_bytes"));
        CgroupSpec {
            cpu_quota_us: quota.filter(|q| *q > 0).map(|q| q as u64),
            cpu_period_us: period.filter(|p| *p > 0).map(|p| p as u64),
            memory_limit_bytes: mem
                .filter(|m| *m > 0 && (*m as u64) < UNLIMITED_MEMORY)
                .map(|m| m as u64),
        }
    }
}

/// Parses blkio's `MAJ:MIN Op value` lines into per-device entries.
fn blkio(s: &[u8], io: &mut Vec<IoDevice>, mut set: impl FnMut(&mut IoDevice, &[u8], u64)) {
    for line in s.split(|c| *c == b'\n') {
        let mut f = fields(line);
        let (Some(dev), Some(op), Some(val)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let Some((major, minor)) = device(dev) else {
            continue;
        };
        let Some((v, _)) = parse_u64(val) else {
            continue;
        };
        let d = match io
            .iter_mut()
            .position(|d| d.major == major && d.minor == minor)
        {
            Some(i) => &mut io[i],
            None => {
                io.push(IoDevice {
                    major,
                    minor,
                    ..Default::default()
                });
                io.last_mut().expect("just pushed")
            }
        };
        set(d, op, v);
    }
}

/// `8:0` as (8, 0).
pub(super) fn device(s: &[u8]) -> Option<(u32, u32)> {
    let colon = s.iter().position(|c| *c == b':')?;
    let (major, _) = parse_u64(&s[..colon])?;
    let (minor, rest) = parse_u64(&s[colon + 1..])?;
    rest.is_empty().then_some((major as u32, minor as u32))
}
