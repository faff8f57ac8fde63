//! Fixture trees shared by the unit tests: a small host /proc and container cgroups of both
//! hierarchies, written into a temporary directory.

use std::fs;
use std::path::Path;

pub fn write(dir: &Path, file: &str, content: &str) {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join(file), content).unwrap();
}

/// The host files the host source reads, under `p` (a /proc).
pub fn proc_fixture(p: &Path) {
    fs::create_dir_all(p.join("net")).unwrap();
    fs::create_dir_all(p.join("pressure")).unwrap();
    fs::write(
        p.join("stat"),
        "cpu  10 0 20 300 4 0 1 0 0 0\ncpu0 5 0 10 150 2 0 1 0 0 0\ncpu1 5 0 10 150 2 0 0 0 0 0\nintr 12345 1 2\nctxt 999\nbtime 1700000000\nprocesses 4242\nprocs_running 3\nprocs_blocked 1\n",
    )
    .unwrap();
    fs::write(p.join("meminfo"), "MemTotal:       2048 kB\nMemAvailable:   1024 kB\nActive(anon):     16 kB\nHugePages_Total:       0\n").unwrap();
    fs::write(
        p.join("diskstats"),
        "   8       0 sda 100 0 2000 50 200 0 4000 60 0 1500 110 0 0 0 0\n   8       1 sda1 1 0 2 0 0 0 0 0 0 0 0 0 0 0 0\n   7       0 loop0 1 0 2 0 0 0 0 0 0 0 0 0 0 0 0\n",
    )
    .unwrap();
    fs::write(
        p.join("net/dev"),
        "h1\nh2\n  eth0: 5 6 7 8 0 0 0 0 9 10 11 12 0 0 0 0\n",
    )
    .unwrap();
    fs::write(p.join("loadavg"), "0.50 1.25 10.00 1/234 5678\n").unwrap();
    fs::create_dir_all(p.join("rootfs/etc")).unwrap();
    fs::write(
        p.join("rootfs/etc/os-release"),
        "PRETTY_NAME=\"Fixture Linux 1.2\"\nNAME=\"Fixture Linux\"\nID=fixture\nVERSION_ID=1.2\n",
    )
    .unwrap();
    fs::create_dir_all(p.join("sys/net/netfilter")).unwrap();
    fs::write(p.join("sys/net/netfilter/nf_conntrack_count"), "12\n").unwrap();
    fs::write(p.join("sys/net/netfilter/nf_conntrack_max"), "262144\n").unwrap();
    fs::write(
        p.join("net/softnet_stat"),
        "00000100 00000001 00000002 00000000\n00000200 00000000 00000003 00000000\n",
    )
    .unwrap();
    fs::write(
        p.join("vmstat"),
        "nr_free_pages 100\npgpgin 11\npgmajfault 3\noom_kill 1\n",
    )
    .unwrap();
    fs::write(
        p.join("net/netstat"),
        "TcpExt: TW ListenOverflows ListenDrops\nTcpExt: 5 2 4\nIpExt: InOctets OutOctets\nIpExt: 1000 2000\n",
    )
    .unwrap();
    fs::write(
        p.join("net/snmp"),
        "Ip: Forwarding DefaultTTL\nIp: 1 64\nTcp: MaxConn ActiveOpens CurrEstab\nTcp: -1 12 3\n",
    )
    .unwrap();
    fs::write(
        p.join("net/sockstat"),
        "sockets: used 38\nTCP: inuse 1 orphan 0 tw 20 alloc 4 mem 2\nUDP: inuse 1 mem 0\n",
    )
    .unwrap();
    fs::create_dir_all(p.join("sys/fs")).unwrap();
    fs::create_dir_all(p.join("sys/kernel/random")).unwrap();
    fs::write(p.join("sys/fs/file-nr"), "2520\t0\t2466170\n").unwrap();
    fs::write(p.join("sys/kernel/random/entropy_avail"), "256\n").unwrap();
    fs::write(p.join("sys/kernel/random/poolsize"), "4096\n").unwrap();
    fs::write(
        p.join("pressure/cpu"),
        "some avg10=0.00 avg60=0.50 avg300=0.38 total=2500000\n",
    )
    .unwrap();
    fs::write(
        p.join("pressure/memory"),
        "some avg10=0.00 total=1000000\nfull avg10=0.00 total=500000\n",
    )
    .unwrap();
}

