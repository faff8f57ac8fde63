//! The rest of node_exporter's default Linux collectors, each a file or a system call with few series:
//! `conntrack`, `softnet`, `arp`, `udp_queues`, `timex`, `time` (zone and clock source), `os`,
//! `selinux`, and the fields of `diskstats`, `netdev` and `cpu` the main pass does not chart
//! (merged and discarded IOs, FIFO and frame errors, guest time). Names, labels and units are
//! node_exporter 1.5's; each parser is a pure function tested on fixtures.

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::ffi::CStr;
use std::path::Path;

use crate::sources::kernel::NetCounters;
use crate::sources::procfile::{fields, parse_u64, KeptFile, ReadBuf};
use crate::store::{FamilyDesc, FamilyId, Ingest, IngestError, Kind, Scale, Writer};
use crate::telemetry::{ErrorKind, SampleFailed};

/// node_exporter's `ppm16frac`: the kernel's scaled-ppm unit (parts per million, 16-bit fraction).
const PPM16FRAC: f64 = 1_000_000.0 * 65_536.0;

/// Columns of /proc/net/stat/nf_conntrack node_exporter exposes, by position, with their names.
const CONNTRACK_STAT: [(usize, &str); 8] = [
    (2, "found"),
    (4, "invalid"),
    (5, "ignore"),
    (8, "insert"),
    (9, "insert_failed"),
    (10, "drop"),
    (11, "early_drop"),
    (16, "search_restart"),
];

/// The labels of `node_os_info`, from os-release keys.
const OS_INFO: [(&str, &str); 12] = [
    ("build_id", "BUILD_ID"),
    ("id", "ID"),
    ("id_like", "ID_LIKE"),
    ("image_id", "IMAGE_ID"),
    ("image_version", "IMAGE_VERSION"),
    ("name", "NAME"),
    ("pretty_name", "PRETTY_NAME"),
    ("variant", "VARIANT"),
    ("variant_id", "VARIANT_ID"),
    ("version", "VERSION"),
    ("version_codename", "VERSION_CODENAME"),
    ("version_id", "VERSION_ID"),
];

#[derive(Debug)]
pub struct Families {
    /// reads merged, writes merged, io time weighted, discards completed, merged, sectors, time,
    /// flush requests, flush time.
    disk: [FamilyId; 9],
    disk_info: FamilyId,
    /// receive fifo, frame, compressed, multicast; transmit fifo, colls, carrier, compressed.
    net: [FamilyId; 8],
    cpu_guest: FamilyId,
    conntrack: [FamilyId; 2],
    conntrack_stat: [FamilyId; 8],
    /// processed, dropped, times squeezed.
    softnet: [FamilyId; 3],
    arp: FamilyId,
    udp_queues: FamilyId,
    timex: Timex,
    zone: FamilyId,
    /// available, current.
    clocksource: [FamilyId; 2],
    os: [FamilyId; 2],
    selinux: [FamilyId; 2],
}

#[derive(Debug)]
struct Timex {
    offset: FamilyId,
    freq: FamilyId,
    maxerror: FamilyId,
    esterror: FamilyId,
    status: FamilyId,
    constant: FamilyId,
    tick: FamilyId,
    ppsfreq: FamilyId,
    jitter: FamilyId,
    shift: FamilyId,
    stabil: FamilyId,
    jitcnt: FamilyId,
    calcnt: FamilyId,
    errcnt: FamilyId,
    stbcnt: FamilyId,
    tai: FamilyId,
    sync: FamilyId,
}

