//! Host sampler: /proc read into node_exporter's metric names and labels.

mod config;
mod extra;
pub mod filesystem;
pub mod netclass;
pub mod netstat;
pub mod system;
#[cfg(test)]
mod tests;

pub use config::HostConfig;

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::time::Duration;

use crate::sources::kernel::{self, NetCounters};
use crate::sources::procfile::{fields, parse_u64, KeptFile, ReadBuf};
use crate::store::{
    Batch, FamilyDesc, FamilyId, Ingest, IngestError, Kind, Limits, Scale, SeriesCursor,
    SourceDesc, SourceId, Writer,
};
use crate::telemetry::{ErrorKind, SampleFailed};

/// Block devices node_exporter leaves out by default (partitions, ram, loop, floppy): keeping its
/// default keeps dashboards' sums right.
pub fn disk_ignored(name: &str) -> bool {
    fn digits(s: &str) -> bool {
        !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit())
    }
    fn prefixed_digits(name: &str, prefixes: &[&str]) -> bool {
        prefixes
            .iter()
            .any(|p| name.strip_prefix(p).is_some_and(digits))
    }
    if prefixed_digits(name, &["ram", "zram", "loop", "fd"]) {
        return true;
    }
    // (h|s|v|xv)d[a-z]\d+
    for p in ["hd", "sd", "vd", "xvd"] {
        if let Some(rest) = name.strip_prefix(p) {
            let mut it = rest.chars();
            if it.next().is_some_and(|c| c.is_ascii_lowercase()) && digits(it.as_str()) {
                return true;
            }
        }
    }
    // nvme\d+n\d+p\d+
    if let Some(rest) = name.strip_prefix("nvme") {
        let parts: Vec<&str> = rest.splitn(2, 'n').collect();
        if parts.len() == 2 && digits(parts[0]) {
            if let Some((ns, part)) = parts[1].split_once('p') {
                return digits(ns) && digits(part);
            }
        }
    }
    false
}

/// Ids of the host families with fixed names.
#[derive(Debug)]
struct Families {
    cpu: FamilyId,
    ctxt: FamilyId,
    forks: FamilyId,
    intr: FamilyId,
    procs_running: FamilyId,
    procs_blocked: FamilyId,
    boot_time: FamilyId,
    load: [FamilyId; 3],
    disk: [FamilyId; 8],
    net: [FamilyId; 8],
    pressure: [(FamilyId, FamilyId); 3],
    /// size, free, avail, files, files_free, readonly, device_error.
    fs: [FamilyId; 7],
    uname: FamilyId,
    time: FamilyId,
    /// allocated, maximum.
    filefd: [FamilyId; 2],
    /// available, pool size.
    entropy: [FamilyId; 2],
    netclass: netclass::Families,
    extra: extra::Families,
}