/// A v1 container under `rel` in every controller of the hierarchy at `root`.
pub fn v1_container(root: &Path, rel: &str) {
    let r = root;
    let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    let cpuacct = r.join("cpuacct").join(rel);
    write(&cpuacct, "cpuacct.usage", "2500000000\n");
    write(
        &cpuacct,
        "cpuacct.stat",
        &format!("user {}\nsystem {}\n", 2 * tck, tck / 2),
    );
    let cpu = r.join("cpu").join(rel);
    write(
        &cpu,
        "cpu.stat",
        "nr_periods 100\nnr_throttled 7\nthrottled_time 350000000\n",
    );
    write(&cpu, "cpu.cfs_quota_us", "50000\n");
    write(&cpu, "cpu.cfs_period_us", "100000\n");
    let mem = r.join("memory").join(rel);
    write(&mem, "memory.usage_in_bytes", "10000\n");
    write(
        &mem,
        "memory.stat",
        "cache 1\nrss 2\ntotal_cache 3000\ntotal_rss 6000\ntotal_inactive_file 1500\n",
    );
    write(&mem, "memory.failcnt", "4\n");
    write(
        &mem,
        "memory.oom_control",
        "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
    );
    write(&mem, "memory.limit_in_bytes", "9223372036854771712\n");
    let blkio = r.join("blkio").join(rel);
    write(
        &blkio,
        "blkio.throttle.io_service_bytes",
        "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 0\n8:0 Total 12288\nTotal 12288\n",
    );
    write(
        &blkio,
        "blkio.throttle.io_serviced",
        "8:0 Read 1\n8:0 Write 2\n8:0 Total 3\nTotal 3\n",
    );
}

/// A v2 container under `rel` of the unified hierarchy at `root`.
pub fn v2_container(root: &Path, rel: &str) {
    write(root, "cgroup.controllers", "cpu io memory pids\n");
    let d = root.join(rel);
    write(&d, "cpu.stat", "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\nnr_periods 100\nnr_throttled 7\nthrottled_usec 350000\n");
    write(&d, "cpu.max", "50000 100000\n");
    write(&d, "memory.current", "10000\n");
    write(
        &d,
        "memory.stat",
        "anon 6000\nfile 3000\ninactive_file 1500\n",
    );
    write(
        &d,
        "memory.events",
        "low 0\nhigh 0\nmax 4\noom 1\noom_kill 2\n",
    );
    write(&d, "memory.max", "max\n");
    write(
        &d,
        "io.stat",
        "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n",
    );
    write(&d, "cpu.pressure", "some avg10=0.00 avg60=0.00 avg300=0.00 total=10\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=5\n");
    write(&d, "memory.pressure", "some avg10=0.00 avg60=0.00 avg300=0.00 total=20\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=15\n");
    write(&d, "io.pressure", "some avg10=0.00 avg60=0.00 avg300=0.00 total=30\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=25\n");
}

/// A running container as discovery describes it, with addresses on one network per address.
pub fn container_info(id: &str, ips: &[std::net::IpAddr]) -> crate::sources::docker::ContainerInfo {
    crate::sources::docker::ContainerInfo {
        id: id.to_string(),
        name: format!("c-{}", &id[..4]),
        image: "img".into(),
        service: None,
        compose_project: None,
        swarm_task_id: None,
        swarm_slot: None,
        swarm_node_id: None,
        networks: ips
            .iter()
            .enumerate()
            .map(|(k, a)| (format!("net{k}"), vec![*a]))
            .collect(),
        pid: None,
        host_network: false,
        state: "running".into(),
        health: None,
        started_at: None,
        limits: Default::default(),
        labels: Default::default(),
    }
}
