use std::fs;
use std::path::{Path, PathBuf};

use super::*;
use crate::query::{Query, Selector};
use crate::sources::cgroup::{CgroupSpec, SourceKind};
use crate::sources::host::HostConfig;

const ID: &str = "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789";

use crate::testutil::write;

/// A fixture host: a tiny /proc and a v1 cgroup tree with one container.
fn fixture() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let proc_root = t.path().join("proc");
    write(&proc_root, "stat", "cpu0 1 0 1 1 0 0 0 0 0 0\nctxt 1\n");
    write(
        &proc_root.join("4242/net"),
        "dev",
        "h\nh\n  eth0: 100 1 0 0 0 0 0 0 200 2 0 0 0 0 0 0\n",
    );
    write(
        &proc_root.join("4242"),
        "cgroup",
        &format!("4:cpu,cpuacct:/docker/{ID}\n"),
    );
    let cg = t.path().join("cgroup");
    write(
        &cg.join("cpuacct/docker").join(ID),
        "cpuacct.usage",
        "1000000000\n",
    );
    write(
        &cg.join("cpu/docker").join(ID),
        "cpu.cfs_quota_us",
        "50000\n",
    );
    write(
        &cg.join("cpu/docker").join(ID),
        "cpu.cfs_period_us",
        "100000\n",
    );
    write(
        &cg.join("memory/docker").join(ID),
        "memory.usage_in_bytes",
        "4096\n",
    );
    write(
        &cg.join("memory/docker").join(ID),
        "memory.limit_in_bytes",
        "1048576\n",
    );
    (t, proc_root, cg)
}

/// A sampler over a fixture /proc and cgroup tree (an unreadable one without `cgroup_root`).
fn sampler(
    proc_root: &Path,
    cgroup_root: Option<&Path>,
    stats: Option<tokio::sync::mpsc::UnboundedSender<StatsRequest>>,
) -> Sampler {
    let config = CollectorConfig {
        host: HostConfig {
            proc_root: proc_root.to_path_buf(),
            sys_root: proc_root.join("no-sysfs"),
            // A root with only an os-release: the machine's own would change the exposition.
            rootfs: proc_root.join("rootfs"),
            ..HostConfig::default()
        },
        cgroup: crate::sources::cgroup::CgroupConfig {
            root: cgroup_root
                .map(Path::to_path_buf)
                .unwrap_or_else(|| proc_root.join("no-cgroupfs")),
            ..Default::default()
        },
        ..Default::default()
    };
    Sampler::build(&config, &Ingest::new(config.window), stats).unwrap()
}

fn info(state: &str) -> ContainerInfo {
    ContainerInfo {
        id: ID.to_string(),
        name: "web-1".into(),
        image: "web:1".into(),
        service: Some("web".into()),
        compose_project: Some("shop".into()),
        swarm_task_id: None,
        swarm_slot: None,
        swarm_node_id: None,
        networks: Default::default(),
        pid: Some(4242),
        host_network: false,
        state: state.into(),
        health: None,
        started_at: None,
        limits: CgroupSpec::default(),
        labels: Default::default(),
    }
}

fn render(s: &Sampler) -> String {
    let mut out = String::new();
    crate::http::exposition::render(&s.shared().ingest.read(), &mut out);
    out
}

/// The container's series of one family.
fn container_series(s: &Sampler, name: &str) -> Vec<crate::store::SeriesRef> {
    let shared = s.shared();
    let st = shared.ingest.read();
    Query::new(&st).select(&Selector {
        name,
        container: Some(ID),
        ..Default::default()
    })
}

