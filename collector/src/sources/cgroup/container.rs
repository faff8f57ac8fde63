//! Container sampler: one container's cgroup and network namespace, under cAdvisor's metric names.

use crate::sources::cgroup::{CgroupSample, CgroupSpec, ContainerCgroup};
use crate::sources::docker::ContainerInfo;
use crate::sources::host::put_net;
use crate::sources::kernel::NetCounters;
use crate::sources::procfile::{KeptFile, ReadBuf};
use crate::store::{
    FamilyDesc, FamilyId, Ingest, IngestError, Kind, Labels, Millis, Scale, SeriesCursor, Writer,
};

/// Ids of cAdvisor's container families.
#[derive(Debug, Clone)]
pub struct Families {
    cpu_usage: FamilyId,
    cpu_user: FamilyId,
    cpu_system: FamilyId,
    cfs_periods: FamilyId,
    cfs_throttled_periods: FamilyId,
    cfs_throttled_seconds: FamilyId,
    memory_usage: FamilyId,
    memory_working_set: FamilyId,
    memory_rss: FamilyId,
    memory_cache: FamilyId,
    memory_failcnt: FamilyId,
    oom_events: FamilyId,
    spec_memory_limit: FamilyId,
    spec_cpu_quota: FamilyId,
    spec_cpu_period: FamilyId,
    fs: [FamilyId; 4],
    net: [FamilyId; 8],
    pressure: [(FamilyId, FamilyId); 3],
    last_seen: FamilyId,
    start_time: FamilyId,
    machine_cpu_cores: FamilyId,
    machine_memory: FamilyId,
}

impl Families {
    pub fn register(ingest: &Ingest) -> Result<Self, IngestError> {
        use Kind::{Counter, Gauge};
        let ns = Scale::Div(1e9);
        let f = |n: &str, h: &str, k, s| ingest.family(FamilyDesc::int(n, h, k, s));
        Ok(Self {
            cpu_usage: f("container_cpu_usage_seconds_total", "Cumulative cpu time consumed in seconds.", Counter, ns)?,
            cpu_user: f("container_cpu_user_seconds_total", "Cumulative user cpu time consumed in seconds.", Counter, ns)?,
            cpu_system: f("container_cpu_system_seconds_total", "Cumulative system cpu time consumed in seconds.", Counter, ns)?,
            cfs_periods: f("container_cpu_cfs_periods_total", "Number of elapsed enforcement period intervals.", Counter, Scale::One)?,
            cfs_throttled_periods: f("container_cpu_cfs_throttled_periods_total", "Number of throttled period intervals.", Counter, Scale::One)?,
            cfs_throttled_seconds: f("container_cpu_cfs_throttled_seconds_total", "Total time duration the container has been throttled.", Counter, ns)?,
            memory_usage: f("container_memory_usage_bytes", "Current memory usage in bytes, including all memory regardless of when it was accessed.", Gauge, Scale::One)?,
            memory_working_set: f("container_memory_working_set_bytes", "Current working set in bytes.", Gauge, Scale::One)?,
            memory_rss: f("container_memory_rss", "Size of RSS in bytes.", Gauge, Scale::One)?,
            memory_cache: f("container_memory_cache", "Number of bytes of page cache memory.", Gauge, Scale::One)?,
            // cAdvisor types this a counter without `_total`; a gauge keeps the name users query and promtool clean.
            memory_failcnt: f("container_memory_failcnt", "Number of memory usage hits limits.", Gauge, Scale::One)?,
            oom_events: f("container_oom_events_total", "Count of out of memory events observed for the container.", Counter, Scale::One)?,
            spec_memory_limit: f("container_spec_memory_limit_bytes", "Memory limit for the container (0 when unlimited).", Gauge, Scale::One)?,
            spec_cpu_quota: f("container_spec_cpu_quota", "CPU quota of the container.", Gauge, Scale::One)?,
            spec_cpu_period: f("container_spec_cpu_period", "CPU period of the container.", Gauge, Scale::One)?,
            fs: [
                f("container_fs_reads_bytes_total", "Cumulative count of bytes read.", Counter, Scale::One)?,
                f("container_fs_writes_bytes_total", "Cumulative count of bytes written.", Counter, Scale::One)?,
                f("container_fs_reads_total", "Cumulative count of reads completed.", Counter, Scale::One)?,
                f("container_fs_writes_total", "Cumulative count of writes completed.", Counter, Scale::One)?,
            ],
            net: [
                f("container_network_receive_bytes_total", "Cumulative count of bytes received.", Counter, Scale::One)?,
                f("container_network_receive_packets_total", "Cumulative count of packets received.", Counter, Scale::One)?,
                f("container_network_receive_errors_total", "Cumulative count of errors encountered while receiving.", Counter, Scale::One)?,
                f("container_network_receive_packets_dropped_total", "Cumulative count of packets dropped while receiving.", Counter, Scale::One)?,
                f("container_network_transmit_bytes_total", "Cumulative count of bytes transmitted.", Counter, Scale::One)?,
                f("container_network_transmit_packets_total", "Cumulative count of packets transmitted.", Counter, Scale::One)?,
                f("container_network_transmit_errors_total", "Cumulative count of errors encountered while transmitting.", Counter, Scale::One)?,
                f("container_network_transmit_packets_dropped_total", "Cumulative count of packets dropped while transmitting.", Counter, Scale::One)?,
            ],
            pressure: crate::sources::kernel::register_pressure(ingest, "container", "the container")?,
            last_seen: f("container_last_seen", "Last time a container was seen by the exporter", Gauge, Scale::Div(1e3))?,
            start_time: f("container_start_time_seconds", "Start time of the container since unix epoch in seconds.", Gauge, Scale::Div(1e3))?,
            machine_cpu_cores: f("machine_cpu_cores", "Number of logical CPU cores.", Gauge, Scale::One)?,
            machine_memory: f("machine_memory_bytes", "Amount of memory installed on the machine.", Gauge, Scale::One)?,
        })
    }