impl Families {
    pub fn register(ingest: &Ingest, clk_tck: f64) -> Result<Self, IngestError> {
        use Kind::{Counter, Gauge};
        let f = |n: &str, h: &str, k, s| ingest.family(FamilyDesc::int(n, h, k, s));
        let g = |n: &str, h: &str| f(n, h, Gauge, Scale::One);
        let ms = Scale::Div(1000.0);
        let ns = Scale::Div(1e9);
        let us = Scale::Div(1e6);
        let ppm = Scale::Div(PPM16FRAC);
        Ok(Self {
            disk: [
                f("node_disk_reads_merged_total", "The total number of reads merged.", Counter, Scale::One)?,
                f("node_disk_writes_merged_total", "The number of writes merged.", Counter, Scale::One)?,
                f("node_disk_io_time_weighted_seconds_total", "The weighted # of seconds spent doing I/Os.", Counter, ms)?,
                f("node_disk_discards_completed_total", "The total number of discards completed successfully.", Counter, Scale::One)?,
                f("node_disk_discards_merged_total", "The total number of discards merged.", Counter, Scale::One)?,
                f("node_disk_discarded_sectors_total", "The total number of sectors discarded successfully.", Counter, Scale::One)?,
                f("node_disk_discard_time_seconds_total", "This is the total number of seconds spent by all discards.", Counter, ms)?,
                f("node_disk_flush_requests_total", "The total number of flush requests completed successfully", Counter, Scale::One)?,
                f("node_disk_flush_requests_time_seconds_total", "This is the total number of seconds spent by all flush requests.", Counter, ms)?,
            ],
            disk_info: g("node_disk_info", "Info of /sys/block/<block_device>.")?,
            net: [
                f("node_network_receive_fifo_total", "Network device statistic receive_fifo.", Counter, Scale::One)?,
                f("node_network_receive_frame_total", "Network device statistic receive_frame.", Counter, Scale::One)?,
                f("node_network_receive_compressed_total", "Network device statistic receive_compressed.", Counter, Scale::One)?,
                f("node_network_receive_multicast_total", "Network device statistic receive_multicast.", Counter, Scale::One)?,
                f("node_network_transmit_fifo_total", "Network device statistic transmit_fifo.", Counter, Scale::One)?,
                f("node_network_transmit_colls_total", "Network device statistic transmit_colls.", Counter, Scale::One)?,
                f("node_network_transmit_carrier_total", "Network device statistic transmit_carrier.", Counter, Scale::One)?,
                f("node_network_transmit_compressed_total", "Network device statistic transmit_compressed.", Counter, Scale::One)?,
            ],
            cpu_guest: f("node_cpu_guest_seconds_total", "Seconds the CPUs spent in guests (VMs) for each mode.", Counter, Scale::Div(clk_tck))?,
            conntrack: [
                g("node_nf_conntrack_entries", "Number of currently allocated flow entries for connection tracking.")?,
                g("node_nf_conntrack_entries_limit", "Maximum size of connection tracking table.")?,
            ],
            conntrack_stat: [
                g("node_nf_conntrack_stat_found", "Number of searched entries which were successful.")?,
                g("node_nf_conntrack_stat_invalid", "Number of packets seen which can not be tracked.")?,
                g("node_nf_conntrack_stat_ignore", "Number of packets seen which are already connected to a conntrack entry.")?,
                g("node_nf_conntrack_stat_insert", "Number of entries inserted into the list.")?,
                g("node_nf_conntrack_stat_insert_failed", "Number of entries for which list insertion was attempted but failed.")?,
                g("node_nf_conntrack_stat_drop", "Number of packets dropped due to conntrack failure.")?,
                g("node_nf_conntrack_stat_early_drop", "Number of dropped conntrack entries to make room for new ones, if maximum table size was reached.")?,
                g("node_nf_conntrack_stat_search_restart", "Number of conntrack table lookups which had to be restarted due to hashtable resizes.")?,
            ],
            softnet: [
                f("node_softnet_processed_total", "Number of processed packets", Counter, Scale::One)?,
                f("node_softnet_dropped_total", "Number of dropped packets", Counter, Scale::One)?,
                f("node_softnet_times_squeezed_total", "Number of times processing packets ran out of quota", Counter, Scale::One)?,
            ],
            arp: g("node_arp_entries", "ARP entries by device")?,
            udp_queues: g("node_udp_queues", "Number of allocated memory in the kernel for UDP datagrams in bytes.")?,
            timex: Timex {
                offset: f("node_timex_offset_seconds", "Time offset in between local system and reference clock.", Gauge, ns)?,
                freq: f("node_timex_frequency_adjustment_ratio", "Local clock frequency adjustment.", Gauge, ppm)?,
                maxerror: f("node_timex_maxerror_seconds", "Maximum error in seconds.", Gauge, us)?,
                esterror: f("node_timex_estimated_error_seconds", "Estimated error in seconds.", Gauge, us)?,
                status: g("node_timex_status", "Value of the status array bits.")?,
                constant: g("node_timex_loop_time_constant", "Phase-locked loop time constant.")?,
                tick: f("node_timex_tick_seconds", "Seconds between clock ticks.", Gauge, us)?,
                ppsfreq: f("node_timex_pps_frequency_hertz", "Pulse per second frequency.", Gauge, ppm)?,
                jitter: f("node_timex_pps_jitter_seconds", "Pulse per second jitter.", Gauge, ns)?,
                shift: g("node_timex_pps_shift_seconds", "Pulse per second interval duration.")?,
                stabil: f("node_timex_pps_stability_hertz", "Pulse per second stability, average of recent frequency changes.", Gauge, ppm)?,
                jitcnt: f("node_timex_pps_jitter_total", "Pulse per second count of jitter limit exceeded events.", Counter, Scale::One)?,
                calcnt: f("node_timex_pps_calibration_total", "Pulse per second count of calibration intervals.", Counter, Scale::One)?,
                errcnt: f("node_timex_pps_error_total", "Pulse per second count of calibration errors.", Counter, Scale::One)?,
                stbcnt: f("node_timex_pps_stability_exceeded_total", "Pulse per second count of stability limit exceeded events.", Counter, Scale::One)?,
                tai: g("node_timex_tai_offset_seconds", "International Atomic Time (TAI) offset.")?,
                sync: g("node_timex_sync_status", "Is clock synchronized to a reliable server (1 = yes, 0 = no).")?,
            },
            zone: g("node_time_zone_offset_seconds", "System time zone offset in seconds.")?,
            clocksource: [
                g("node_time_clocksource_available_info", "Available clocksources read from '/sys/devices/system/clocksource'.")?,
                g("node_time_clocksource_current_info", "Current clocksource read from '/sys/devices/system/clocksource'.")?,
            ],
            os: [
                g("node_os_info", "A metric with a constant '1' value labeled by build_id, id, id_like, image_id, image_version, name, pretty_name, variant, variant_id, version, version_codename, version_id.")?,
                f("node_os_version", "Metric containing the major.minor part of the OS version.", Gauge, Scale::Div(1000.0))?,
            ],
            selinux: [
                g("node_selinux_enabled", "SELinux is enabled, 1 is true, 0 is false")?,
                g("node_selinux_current_mode", "SELinux mode, 1 is enforcing, 0 is permissive")?,
            ],
        })
    }