impl Families {
    fn register(ingest: &Ingest, clk_tck: f64) -> Result<Self, IngestError> {
        use Kind::{Counter, Gauge};
        let ms = Scale::Div(1000.0);
        let sectors = Scale::Mul(512.0);
        let f = |n: &str, h: &str, k, s| ingest.family(FamilyDesc::int(n, h, k, s));
        Ok(Self {
            cpu: f(
                "node_cpu_seconds_total",
                "Seconds the CPUs spent in each mode.",
                Counter,
                Scale::Div(clk_tck),
            )?,
            ctxt: f(
                "node_context_switches_total",
                "Total number of context switches.",
                Counter,
                Scale::One,
            )?,
            forks: f(
                "node_forks_total",
                "Total number of forks.",
                Counter,
                Scale::One,
            )?,
            intr: f(
                "node_intr_total",
                "Total number of interrupts serviced.",
                Counter,
                Scale::One,
            )?,
            procs_running: f(
                "node_procs_running",
                "Number of processes in runnable state.",
                Gauge,
                Scale::One,
            )?,
            procs_blocked: f(
                "node_procs_blocked",
                "Number of processes blocked waiting for I/O to complete.",
                Gauge,
                Scale::One,
            )?,
            boot_time: f(
                "node_boot_time_seconds",
                "Node boot time, in unixtime.",
                Gauge,
                Scale::One,
            )?,
            load: [
                f("node_load1", "1m load average.", Gauge, Scale::Div(100.0))?,
                f("node_load5", "5m load average.", Gauge, Scale::Div(100.0))?,
                f("node_load15", "15m load average.", Gauge, Scale::Div(100.0))?,
            ],
            disk: [
                f(
                    "node_disk_reads_completed_total",
                    "The total number of reads completed successfully.",
                    Counter,
                    Scale::One,
                )?,
                f(
                    "node_disk_read_bytes_total",
                    "The total number of bytes read successfully.",
                    Counter,
                    sectors,
                )?,
                f(
                    "node_disk_read_time_seconds_total",
                    "The total number of seconds spent by all reads.",
                    Counter,
                    ms,
                )?,
                f(
                    "node_disk_writes_completed_total",
                    "The total number of writes completed successfully.",
                    Counter,
                    Scale::One,
                )?,
                f(
                    "node_disk_written_bytes_total",
                    "The total number of bytes written successfully.",
                    Counter,
                    sectors,
                )?,
                f(
                    "node_disk_write_time_seconds_total",
                    "This is the total number of seconds spent by all writes.",
                    Counter,
                    ms,
                )?,
                f(
                    "node_disk_io_now",
                    "The number of I/Os currently in progress.",
                    Gauge,
                    Scale::One,
                )?,
                f(
                    "node_disk_io_time_seconds_total",
                    "Total seconds spent doing I/Os.",
                    Counter,
                    ms,
                )?,
            ],
            net: [
                f(
                    "node_network_receive_bytes_total",
                    "Network device statistic receive_bytes.",
                    Counter,
                    Scale::One,
                )?,
                f(
                    "node_network_receive_packets_total",
                    "Network device statistic receive_packets.",
                    Counter,
                    Scale::One,
                )?,
                f(
                    "node_network_receive_errs_total",
                    "Network device statistic receive_errs.",
                    Counter,
                    Scale::One,
                )?,
                f(
                    "node_network_receive_drop_total",
                    "Network device statistic receive_drop.",
                    Counter,
                    Scale::One,
                )?,
                f(
                    "node_network_transmit_bytes_total",
                    "Network device statistic transmit_bytes.",
                    Counter,
                    Scale::One,
                )?,
                f(
                    "node_network_transmit_packets_total",
                    "Network device statistic transmit_packets.",
                    Counter,
                    Scale::One,
                )?,
                f(
                    "node_network_transmit_errs_total",
                    "Network device statistic transmit_errs.",
                    Counter,
                    Scale::One,
                )?,
                f(
                    "node_network_transmit_drop_total",
                    "Network device statistic transmit_drop.",
                    Counter,
                    Scale::One,
                )?,
            ],
            pressure: crate::sources::kernel::register_pressure(ingest, "node", "the host")?,
            uname: f(
                "node_uname_info",
                "Labeled system information as provided by the uname system call.",
                Gauge,
                Scale::One,
            )?,
            time: f(
                "node_time_seconds",
                "System time in seconds since epoch (1970).",
                Gauge,
                Scale::Div(1000.0),
            )?,
            filefd: [
                f(
                    "node_filefd_allocated",
                    "File descriptor statistics: allocated.",
                    Gauge,
                    Scale::One,
                )?,
                f(
                    "node_filefd_maximum",
                    "File descriptor statistics: maximum.",
                    Gauge,
                    Scale::One,
                )?,
            ],
            entropy: [
                f(
                    "node_entropy_available_bits",
                    "Bits of available entropy.",
                    Gauge,
                    Scale::One,
                )?,
                f(
                    "node_entropy_pool_size_bits",
                    "Bits of entropy pool.",
                    Gauge,
                    Scale::One,
                )?,
            ],
            netclass: netclass::Families::register(ingest)?,
            extra: extra::Families::register(ingest, clk_tck)?,
            fs: [
                f(
                    "node_filesystem_size_bytes",
                    "Filesystem size in bytes.",
                    Gauge,
                    Scale::One,
                )?,
                f(
                    "node_filesystem_free_bytes",
                    "Filesystem free space in bytes.",
                    Gauge,
                    Scale::One,
                )?,
                f(
                    "node_filesystem_avail_bytes",
                    "Filesystem space available to non-root users in bytes.",
                    Gauge,
                    Scale::One,
                )?,
                f(
                    "node_filesystem_files",
                    "Filesystem total file nodes.",
                    Gauge,
                    Scale::One,
                )?,
                f(
                    "node_filesystem_files_free",
                    "Filesystem total free file nodes.",
                    Gauge,
                    Scale::One,
                )?,
                f(
                    "node_filesystem_readonly",
                    "Filesystem read-only status.",
                    Gauge,
                    Scale::One,
                )?,
                f(
                    "node_filesystem_device_error",
                    "Whether an error occurred while getting statistics for the given device.",
                    Gauge,
                    Scale::One,
                )?,
            ],
        })
    }
}

