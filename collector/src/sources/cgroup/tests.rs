use std::fs;
use std::path::Path;

use super::*;

const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn write(dir: &Path, file: &str, content: &str) {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join(file), content).unwrap();
}

/// A v1 tree with the container under `rel` in every controller.
fn v1_tree(rel: &str) -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
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
    t
}

fn v2_tree(rel: &str) -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    write(t.path(), "cgroup.controllers", "cpu io memory pids\n");
    let d = t.path().join(rel);
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
    t
}

fn expected(pressure: Option<[kernel_pressure::P; 3]>) -> CgroupSample {
    CgroupSample {
        cpu_usage_ns: Some(2_500_000_000),
        cpu_user_ns: Some(2_000_000_000),
        cpu_system_ns: Some(500_000_000),
        cfs_periods: Some(100),
        cfs_throttled_periods: Some(7),
        cfs_throttled_ns: Some(350_000_000),
        memory_usage: Some(10000),
        memory_working_set: Some(8500),
        memory_rss: Some(6000),
        memory_cache: Some(3000),
        memory_failcnt: Some(4),
        oom_events: Some(2),
        io: vec![IoDevice {
            major: 8,
            minor: 0,
            read_bytes: 4096,
            write_bytes: 8192,
            reads: 1,
            writes: 2,
        }],
        pressure,
    }
}

mod kernel_pressure {
    pub type P = crate::sources::kernel::Pressure;
    pub fn p(some: u64, full: u64) -> P {
        P {
            some_us: Some(some),
            full_us: Some(full),
        }
    }
}

fn read(cg: &ContainerCgroup) -> CgroupSample {
    let mut out = CgroupSample::default();
    let mut failures = Vec::new();
    cg.read(
        &mut crate::sources::procfile::ReadBuf::default(),
        &mut out,
        &mut failures,
    )
    .unwrap();
    assert!(failures.is_empty(), "{failures:?}");
    out
}

#[test]
fn v1_cgroupfs_driver() {
    let t = v1_tree(&format!("docker/{ID}"));
    let layout = CgroupLayout::detect(t.path()).unwrap();
    assert_eq!(layout.version, CgroupVersion::V1);
    let cg = layout.open(ID, None).unwrap();
    assert_eq!(cg.name(), format!("/docker/{ID}"));
    assert_eq!(read(&cg), expected(None));
    assert_eq!(
        cg.spec(),
        CgroupSpec {
            cpu_quota_us: Some(50000),
            cpu_period_us: Some(100000),
            memory_limit_bytes: None
        }
    );
    assert_eq!(cg.spec().cpu_cores(), Some(0.5));
}

#[test]
fn v1_systemd_driver() {
    let t = v1_tree(&format!("system.slice/docker-{ID}.scope"));
    let cg = CgroupLayout::detect(t.path())
        .unwrap()
        .open(ID, None)
        .unwrap();
    assert_eq!(cg.name(), format!("/system.slice/docker-{ID}.scope"));
    assert_eq!(read(&cg), expected(None));
}

#[test]
fn v2_cgroupfs_driver() {
    let t = v2_tree(&format!("docker/{ID}"));
    let layout = CgroupLayout::detect(t.path()).unwrap();
    assert_eq!(layout.version, CgroupVersion::V2);
    let cg = layout.open(ID, None).unwrap();
    use kernel_pressure::p;
    assert_eq!(read(&cg), expected(Some([p(10, 5), p(20, 15), p(30, 25)])));
    assert_eq!(
        cg.spec(),
        CgroupSpec {
            cpu_quota_us: Some(50000),
            cpu_period_us: Some(100000),
            memory_limit_bytes: None
        }
    );
}

#[test]
fn v2_systemd_driver() {
    let t = v2_tree(&format!("system.slice/docker-{ID}.scope"));
    let cg = CgroupLayout::detect(t.path())
        .unwrap()
        .open(ID, None)
        .unwrap();
    assert_eq!(cg.name(), format!("/system.slice/docker-{ID}.scope"));
    assert_eq!(read(&cg).cpu_usage_ns, Some(2_500_000_000));
}

#[test]
fn proc_cgroup_names_a_custom_parent() {
    let rel = format!("custom-parent/{ID}");
    let t = v2_tree(&rel);
    let layout = CgroupLayout::detect(t.path()).unwrap();
    assert!(matches!(
        layout.open(ID, None),
        Err(CgroupError::NotFound { .. })
    ));
    let cg = layout.open(ID, Some(&format!("0::/{rel}\n"))).unwrap();
    assert_eq!(cg.name(), format!("/{rel}"));
    let t1 = v1_tree(&rel);
    let pc = format!("12:memory:/{rel}\n4:cpu,cpuacct:/{rel}\n1:name=systemd:/{rel}\n");
    assert!(CgroupLayout::detect(t1.path())
        .unwrap()
        .open(ID, Some(&pc))
        .is_ok());
}

#[test]
fn a_removed_cgroup_reads_as_vanished_and_missing_files_as_absent() {
    let t = v2_tree(&format!("docker/{ID}"));
    let d = t.path().join("docker").join(ID);
    fs::remove_file(d.join("io.pressure")).unwrap();
    fs::write(d.join("memory.stat"), "garbage without numbers\n").unwrap();
    let cg = CgroupLayout::detect(t.path())
        .unwrap()
        .open(ID, None)
        .unwrap();
    let s = read(&cg);
    assert_eq!(s.memory_rss, None);
    assert_eq!(s.cpu_usage_ns, Some(2_500_000_000));
    assert_eq!(
        s.pressure.unwrap()[2],
        crate::sources::kernel::Pressure::default()
    );
    // Real cgroupfs answers ENODEV once the directory is removed; a kept-open fixture file cannot,
    // so the error mapping is checked directly.
    assert!(crate::sources::procfile::is_vanished(
        &std::io::Error::from_raw_os_error(libc::ENODEV)
    ));
}

#[test]
fn no_hierarchy_is_a_clear_error() {
    let t = tempfile::tempdir().unwrap();
    let e = CgroupLayout::detect(t.path()).unwrap_err();
    assert!(e.to_string().contains("no cgroup hierarchy"), "{e}");
}