#[test]
fn tracks_samples_and_forgets_a_container() {
    let (t, proc_root, cg) = fixture();
    let mut s = sampler(&proc_root, Some(&cg), None);
    s.apply(DiscoveryEvent::Upsert(info("running")));
    s.pass(1000);
    fs::write(
        t.path()
            .join("cgroup/cpuacct/docker")
            .join(ID)
            .join("cpuacct.usage"),
        "1500000000\n",
    )
    .unwrap();
    s.pass(2000);
    let out = render(&s);
    let labels = format!("{{id=\"/docker/{ID}\",name=\"web-1\",image=\"web:1\",service=\"web\"}}");
    assert!(
        out.contains(&format!("container_cpu_usage_seconds_total{labels} 1.5\n")),
        "{out}"
    );
    assert!(
        out.contains(&format!("container_spec_cpu_quota{labels} 50000\n")),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "container_spec_memory_limit_bytes{labels} 1048576\n"
        )),
        "{out}"
    );
    assert!(
        out.contains("container_network_transmit_bytes_total{id=\"/docker/"),
        "{out}"
    );
    assert!(out.contains("interface=\"eth0\"} 200\n"), "{out}");
    {
        let shared = s.shared();
        let views = shared.containers.read().unwrap();
        let v = &views[ID];
        assert_eq!(v.spec.cpu_cores(), Some(0.5));
        assert_eq!(v.source, SourceKind::Cgroup);
        let st = shared.ingest.read();
        let latest = Query::new(&st).container_latest(ID, None);
        assert_eq!(latest.cpu_cores, Some(0.5));
        assert_eq!(latest.memory_usage_bytes, Some(4096.0));
        assert_eq!(shared.last_pass(), Some(2000));
    }
    s.apply(DiscoveryEvent::Upsert(info("exited")));
    assert_eq!(s.tracked(), 0);
    s.pass(3000);
    let out = render(&s);
    assert!(!out.contains("/docker/"), "{out}");
    // The root cgroup (id="/") stays: it is the machine, not a container.
    assert!(out.contains("container_last_seen{id=\"/\"} 3\n"), "{out}");
    assert!(s.shared().containers.read().unwrap().is_empty());
    assert_eq!(s.shared().ingest.read().container_series(ID).count(), 0);
}

#[test]
fn a_rename_recreates_the_series_and_a_health_change_does_not() {
    let (_t, proc_root, cg) = fixture();
    let mut s = sampler(&proc_root, Some(&cg), None);
    s.apply(DiscoveryEvent::Upsert(info("running")));
    s.pass(1000);
    let before = container_series(&s, "container_cpu_usage_seconds_total");
    let mut healthy = info("running");
    healthy.health = Some("healthy".into());
    s.apply(DiscoveryEvent::Upsert(healthy));
    assert_eq!(
        container_series(&s, "container_cpu_usage_seconds_total"),
        before,
        "a health change keeps the series"
    );
    let mut renamed = info("running");
    renamed.name = "web-2".into();
    s.apply(DiscoveryEvent::Upsert(renamed));
    s.pass(2000);
    let after = container_series(&s, "container_cpu_usage_seconds_total");
    assert_eq!(after.len(), 1);
    assert_ne!(after, before);
    assert_eq!(s.shared().containers.read().unwrap()[ID].info.name, "web-2");
    let out = render(&s);
    assert!(!out.contains("web-1"), "{out}");
}

#[test]
fn unreadable_cgroups_fall_back_to_stats_api_samples() {
    let (_t, proc_root, _) = fixture();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut s = sampler(&proc_root, None, Some(tx));
    let mut i = info("running");
    i.limits = CgroupSpec {
        cpu_quota_us: Some(25_000),
        cpu_period_us: Some(100_000),
        memory_limit_bytes: None,
    };
    s.apply(DiscoveryEvent::Upsert(i));
    assert_eq!(rx.try_recv().unwrap(), StatsRequest::Start(ID.to_string()));
    let sample = CgroupSample {
        cpu_usage_ns: Some(3_000_000_000),
        ..Default::default()
    };
    let net = vec![(
        "eth0".to_string(),
        NetCounters {
            rx_bytes: 7,
            ..Default::default()
        },
    )];
    s.apply(DiscoveryEvent::StatsSample {
        id: ID.into(),
        sample,
        net,
    });
    s.pass(1000);
    let out = render(&s);
    assert!(
        out.contains("container_cpu_usage_seconds_total{id=\"/docker/"),
        "{out}"
    );
    assert!(out.contains("} 3\n"), "{out}");
    assert!(out.contains("container_spec_cpu_quota{"), "{out}");
    assert!(out.contains("interface=\"eth0\"} 7\n"), "{out}");
    s.pass(2000);
    assert!(
        render(&s).contains("container_cpu_usage_seconds_total"),
        "a stale stats sample is not re-appended but still shown"
    );
    s.apply(DiscoveryEvent::Remove(ID.into()));
    assert_eq!(rx.try_recv().unwrap(), StatsRequest::Stop(ID.to_string()));
    assert_eq!(s.shared().containers.read().unwrap().len(), 0);
}