const CPU_MODES: [&str; 8] = [
    "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
];

/// Files of /proc the host sampler keeps open.
#[derive(Debug)]
struct Files {
    stat: Option<KeptFile>,
    meminfo: Option<KeptFile>,
    diskstats: Option<KeptFile>,
    net_dev: Option<KeptFile>,
    loadavg: Option<KeptFile>,
    pressure: [Option<KeptFile>; 3],
    file_nr: Option<KeptFile>,
    /// entropy_avail, poolsize.
    entropy: [Option<KeptFile>; 2],
    vmstat: Option<KeptFile>,
    /// net/netstat, net/snmp (pairs of lines), net/snmp6.
    netstat: [Option<KeptFile>; 3],
    /// net/sockstat, net/sockstat6.
    sockstat: [Option<KeptFile>; 2],
}

/// Samples the host into the store under node_exporter's names.
#[derive(Debug)]
pub struct HostSource {
    files: Files,
    fams: Families,
    meminfo: HashMap<String, FamilyId>,
    /// Block device numbers to names, for the containers' per-device IO labels.
    devices: HashMap<(u32, u32), String>,
    src: SourceId,
    cursor: SeriesCursor,
    buf: ReadBuf,
    cpu_label: Vec<String>,
    /// None when its thread could not start (counted at build).
    filesystems: Option<filesystem::FsWorker>,
    uname: system::Uname,
    netclass: netclass::NetClass,
    stats: netstat::Families,
    extra: extra::Extra,
}