    /// The diskstats fields past the eleven the main pass writes (`f` is the whole line's fields).
    pub fn write_disk(&self, w: &mut Writer<'_, '_>, name: &str, f: &[&[u8]]) {
        let put = |w: &mut Writer<'_, '_>, fam, idx: usize| {
            if let Some((v, _)) = f.get(idx).and_then(|s| parse_u64(s)) {
                w.put(fam, &[("device", name)], v as i64);
            }
        };
        // reads merged, writes merged, weighted ms, then (kernel 4.18+) discards, (5.5+) flushes.
        for (fam, idx) in self.disk.iter().zip([4, 8, 13, 14, 15, 16, 17, 18, 19]) {
            put(w, *fam, idx);
        }
        if let (Some(major), Some(minor)) = (f.first(), f.get(1)) {
            let (major, minor) = (
                std::str::from_utf8(major).unwrap_or(""),
                std::str::from_utf8(minor).unwrap_or(""),
            );
            w.put(
                self.disk_info,
                &[("device", name), ("major", major), ("minor", minor)],
                1,
            );
        }
    }

    pub fn write_net(&self, w: &mut Writer<'_, '_>, device: &str, c: &NetCounters) {
        let vals = [
            c.rx_fifo,
            c.rx_frame,
            c.rx_compressed,
            c.rx_multicast,
            c.tx_fifo,
            c.tx_colls,
            c.tx_carrier,
            c.tx_compressed,
        ];
        for (fam, v) in self.net.iter().zip(vals) {
            w.put(*fam, &[("device", device)], v as i64);
        }
    }

