use std::fs;

use super::*;

const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// A v1 tree with the container under `rel` in every controller.
fn v1_tree(rel: &str) -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    crate::testutil::v1_container(t.path(), rel);
    t
}

fn v2_tree(rel: &str) -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    crate::testutil::v2_container(t.path(), rel);
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