impl HostSource {
    /// Opens the /proc files under `proc_root` (the host's /proc, or its mount in a container). Files
    /// that do not exist (PSI on older kernels) are left out; failures to open are counted.
    pub fn build(config: &HostConfig, ingest: &Ingest) -> Result<Self, IngestError> {
        let proc_root: &Path = &config.proc_root;
        let open = |rel: &str| match KeptFile::open(proc_root.join(rel)) {
            Ok(f) => Some(f),
            Err(e) => {
                if e.kind() != io::ErrorKind::NotFound {
                    SampleFailed {
                        kind: ErrorKind::HostRead,
                    }
                    .emit();
                }
                tracing::debug!(file = rel, error = %e, "host file not sampled");
                None
            }
        };
        let files = Files {
            stat: open("stat"),
            meminfo: open("meminfo"),
            diskstats: open("diskstats"),
            net_dev: open("net/dev"),
            loadavg: open("loadavg"),
            pressure: [
                open("pressure/cpu"),
                open("pressure/memory"),
                open("pressure/io"),
            ],
            file_nr: open("sys/fs/file-nr"),
            entropy: [
                open("sys/kernel/random/entropy_avail"),
                open("sys/kernel/random/poolsize"),
            ],
            vmstat: open("vmstat"),
            netstat: [open("net/netstat"), open("net/snmp"), open("net/snmp6")],
            sockstat: [open("net/sockstat"), open("net/sockstat6")],
        };
        // SAFETY: sysconf has no preconditions.
        let clk_tck = match unsafe { libc::sysconf(libc::_SC_CLK_TCK) } {
            n if n > 0 => n as f64,
            _ => 100.0,
        };
        // Every pass reads every file: a series a pass did not write (a removed interface) is gone.
        let src = ingest.register_source(SourceDesc {
            name: "host",
            stale_after: Duration::ZERO,
            limits: Limits::UNLIMITED,
        })?;
        let fams = Families::register(ingest, clk_tck)?;
        let filesystems =
            match filesystem::FsWorker::start(proc_root, &config.rootfs, config.statfs_timeout) {
                Ok(w) => Some(w),
                Err(e) => {
                    SampleFailed {
                        kind: ErrorKind::HostRead,
                    }
                    .emit();
                    tracing::warn!(error = %e, "filesystems not sampled: no statfs thread");
                    None
                }
            };
        Ok(Self {
            files,
            fams,
            meminfo: HashMap::new(),
            devices: HashMap::new(),
            src,
            cursor: SeriesCursor::default(),
            buf: ReadBuf::with_capacity(16 << 10),
            cpu_label: Vec::new(),
            filesystems,
            uname: system::Uname::default(),
            netclass: netclass::NetClass::new(&config.sys_root),
            stats: netstat::Families::default(),
            extra: extra::Extra::open(proc_root, &config.sys_root, &config.rootfs),
        })
    }

    #[cfg(test)]
    fn netclass_devices(&self) -> usize {
        self.netclass.devices()
    }

    pub fn device_name(&self, major: u32, minor: u32) -> Option<&str> {
        self.devices.get(&(major, minor)).map(String::as_str)
    }

    /// Reads every host file once and appends its values at `ts`, in one batch.
    pub fn sample(&mut self, ingest: &Ingest, ts: i64) {
        ingest.batch(self.src, ts, |b| self.write(b, ts));
    }