    /// `guest` and `guest_nice` of a /proc/stat cpu line, in ticks.
    pub fn write_guest(&self, w: &mut Writer<'_, '_>, cpu: &str, guest: u64, guest_nice: u64) {
        w.put(
            self.cpu_guest,
            &[("cpu", cpu), ("mode", "user")],
            guest as i64,
        );
        w.put(
            self.cpu_guest,
            &[("cpu", cpu), ("mode", "nice")],
            guest_nice as i64,
        );
    }
}

/// The files of these collectors, kept open where they exist.
#[derive(Debug)]
pub struct Extra {
    conntrack_count: Option<KeptFile>,
    conntrack_max: Option<KeptFile>,
    conntrack_stat: Option<KeptFile>,
    softnet: Option<KeptFile>,
    arp: Option<KeptFile>,
    /// udp, udp6.
    udp: [Option<KeptFile>; 2],
    clocksources: Vec<(String, Option<KeptFile>, Option<KeptFile>)>,
    selinux_enforce: Option<KeptFile>,
    /// os-release, read at start: (labels, VERSION_ID as thousandths).
    os: Option<(Vec<(&'static str, String)>, i64)>,
    cpu_labels: Vec<String>,
}

impl Extra {
    pub fn open(proc_root: &Path, sys_root: &Path, rootfs: &Path) -> Self {
        let keep = |p: &Path| KeptFile::open(p).ok();
        let mut clocksources = Vec::new();
        let cs_dir = sys_root.join("devices/system/clocksource");
        if let Ok(rd) = std::fs::read_dir(&cs_dir) {
            let mut names: Vec<String> = rd
                .flatten()
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .filter_map(|n| n.strip_prefix("clocksource").map(str::to_string))
                .filter(|n| n.bytes().all(|c| c.is_ascii_digit()) && !n.is_empty())
                .collect();
            names.sort();
            for n in names {
                let d = cs_dir.join(format!("clocksource{n}"));
                clocksources.push((
                    n,
                    keep(&d.join("available_clocksource")),
                    keep(&d.join("current_clocksource")),
                ));
            }
        }
        let os = ["etc/os-release", "usr/lib/os-release"]
            .iter()
            .find_map(|p| std::fs::read_to_string(rootfs.join(p)).ok())
            .map(|text| os_release(&text));
        Self {
            conntrack_count: keep(&proc_root.join("sys/net/netfilter/nf_conntrack_count")),
            conntrack_max: keep(&proc_root.join("sys/net/netfilter/nf_conntrack_max")),
            conntrack_stat: keep(&proc_root.join("net/stat/nf_conntrack")),
            softnet: keep(&proc_root.join("net/softnet_stat")),
            arp: keep(&proc_root.join("net/arp")),
            udp: [
                keep(&proc_root.join("net/udp")),
                keep(&proc_root.join("net/udp6")),
            ],
            clocksources,
            selinux_enforce: keep(&sys_root.join("fs/selinux/enforce")),
            os,
            cpu_labels: Vec::new(),
        }
    }

    /// Writes every series of these collectors.
    pub fn write(&mut self, fams: &Families, w: &mut Writer<'_, '_>, buf: &mut ReadBuf) {
        if let Some(v) = read(&self.conntrack_count, buf).and_then(single) {
            w.put(fams.conntrack[0], &[], v);
        }
        if let Some(v) = read(&self.conntrack_max, buf).and_then(single) {
            w.put(fams.conntrack[1], &[], v);
        }
        if let Some(s) = read(&self.conntrack_stat, buf) {
            for (fam, v) in fams.conntrack_stat.iter().zip(conntrack_stat(s)) {
                w.put(*fam, &[], v as i64);
            }
        }
        if let Some(s) = read(&self.softnet, buf) {
            for (cpu, row) in softnet(s).enumerate() {
                while self.cpu_labels.len() <= cpu {
                    self.cpu_labels.push(self.cpu_labels.len().to_string());
                }
                let label = [("cpu", self.cpu_labels[cpu].as_str())];
                for (fam, v) in fams.softnet.iter().zip(row) {
                    w.put(*fam, &label, v as i64);
                }
            }
        }
        if let Some(s) = read(&self.arp, buf) {
            for (device, n) in arp_entries(s) {
                w.put(fams.arp, &[("device", &device)], n as i64);
            }
        }
        for (file, ip) in self.udp.iter().zip(["v4", "v6"]) {
            if let Some(s) = read(file, buf) {
                let (tx, rx) = udp_queues(s);
                w.put(fams.udp_queues, &[("ip", ip), ("queue", "tx")], tx as i64);
                w.put(fams.udp_queues, &[("ip", ip), ("queue", "rx")], rx as i64);
            }
        }
        write_timex(&fams.timex, w);
        if let Some((zone, offset)) = time_zone() {
            w.put(fams.zone, &[("time_zone", &zone)], offset);
        }
        for (device, available, current) in &self.clocksources {
            if let Some(s) = read(available, buf) {
                for cs in fields(s) {
                    let cs = std::str::from_utf8(cs).unwrap_or("");
                    w.put(
                        fams.clocksource[0],
                        &[("clocksource", cs), ("device", device)],
                        1,
                    );
                }
            }
            if let Some(s) = read(current, buf) {
                let cs = std::str::from_utf8(s.trim_ascii()).unwrap_or("");
                w.put(
                    fams.clocksource[1],
                    &[("clocksource", cs), ("device", device)],
                    1,
                );
            }
        }
        if let Some((labels, version)) = &self.os {
            let l: Vec<(&'static str, &str)> =
                labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
            w.put(fams.os[0], &l, 1);
            let short: Vec<(&'static str, &str)> = l
                .iter()
                .filter(|(k, _)| matches!(*k, "id" | "id_like" | "name"))
                .copied()
                .collect();
            w.put(fams.os[1], &short, *version);
        }
        match read(&self.selinux_enforce, buf).and_then(single) {
            Some(mode) => {
                w.put(fams.selinux[0], &[], 1);
                w.put(fams.selinux[1], &[], mode);
            }
            None => w.put(fams.selinux[0], &[], 0),
        }
    }
}

/// Reads a kept file; a failure is counted and gives None.
fn read<'b>(f: &Option<KeptFile>, buf: &'b mut ReadBuf) -> Option<&'b [u8]> {
    let f = f.as_ref()?;
    match f.read(buf) {
        Ok(s) => Some(s),
        Err(e) => {
            SampleFailed {
                kind: ErrorKind::HostRead,
            }
            .emit();
            tracing::debug!(file = %f.path().display(), error = %e, "host read failed");
            None
        }
    }
}

fn single(s: &[u8]) -> Option<i64> {
    parse_u64(s.trim_ascii()).map(|(v, _)| v as i64)
}

/// /proc/net/stat/nf_conntrack: a header, then one row of hex counters per CPU; the exposed columns
/// summed over CPUs, in [`CONNTRACK_STAT`]'s order.
pub fn conntrack_stat(s: &[u8]) -> [u64; 8] {
    let mut out = [0u64; 8];
    for line in s.split(|c| *c == b'\n').skip(1) {
        let cols: Vec<&[u8]> = fields(line).collect();
        for (o, (idx, _)) in out.iter_mut().zip(CONNTRACK_STAT) {
            if let Some(v) = cols.get(idx).and_then(|c| hex(c)) {
                *o = o.wrapping_add(v);
            }
        }
    }
    out
}

/// /proc/net/softnet_stat: one row of hex counters per CPU; (processed, dropped, time_squeeze).
pub fn softnet(s: &[u8]) -> impl Iterator<Item = [u64; 3]> + '_ {
    s.split(|c| *c == b'\n').filter_map(|line| {
        let mut f = fields(line);
        let (p, d, t) = (f.next()?, f.next()?, f.next()?);
        Some([hex(p)?, hex(d)?, hex(t)?])
    })
}

/// /proc/net/arp: entries per device (the last column), header skipped.
pub fn arp_entries(s: &[u8]) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for line in s.split(|c| *c == b'\n').skip(1) {
        if let Some(dev) = fields(line).nth(5) {
            *out.entry(String::from_utf8_lossy(dev).into_owned())
                .or_default() += 1;
        }
    }
    out
}

