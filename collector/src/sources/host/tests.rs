use std::fs;

use super::*;

fn fixture_proc() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    crate::testutil::proc_fixture(d.path());
    // A sysfs with eth0 (a 1 Gbit/s link that is up) for the netclass series.
    let eth0 = d.path().join("sysfs/class/net/eth0");
    fs::create_dir_all(&eth0).unwrap();
    for (f, v) in [
        ("operstate", "up\n"),
        ("mtu", "1500\n"),
        ("speed", "1000\n"),
        ("duplex", "full\n"),
        ("flags", "0x1003\n"),
        ("address", "02:42:ac:11:00:02\n"),
        ("broadcast", "ff:ff:ff:ff:ff:ff\n"),
        ("ifalias", "\n"),
    ] {
        fs::write(eth0.join(f), v).unwrap();
    }
    d
}

fn rendered(ingest: &Ingest) -> String {
    let mut out = String::new();
    crate::http::exposition::render(&ingest.read(), &mut out);
    out
}

/// A host source over the /proc at `proc_root`, on a new store.
fn host(proc_root: &Path) -> (Ingest, HostSource) {
    let ingest = Ingest::new(Duration::from_secs(60));
    let config = HostConfig {
        proc_root: proc_root.to_path_buf(),
        sys_root: proc_root.join("sysfs"),
        ..HostConfig::default()
    };
    let s = HostSource::build(&config, &ingest).unwrap();
    (ingest, s)
}

#[test]
fn samples_a_fixture_proc_under_node_exporter_names() {
    let d = fixture_proc();
    let (store, mut s) = host(d.path());
    s.sample(&store, 1000);
    let out = rendered(&store);
    let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    for want in [
        format!(
            "node_cpu_seconds_total{{cpu=\"1\",mode=\"system\"}} {}",
            10.0 / tck
        ),
        format!(
            "node_cpu_seconds_total{{cpu=\"0\",mode=\"idle\"}} {}",
            150.0 / tck
        ),
        "node_context_switches_total 999".into(),
        "node_forks_total 4242".into(),
        "node_procs_running 3".into(),
        "node_boot_time_seconds 1700000000".into(),
        "node_memory_MemTotal_bytes 2097152".into(),
        "node_memory_Active_anon_bytes 16384".into(),
        "node_memory_HugePages_Total 0".into(),
        "node_disk_read_bytes_total{device=\"sda\"} 1024000".into(),
        "node_disk_written_bytes_total{device=\"sda\"} 2048000".into(),
        "node_disk_reads_completed_total{device=\"sda\"} 100".into(),
        "node_disk_io_time_seconds_total{device=\"sda\"} 1.5".into(),
        "node_network_receive_bytes_total{device=\"eth0\"} 5".into(),
        "node_network_transmit_drop_total{device=\"eth0\"} 12".into(),
        "node_load1 0.5".into(),
        "node_load5 1.25".into(),
        "node_load15 10\n".into(),
        "node_pressure_cpu_waiting_seconds_total 2.5".into(),
        "node_pressure_memory_stalled_seconds_total 0.5".into(),
        "node_time_seconds 1\n".into(),
        "node_filefd_allocated 2520".into(),
        "node_filefd_maximum 2466170".into(),
        "node_entropy_available_bits 256".into(),
        "node_entropy_pool_size_bits 4096".into(),
        "node_network_up{device=\"eth0\"} 1".into(),
        "node_network_mtu_bytes{device=\"eth0\"} 1500".into(),
        "node_network_speed_bytes{device=\"eth0\"} 125000000".into(),
        "node_network_info{address=\"02:42:ac:11:00:02\",adminstate=\"up\",broadcast=\"ff:ff:ff:ff:ff:ff\",device=\"eth0\",duplex=\"full\",ifalias=\"\",operstate=\"up\"} 1".into(),
        "node_uname_info{domainname=".into(),
        "sysname=\"Linux\"".into(),
        "node_vmstat_pgpgin 11".into(),
        "node_vmstat_pgmajfault 3".into(),
        "node_vmstat_oom_kill 1".into(),
        "node_netstat_TcpExt_ListenDrops 4".into(),
        "node_netstat_TcpExt_ListenOverflows 2".into(),
        "node_netstat_IpExt_OutOctets 2000".into(),
        "node_netstat_Ip_Forwarding 1".into(),
        "node_netstat_Tcp_ActiveOpens 12".into(),
        "node_netstat_Tcp_CurrEstab 3".into(),
        "node_sockstat_sockets_used 38".into(),
        "node_sockstat_TCP_tw 20".into(),
        "node_sockstat_TCP_mem 2".into(),
        format!("node_sockstat_TCP_mem_bytes {}", 2 * unsafe { libc::sysconf(libc::_SC_PAGESIZE) }),
        "node_sockstat_UDP_inuse 1".into(),
    ] {
        assert!(out.contains(&want), "missing {want:?} in\n{out}");
    }
    assert!(
        !out.contains("sda1"),
        "partitions are left out like node_exporter does"
    );
    assert!(!out.contains("loop0"));
    for left_out in [
        "node_vmstat_nr_free_pages",
        "node_netstat_TcpExt_TW",
        "node_netstat_Tcp_MaxConn",
        "DefaultTTL",
    ] {
        assert!(
            !out.contains(left_out),
            "{left_out} is not in node_exporter's default fields"
        );
    }
    assert!(
        !out.contains("node_pressure_io"),
        "absent PSI file gives no series"
    );
    assert_eq!(
        s.device_name(8, 1),
        Some("sda1"),
        "all devices are known for container labels"
    );
}