    fn write(&mut self, b: &mut Batch<'_>, ts: i64) {
        let Self {
            files,
            fams,
            meminfo,
            devices,
            cursor,
            buf,
            cpu_label,
            filesystems,
            uname,
            netclass,
            stats,
            extra,
            ..
        } = self;
        let mut w = Writer::new(b, cursor, &[], None);
        let read = |f: &Option<KeptFile>, buf: &mut ReadBuf| -> bool {
            let Some(f) = f else { return false };
            match f.read(buf) {
                Ok(_) => true,
                Err(e) => {
                    SampleFailed {
                        kind: ErrorKind::HostRead,
                    }
                    .emit();
                    tracing::debug!(file = %f.path().display(), error = %e, "host read failed");
                    false
                }
            }
        };
        if read(&files.stat, buf) {
            for line in buf.content().split(|c| *c == b'\n') {
                let mut it = fields(line);
                let Some(key) = it.next() else { continue };
                if let Some(n) = key.strip_prefix(b"cpu").filter(|n| !n.is_empty()) {
                    let Some((cpu, _)) = parse_u64(n) else {
                        continue;
                    };
                    while cpu_label.len() <= cpu as usize {
                        cpu_label.push(cpu_label.len().to_string());
                    }
                    let label = cpu_label[cpu as usize].as_str();
                    for (mode, v) in CPU_MODES.iter().zip(it.by_ref()) {
                        if let Some((v, _)) = parse_u64(v) {
                            w.put(fams.cpu, &[("cpu", label), ("mode", mode)], v as i64);
                        }
                    }
                    let mut guest = it.filter_map(|v| parse_u64(v).map(|(v, _)| v));
                    if let (Some(g), Some(gn)) = (guest.next(), guest.next()) {
                        fams.extra.write_guest(&mut w, label, g, gn);
                    }
                    continue;
                }
                let metric = match key {
                    b"ctxt" => fams.ctxt,
                    b"processes" => fams.forks,
                    b"intr" => fams.intr,
                    b"procs_running" => fams.procs_running,
                    b"procs_blocked" => fams.procs_blocked,
                    b"btime" => fams.boot_time,
                    _ => continue,
                };
                if let Some((v, _)) = it.next().and_then(parse_u64) {
                    w.put(metric, &[], v as i64);
                }
            }
        }
        if read(&files.meminfo, buf) {
            for line in buf.content().split(|c| *c == b'\n') {
                let Some(colon) = line.iter().position(|c| *c == b':') else {
                    continue;
                };
                let Ok(name) = std::str::from_utf8(&line[..colon]) else {
                    continue;
                };
                let rest = &line[colon + 1..];
                let Some((v, unit)) = parse_u64(rest) else {
                    continue;
                };
                let kb = unit.trim_ascii() == b"kB";
                let id = match meminfo.get(name) {
                    Some(id) => *id,
                    None => match w.batch().family(meminfo_desc(name, kb)) {
                        Ok(id) => {
                            meminfo.insert(name.to_string(), id);
                            id
                        }
                        Err(e) => {
                            tracing::debug!(field = name, error = %e, "meminfo field not sampled");
                            continue;
                        }
                    },
                };
                w.put(id, &[], v as i64);
            }
        }
        if read(&files.diskstats, buf) {
            for line in buf.content().split(|c| *c == b'\n') {
                let f: Vec<&[u8]> = fields(line).take(20).collect();
                if f.len() < 14 {
                    continue;
                }
                let (Some((major, _)), Some((minor, _)), Ok(name)) =
                    (parse_u64(f[0]), parse_u64(f[1]), std::str::from_utf8(f[2]))
                else {
                    continue;
                };
                let key = (major as u32, minor as u32);
                if devices.get(&key).map(String::as_str) != Some(name) {
                    devices.insert(key, name.to_string());
                }
                if disk_ignored(name) {
                    continue;
                }
                // reads, sectors read, ms reading, writes, sectors written, ms writing, in progress, ms doing IO
                for (metric, idx) in fams.disk.iter().zip([3, 5, 6, 7, 9, 10, 11, 12]) {
                    if let Some((v, _)) = parse_u64(f[idx]) {
                        w.put(*metric, &[("device", name)], v as i64);
                    }
                }
                fams.extra.write_disk(&mut w, name, &f);
            }
        }
        if read(&files.net_dev, buf) {
            netclass.begin();
            for (dev, c) in kernel::net_dev(buf.content()) {
                put_net(&mut |m, v| w.put(m, &[("device", dev)], v), &fams.net, &c);
                fams.extra.write_net(&mut w, dev, &c);
                netclass.write(&fams.netclass, &mut w, dev);
            }
            netclass.end();
        }
        w.put(fams.time, &[], ts);
        if uname.refresh() {
            w.put(fams.uname, &uname.labels(), 1);
        }
        if read(&files.file_nr, buf) {
            if let Some((allocated, maximum)) = system::file_nr(buf.content()) {
                w.put(fams.filefd[0], &[], allocated as i64);
                w.put(fams.filefd[1], &[], maximum as i64);
            }
        }
        if read(&files.vmstat, buf) {
            stats.write_vmstat(&mut w, buf.content());
        }
        for (i, file) in files.netstat.iter().enumerate() {
            if read(file, buf) {
                stats.write_netstat(&mut w, buf.content(), i == 2);
            }
        }
        for file in &files.sockstat {
            if read(file, buf) {
                stats.write_sockstat(&mut w, buf.content());
            }
        }
        for (file, fam) in files.entropy.iter().zip(fams.entropy) {
            if read(file, buf) {
                if let Some((v, _)) = parse_u64(buf.content()) {
                    w.put(fam, &[], v as i64);
                }
            }
        }
        extra.write(&fams.extra, &mut w, buf);
        if read(&files.loadavg, buf) {
            for (metric, f) in fams.load.iter().zip(fields(buf.content())) {
                if let Some(v) = parse_centi(f) {
                    w.put(*metric, &[], v);
                }
            }
        }
        for (file, (waiting, stalled)) in files.pressure.iter().zip(fams.pressure) {
            if read(file, buf) {
                let p = kernel::pressure(buf.content());
                if let Some(v) = p.some_us {
                    w.put(waiting, &[], v as i64);
                }
                if let Some(v) = p.full_us {
                    w.put(stalled, &[], v as i64);
                }
            }
        }
        match filesystems.as_mut().map(filesystem::FsWorker::sample) {
            None => {}
            Some(Ok(mounts)) => {
                for (m, st) in &mounts {
                    let labels = [
                        ("device", m.device.as_str()),
                        ("fstype", m.fstype.as_str()),
                        ("mountpoint", m.mountpoint.as_str()),
                    ];
                    let [size, free, avail, files, files_free, readonly, device_error] = fams.fs;
                    w.put(device_error, &labels, i64::from(st.is_none()));
                    let Some(st) = st else { continue };
                    let big = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
                    w.put(size, &labels, big(st.size_bytes));
                    w.put(free, &labels, big(st.free_bytes));
                    w.put(avail, &labels, big(st.avail_bytes));
                    w.put(files, &labels, big(st.files));
                    w.put(files_free, &labels, big(st.files_free));
                    w.put(readonly, &labels, i64::from(st.readonly));
                }
            }
            Some(Err(e)) => {
                SampleFailed {
                    kind: ErrorKind::HostRead,
                }
                .emit();
                tracing::debug!(error = %e, "filesystems not sampled");
            }
        }
    }
}