/// /proc/net/udp or udp6: the (tx, rx) queue bytes of every socket summed (`tx_queue:rx_queue`, hex).
pub fn udp_queues(s: &[u8]) -> (u64, u64) {
    let (mut tx, mut rx) = (0u64, 0u64);
    for line in s.split(|c| *c == b'\n').skip(1) {
        let Some(q) = fields(line).nth(4) else {
            continue;
        };
        let Some(colon) = q.iter().position(|c| *c == b':') else {
            continue;
        };
        if let (Some(t), Some(r)) = (hex(&q[..colon]), hex(&q[colon + 1..])) {
            tx = tx.saturating_add(t);
            rx = rx.saturating_add(r);
        }
    }
    (tx, rx)
}

fn hex(s: &[u8]) -> Option<u64> {
    u64::from_str_radix(std::str::from_utf8(s).ok()?, 16).ok()
}

/// An os-release file as `node_os_info`'s labels (absent keys empty) and `node_os_version`'s value
/// (VERSION_ID's major.minor in thousandths; 0 when it is not a number).
pub fn os_release(text: &str) -> (Vec<(&'static str, String)>, i64) {
    let mut kv: BTreeMap<&str, String> = BTreeMap::new();
    for line in text.lines() {
        let Some((k, v)) = line.trim().split_once('=') else {
            continue;
        };
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(v);
        kv.insert(k.trim(), v.replace("\\\"", "\""));
    }
    let labels = OS_INFO
        .iter()
        .map(|(label, key)| (*label, kv.get(key).cloned().unwrap_or_default()))
        .collect();
    let version = kv
        .get("VERSION_ID")
        .map(|v| {
            // node_exporter keeps major.minor: "22.04.3" is 22.04.
            let mut parts = v.splitn(3, '.');
            let major = parts.next().unwrap_or("");
            match parts.next() {
                Some(minor) => format!("{major}.{minor}"),
                None => major.to_string(),
            }
        })
        .and_then(|v| v.parse::<f64>().ok())
        .map(|v| (v * 1000.0).round() as i64)
        .unwrap_or(0);
    (labels, version)
}

/// The local time zone's abbreviation and offset from UTC in seconds, as `localtime_r` has them.
fn time_zone() -> Option<(String, i64)> {
    // SAFETY: `time(NULL)` has no preconditions; `tm` is a valid out pointer for localtime_r, which
    // sets tm_zone to a static NUL-terminated string.
    unsafe {
        let now = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&now, &mut tm).is_null() || tm.tm_zone.is_null() {
            return None;
        }
        let zone = CStr::from_ptr(tm.tm_zone).to_string_lossy().into_owned();
        Some((zone, tm.tm_gmtoff))
    }
}