    /// Appends one container's sample. `device` names a block device by its numbers.
    pub fn write<'n>(
        &self,
        w: &mut Writer<'_, '_>,
        s: &CgroupSample,
        spec: &CgroupSpec,
        net: impl Iterator<Item = (&'n str, NetCounters)>,
        device: &dyn Fn(u32, u32) -> Option<String>,
    ) {
        let one = |w: &mut Writer<'_, '_>, m: FamilyId, v: Option<u64>| {
            if let Some(v) = v {
                w.put(m, &[], v as i64);
            }
        };
        one(w, self.cpu_usage, s.cpu_usage_ns);
        one(w, self.cpu_user, s.cpu_user_ns);
        one(w, self.cpu_system, s.cpu_system_ns);
        one(w, self.cfs_periods, s.cfs_periods);
        one(w, self.cfs_throttled_periods, s.cfs_throttled_periods);
        one(w, self.cfs_throttled_seconds, s.cfs_throttled_ns);
        one(w, self.memory_usage, s.memory_usage);
        one(w, self.memory_working_set, s.memory_working_set);
        one(w, self.memory_rss, s.memory_rss);
        one(w, self.memory_cache, s.memory_cache);
        one(w, self.memory_failcnt, s.memory_failcnt);
        one(w, self.oom_events, s.oom_events);
        one(
            w,
            self.spec_memory_limit,
            Some(spec.memory_limit_bytes.unwrap_or(0)),
        );
        one(w, self.spec_cpu_quota, spec.cpu_quota_us);
        one(w, self.spec_cpu_period, spec.cpu_period_us);
        for d in &s.io {
            let name = device(d.major, d.minor)
                .map(|n| format!("/dev/{n}"))
                .unwrap_or_else(|| format!("{}:{}", d.major, d.minor));
            for (m, v) in self
                .fs
                .iter()
                .zip([d.read_bytes, d.write_bytes, d.reads, d.writes])
            {
                w.put(*m, &[("device", &name)], v as i64);
            }
        }
        for (iface, c) in net {
            put_net(
                &mut |m, v| w.put(m, &[("interface", iface)], v),
                &self.net,
                &c,
            );
        }
        if let Some(p) = &s.pressure {
            for (p, (waiting, stalled)) in p.iter().zip(self.pressure) {
                one(w, waiting, p.some_us);
                one(w, stalled, p.full_us);
            }
        }
    }
}

impl Families {
    /// cAdvisor's `container_last_seen` (the pass's time, in milliseconds like `now`) and, when
    /// known, `container_start_time_seconds` (when the container's process started).
    /// cAdvisor's `machine_cpu_cores` and `machine_memory_bytes` (written with the root cgroup, which
    /// is the machine), which dashboards divide the root's usage by.
    pub fn write_machine(&self, w: &mut Writer<'_, '_>, cores: i64, memory: i64) {
        w.put(self.machine_cpu_cores, &[], cores);
        w.put(self.machine_memory, &[], memory);
    }

    pub fn write_times(&self, w: &mut Writer<'_, '_>, now: Millis, started_ms: Option<Millis>) {
        w.put(self.last_seen, &[], now);
        if let Some(t) = started_ms {
            w.put(self.start_time, &[], t);
        }
    }
}

/// Where a container's numbers come from.
#[derive(Debug)]
pub enum Source {
    /// Its cgroup files, read every pass (the normal case).
    Cgroup(Box<ContainerCgroup>),
    /// The Docker stats API, polled elsewhere, for hosts whose cgroupfs cannot be read; the sampler
    /// writes the latest sample it was handed.
    StatsApi,
}

/// A container being sampled.
#[derive(Debug)]
pub struct Tracked {
    pub info: ContainerInfo,
    pub source: Source,
    pub spec: CgroupSpec,
    /// Labels every series of the container starts with (`ContainerInfo::series_labels`).
    pub labels: Labels,
    pub cursor: SeriesCursor,
    pub net: Option<KeptFile>,
    pub net_buf: ReadBuf,
    /// Interfaces as the stats API reported them (fallback mode only).
    pub stats_net: Vec<(String, NetCounters)>,
    pub sample: CgroupSample,
    /// When its process started (Docker's `State.StartedAt`), Unix milliseconds.
    pub started_ms: Option<Millis>,
    /// Whether `sample` holds this pass's values.
    pub fresh: bool,
}