/// Writes the eight interface counters in the order of `fams` (receive bytes, packets, errors, drops,
/// then transmit); shared by the host and container samplers.
pub(crate) fn put_net(put: &mut impl FnMut(FamilyId, i64), fams: &[FamilyId; 8], c: &NetCounters) {
    let vals = [
        c.rx_bytes,
        c.rx_packets,
        c.rx_errs,
        c.rx_drop,
        c.tx_bytes,
        c.tx_packets,
        c.tx_errs,
        c.tx_drop,
    ];
    for (m, v) in fams.iter().zip(vals) {
        put(*m, v as i64);
    }
}

/// node_exporter's meminfo naming: `Active(anon)` becomes `node_memory_Active_anon_bytes`.
fn meminfo_desc(field: &str, kb: bool) -> FamilyDesc {
    let clean: String = field
        .chars()
        .filter_map(|c| {
            if c == '(' {
                Some('_')
            } else if c == ')' {
                None
            } else {
                Some(c)
            }
        })
        .collect();
    let (name, scale) = if kb {
        (format!("node_memory_{clean}_bytes"), Scale::Mul(1024.0))
    } else {
        (format!("node_memory_{clean}"), Scale::One)
    };
    FamilyDesc::int(
        &name,
        &format!("Memory information field {clean}."),
        Kind::Gauge,
        scale,
    )
}

/// "0.38" as 38: /proc/loadavg always prints two decimals.
fn parse_centi(f: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(f).ok()?;
    let (int, frac) = s.split_once('.').unwrap_or((s, "0"));
    let frac = format!("{frac:0<2}");
    Some(int.parse::<i64>().ok()? * 100 + frac.get(..2)?.parse::<i64>().ok()?)
}