/// The kernel clock discipline (`adjtimex` reading only), in node_exporter's units: offsets and
/// jitter in nanoseconds whatever STA_NANO says, so that one scale fits.
fn write_timex(t: &Timex, w: &mut Writer<'_, '_>) {
    // SAFETY: modes = 0 only reads; `tx` is a valid out pointer.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    let state = unsafe { libc::adjtimex(&mut tx) };
    if state < 0 {
        return;
    }
    let to_ns = if tx.status & libc::STA_NANO != 0 {
        1
    } else {
        1000
    };
    w.put(t.offset, &[], tx.offset * to_ns);
    // 1 + freq / ppm16frac, in ppm16frac units.
    w.put(t.freq, &[], tx.freq + PPM16FRAC as i64);
    w.put(t.maxerror, &[], tx.maxerror);
    w.put(t.esterror, &[], tx.esterror);
    w.put(t.status, &[], i64::from(tx.status));
    w.put(t.constant, &[], tx.constant);
    w.put(t.tick, &[], tx.tick);
    w.put(t.ppsfreq, &[], tx.ppsfreq);
    w.put(t.jitter, &[], tx.jitter * to_ns);
    w.put(t.shift, &[], i64::from(tx.shift));
    w.put(t.stabil, &[], tx.stabil);
    w.put(t.jitcnt, &[], tx.jitcnt);
    w.put(t.calcnt, &[], tx.calcnt);
    w.put(t.errcnt, &[], tx.errcnt);
    w.put(t.stbcnt, &[], tx.stbcnt);
    w.put(t.tai, &[], i64::from(tx.tai));
    w.put(t.sync, &[], i64::from(state != libc::TIME_ERROR));
}