const ID2: &str = "2222220123456789abcdef0123456789abcdef0123456789abcdef0123456789";
const ID3: &str = "3333330123456789abcdef0123456789abcdef0123456789abcdef0123456789";

/// The exposition with the series of each family sorted: families, their HELP and TYPE lines keep
/// their order, but the order of containers within a family follows a hash map and is not pinned.
fn canonical(text: &str) -> String {
    let mut out = String::new();
    let mut block: Vec<&str> = Vec::new();
    let flush = |block: &mut Vec<&str>, out: &mut String| {
        block.sort_unstable();
        for l in block.drain(..) {
            out.push_str(l);
            out.push('\n');
        }
    };
    for line in text.lines() {
        // The labels of node_uname_info are this machine's kernel, the time zone, the clock
        // discipline and cAdvisor's machine_* its own (system calls, not files): their HELP and TYPE
        // stay pinned.
        if [
            "node_uname_info{",
            "node_time_zone_offset_seconds{",
            "node_timex_",
            "machine_",
        ]
        .iter()
        .any(|p| line.starts_with(p))
        {
            continue;
        }
        if line.starts_with('#') {
            flush(&mut block, &mut out);
            out.push_str(line);
            out.push('\n');
        } else {
            block.push(line);
        }
    }
    flush(&mut block, &mut out);
    out
}

/// Compares with a golden file under testdata/, or rewrites it with PLIMSOLL_BLESS=1.
fn golden(name: &str, got: &str) {
    let got = &canonical(got);
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/sampler/testdata")
        .join(name);
    if std::env::var_os("PLIMSOLL_BLESS").is_some() {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, got).unwrap();
    }
    let want = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if want != *got {
        let first = want
            .lines()
            .zip(got.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(want.lines().count().min(got.lines().count()));
        panic!(
            "exposition differs from {} at line {}:\nwant {:?}\n got {:?}",
            path.display(),
            first + 1,
            want.lines().nth(first),
            got.lines().nth(first)
        );
    }
}

fn container(id: &str, name: &str, pid: Option<u32>) -> ContainerInfo {
    ContainerInfo {
        id: id.to_string(),
        name: name.into(),
        pid,
        ..info("running")
    }
}

/// Two passes over a fixture host with three containers: cgroupfs and systemd cgroup paths, a Swarm
/// task, one on the host network, one without a cgroup (sampled through the stats API). The
/// exposition is pinned byte for byte: families, help, types, label names, order and values.
/// A fixture /proc and an empty cgroup mount under a temporary directory.
fn fixture_host() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let proc_root = t.path().join("proc");
    crate::testutil::proc_fixture(&proc_root);
    let cg = t.path().join("cgroup");
    (t, proc_root, cg)
}