#[test]
fn a_missing_or_garbled_file_loses_only_its_own_metrics() {
    let d = fixture_proc();
    fs::remove_file(d.path().join("meminfo")).unwrap();
    fs::write(d.path().join("loadavg"), "garbage\n").unwrap();
    let (store, mut s) = host(d.path());
    s.sample(&store, 1000);
    let out = rendered(&store);
    assert!(!out.contains("node_memory"));
    assert!(!out.contains("node_load1 "));
    assert!(out.contains("node_context_switches_total 999"));
}

#[test]
fn counters_become_rates_across_passes() {
    let d = fixture_proc();
    let (store, mut s) = host(d.path());
    s.sample(&store, 1000);
    fs::write(d.path().join("stat"), "ctxt 1999\n").unwrap();
    s.sample(&store, 3000);
    let st = store.read();
    let q = crate::query::Query::new(&st);
    let ctxt = q.select(&crate::query::Selector {
        name: "node_context_switches_total",
        ..Default::default()
    })[0];
    assert_eq!(q.rate(ctxt, 3000, 3000), Some(500.0));
}

#[test]
fn ignores_devices_like_node_exporter() {
    for d in [
        "sda1",
        "vdb2",
        "xvda1",
        "nvme0n1p1",
        "loop3",
        "ram0",
        "zram1",
        "fd0",
    ] {
        assert!(disk_ignored(d), "{d}");
    }
    for d in ["sda", "vda", "nvme0n1", "dm-0", "md0", "sr0"] {
        assert!(!disk_ignored(d), "{d}");
    }
}

#[test]
fn live_proc_gives_cpu_and_memory() {
    let (store, mut s) = host(Path::new("/proc"));
    s.sample(&store, 1000);
    let out = rendered(&store);
    assert!(out.contains("node_cpu_seconds_total{cpu=\"0\",mode=\"user\"}"));
    assert!(out.contains("node_memory_MemAvailable_bytes "));
    assert!(out.contains("node_network_receive_bytes_total{device=\"lo\"}"));
}

#[test]
fn filesystems_under_a_host_root_with_node_exporter_labels() {
    let d = fixture_proc();
    let root = tempfile::tempdir().unwrap();
    fs::create_dir_all(d.path().join("1")).unwrap();
    fs::create_dir_all(root.path().join("boot")).unwrap();
    let r = root.path().display();
    fs::write(
        d.path().join("1/mounts"),
        format!("/dev/sda1 {r} ext4 rw 0 0\n/dev/sda2 {r}/boot vfat rw 0 0\nproc {r}/proc proc rw 0 0\n/dev/sdz {r}/gone ext4 rw 0 0\n"),
    )
    .unwrap();
    let ingest = Ingest::new(Duration::from_secs(60));
    let config = HostConfig {
        proc_root: d.path().to_path_buf(),
        rootfs: root.path().to_path_buf(),
        ..HostConfig::default()
    };
    let mut s = HostSource::build(&config, &ingest).unwrap();
    s.sample(&ingest, 1000);
    let out = rendered(&ingest);
    let want = crate::sources::host::filesystem::statvfs(root.path()).unwrap();
    for line in [
        format!("node_filesystem_size_bytes{{device=\"/dev/sda1\",fstype=\"ext4\",mountpoint=\"/\"}} {}", want.size_bytes),
        format!("node_filesystem_files{{device=\"/dev/sda2\",fstype=\"vfat\",mountpoint=\"/boot\"}} {}", want.files),
        "node_filesystem_device_error{device=\"/dev/sda1\",fstype=\"ext4\",mountpoint=\"/\"} 0".into(),
        "node_filesystem_readonly{device=\"/dev/sda1\",fstype=\"ext4\",mountpoint=\"/\"} 0".into(),
        "node_filesystem_device_error{device=\"/dev/sdz\",fstype=\"ext4\",mountpoint=\"/gone\"} 1".into(),
        "# TYPE node_filesystem_avail_bytes gauge".into(),
    ] {
        assert!(out.contains(&line), "missing {line:?} in\n{out}");
    }
    assert!(!out.contains("mountpoint=\"/proc\""), "proc is left out");
    assert!(
        !out.contains("node_filesystem_size_bytes{device=\"/dev/sdz\""),
        "a failed statvfs gives only device_error"
    );
}

#[test]
fn netclass_follows_the_devices_and_their_state() {
    let d = fixture_proc();
    let (store, mut s) = host(d.path());
    s.sample(&store, 1000);
    let eth0 = d.path().join("sysfs/class/net/eth0");
    fs::write(eth0.join("operstate"), "down\n").unwrap();
    fs::write(eth0.join("speed"), "-1\n").unwrap();
    s.sample(&store, 2000);
    let out = rendered(&store);
    assert!(out.contains("node_network_up{device=\"eth0\"} 0"), "{out}");
    assert!(out.contains("operstate=\"down\"} 1"), "{out}");
    assert!(
        !out.contains("node_network_speed_bytes"),
        "an unknown speed is left out: {out}"
    );
    // A device /proc/net/dev no longer lists is forgotten.
    fs::write(d.path().join("net/dev"), "h1\nh2\n").unwrap();
    s.sample(&store, 3000);
    assert!(!rendered(&store).contains("node_network_up{"));
    assert!(s.netclass_devices() == 0);
}