#[test]
fn exposition_of_a_fixture_host_is_pinned_v1() {
    let (_t, proc_root, cg) = fixture_host();
    crate::testutil::v1_container(&cg, &format!("docker/{ID}"));
    crate::testutil::v1_container(&cg, &format!("system.slice/docker-{ID2}.scope"));
    write(
        &proc_root.join("4242/net"),
        "dev",
        "h\nh\n    lo: 10 1 0 0 0 0 0 0 10 1 0 0 0 0 0 0\n  eth0: 100 1 0 0 0 0 0 0 200 2 0 0 0 0 0 0\n",
    );
    // The root cgroup (id="/"), with the host's interfaces as pid 1 sees them: cAdvisor leaves out
    // loopback, veths and Docker's bridges.
    write(&cg.join("cpuacct"), "cpuacct.usage", "90000000000\n");
    write(&cg.join("memory"), "memory.usage_in_bytes", "800000\n");
    write(
        &cg.join("memory"),
        "memory.stat",
        "total_cache 300000\ntotal_rss 400000\ntotal_inactive_file 100000\n",
    );
    write(
        &proc_root.join("1/net"),
        "dev",
        "h\nh\n    lo: 1 1 0 0 0 0 0 0 1 1 0 0 0 0 0 0\n  eth0: 700 7 0 0 0 0 0 0 800 8 0 0 0 0 0 0\nveth1a2b: 5 1 0 0 0 0 0 0 5 1 0 0 0 0 0 0\ndocker0: 5 1 0 0 0 0 0 0 5 1 0 0 0 0 0 0\n",
    );
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let mut s = sampler(&proc_root, Some(&cg), Some(tx));
    let mut web = container(ID, "web-1", Some(4242));
    web.started_at = Some("2026-11-29T13:36:19.250000000Z".into());
    web.labels = [
        ("com.docker.compose.project", "shop"),
        ("com.docker.compose.service", "web"),
        ("com.docker.compose.container-number", "1"),
        ("org.opencontainers.image.title", "not copied"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    s.apply(DiscoveryEvent::Upsert(web));
    let mut task = container(ID2, "api.2.xyz", None);
    task.service = Some("api".into());
    task.swarm_task_id = Some("xyz".into());
    task.swarm_slot = Some("2".into());
    task.labels = [
        ("com.docker.swarm.service.name", "shop_api"),
        ("com.docker.swarm.task.name", "shop_api.2.xyz"),
        ("com.docker.stack.namespace", "shop"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    task.image = "api:\"quoted\"\\1".into();
    s.apply(DiscoveryEvent::Upsert(task));
    let mut hostnet = container(ID3, "hostnet", Some(999));
    hostnet.host_network = true;
    hostnet.limits = CgroupSpec {
        cpu_quota_us: Some(200_000),
        cpu_period_us: Some(100_000),
        memory_limit_bytes: Some(1 << 30),
    };
    s.apply(DiscoveryEvent::Upsert(hostnet));
    s.apply(DiscoveryEvent::StatsSample {
        id: ID3.into(),
        sample: CgroupSample {
            cpu_usage_ns: Some(1_250_000_000),
            memory_usage: Some(5000),
            ..Default::default()
        },
        net: vec![],
    });
    s.pass(1000);
    write(
        &cg.join("cpuacct/docker").join(ID),
        "cpuacct.usage",
        "3000000000\n",
    );
    write(
        &proc_root,
        "stat",
        "cpu  11 0 20 301 4 0 1 0 0 0\ncpu0 6 0 10 151 2 0 1 0 0 0\ncpu1 5 0 10 150 2 0 0 0 0 0\nintr 12400 1 2\nctxt 1500\nbtime 1700000000\nprocesses 4250\nprocs_running 2\nprocs_blocked 0\n",
    );
    s.pass(2000);
    golden("v1.prom", &render(&s));
}

#[test]
fn exposition_of_a_fixture_host_is_pinned_v2() {
    let (_t, proc_root, cg) = fixture_host();
    crate::testutil::v2_container(&cg, &format!("system.slice/docker-{ID}.scope"));
    // The v2 root has cpu.stat but no memory.current: its memory comes from /proc/meminfo.
    write(
        &cg,
        "cpu.stat",
        "usage_usec 90000000\nuser_usec 60000000\nsystem_usec 30000000\n",
    );
    write(
        &proc_root,
        "meminfo",
        "MemTotal:       2048 kB\nMemFree:         512 kB\nCached:          256 kB\nInactive(file):  128 kB\nAnonPages:       640 kB\n",
    );
    let mut s = sampler(&proc_root, Some(&cg), None);
    s.apply(DiscoveryEvent::Upsert(container(ID, "web-1", None)));
    s.pass(1000);
    s.pass(2000);
    golden("v2.prom", &render(&s));
}

#[test]
fn removing_a_container_removes_every_series_attributed_to_it() {
    use crate::store::{FamilyDesc, Kind, Limits, SourceDesc, Value};
    let (_t, proc_root, _) = fixture();
    // No cgroupfs and no stats poller: the container is not sampled, but a receiver attributes a
    // series to it.
    let mut s = sampler(&proc_root, None, None);
    s.apply(DiscoveryEvent::Upsert(info("running")));
    assert_eq!(s.tracked(), 0);
    let ingest = s.shared().ingest;
    let src = ingest
        .register_source(SourceDesc {
            name: "statsd",
            stale_after: std::time::Duration::from_secs(2),
            limits: Limits::default(),
        })
        .unwrap();
    let fam = ingest
        .family(FamilyDesc::float("orders_total", "Orders.", Kind::Counter))
        .unwrap();
    ingest.batch(src, 1000, |b| {
        let r = b.series(fam, &[("name", "web-1")], Some(ID)).unwrap();
        b.put(r, Value::Float(3.0));
    });
    assert_eq!(ingest.read().container_series(ID).count(), 1);
    s.apply(DiscoveryEvent::Remove(ID.into()));
    assert_eq!(ingest.read().container_series(ID).count(), 0);
    assert!(!render(&s).contains("orders_total"));
}
