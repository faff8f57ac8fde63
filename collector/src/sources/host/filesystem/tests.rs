use proptest::prelude::*;

use super::*;

const MOUNTS: &str = "\
/dev/sda1 / ext4 rw,relatime 0 0
proc /proc proc rw,nosuid 0 0
sysfs /sys sysfs rw 0 0
tmpfs /run tmpfs rw,nosuid,size=2440336k 0 0
/dev/sda15 /boot/efi vfat rw 0 0
overlay /var/lib/docker/overlay2/abc/merged overlay rw 0 0
/dev/sda1 /var/lib/docker ext4 rw 0 0
nsfs /run/docker/netns/x nsfs rw 0 0
tmpfs /run/credentials/systemd-journald.service tmpfs ro 0 0
/dev/sdb /mnt/my\\040disk xfs rw 0 0
cgroup2 /sys/fs/cgroup cgroup2 rw 0 0
/dev/sda1 / ext4 rw,relatime 0 0
broken
";

fn mounts(text: &str, rootfs: &str) -> Vec<(String, String, String)> {
    parse_mounts(text, Path::new(rootfs), &Exclusions::default())
        .into_iter()
        .map(|m| (m.device, m.mountpoint, m.fstype))
        .collect()
}

fn t(d: &str, m: &str, f: &str) -> (String, String, String) {
    (d.into(), m.into(), f.into())
}

#[test]
fn keeps_node_exporter_default_filesystems() {
    assert_eq!(
        mounts(MOUNTS, "/"),
        vec![
            t("/dev/sda1", "/", "ext4"),
            t("tmpfs", "/run", "tmpfs"),
            t("/dev/sda15", "/boot/efi", "vfat"),
            // Only what is under /var/lib/docker/ is left out, not the mount itself.
            t("/dev/sda1", "/var/lib/docker", "ext4"),
            t("/dev/sdb", "/mnt/my disk", "xfs"),
        ]
    );
}

#[test]
fn strips_the_host_root_prefix() {
    let text = "/dev/sda1 /host ext4 rw 0 0\n/dev/sda15 /host/boot/efi vfat rw 0 0\nproc /host/proc proc rw 0 0\n/dev/sdc /hostile ext4 rw 0 0\n";
    assert_eq!(
        mounts(text, "/host/"),
        vec![
            t("/dev/sda1", "/", "ext4"),
            t("/dev/sda15", "/boot/efi", "vfat"),
            t("/dev/sdc", "/hostile", "ext4"),
        ]
    );
}

#[test]
fn decodes_octal_escapes_only_when_valid() {
    assert_eq!(unescape(r"a\040b\011c\134d"), "a b\tc\\d");
    assert_eq!(unescape(r"a\04"), r"a\04");
    assert_eq!(unescape(r"a\999"), r"a\999");
}

#[test]
fn statvfs_of_a_real_directory() {
    let d = tempfile::tempdir().unwrap();
    let s = statvfs(d.path()).unwrap();
    assert!(s.size_bytes > 0 && s.avail_bytes <= s.free_bytes && s.free_bytes <= s.size_bytes);
    assert!(statvfs(&d.path().join("missing")).is_err());
}

#[test]
fn worker_answers_from_a_fixture_mount_table() {
    let proc = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(proc.path().join("1")).unwrap();
    std::fs::create_dir_all(root.path().join("data")).unwrap();
    std::fs::write(
        proc.path().join("1/mounts"),
        "/dev/sda1 / ext4 rw 0 0\n/dev/sdb /data xfs rw 0 0\n/dev/sdc /gone xfs rw 0 0\n",
    )
    .unwrap();
    let mut w = FsWorker::start(proc.path(), root.path(), Duration::from_secs(5)).unwrap();
    for _ in 0..2 {
        let got = w.sample().unwrap();
        let by: Vec<(&str, bool)> = got
            .iter()
            .map(|(m, s)| (m.mountpoint.as_str(), s.is_some()))
            .collect();
        assert_eq!(by, vec![("/", true), ("/data", true), ("/gone", false)]);
    }
}

/// One hung mount costs its own series only: the pass that meets it waits `timeout` once and reports
/// it with an error, later passes skip it without waiting and sample the others, and once the hung
/// call returns the mount is sampled again.
#[test]
fn a_hung_mount_is_skipped_alone_until_its_call_returns() {
    let proc = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(proc.path().join("1")).unwrap();
    std::fs::write(
        proc.path().join("1/mounts"),
        "/dev/sda1 / ext4 rw 0 0\nserver:/x /nfs nfs4 rw 0 0\n/dev/sdb /data xfs rw 0 0\n",
    )
    .unwrap();
    let (release, hang) = std::sync::mpsc::channel::<()>();
    let hang = std::sync::Mutex::new(hang);
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = calls.clone();
    let stat: StatFn = Arc::new(move |p: &Path| {
        if p == Path::new("/nfs") {
            counted.fetch_add(1, Ordering::SeqCst);
            let _ = hang.lock().unwrap().recv(); // blocks until released, like a dead server
        }
        Ok(FsStats {
            size_bytes: 100,
            free_bytes: 50,
            avail_bytes: 40,
            files: 10,
            files_free: 5,
            readonly: false,
        })
    });
    let timeout = Duration::from_millis(300);
    let mut w = FsWorker::start_with(proc.path(), Path::new("/"), timeout, stat).unwrap();
    let sampled = |got: &[FsSample]| -> Vec<(String, bool)> {
        got.iter()
            .map(|(m, s)| (m.mountpoint.clone(), s.is_some()))
            .collect()
    };
    let t = Instant::now();
    let first = w.sample().unwrap();
    assert!(t.elapsed() >= timeout, "the pass waited for the call");
    // The pass that finds it stuck has no answer for the mounts after it.
    assert_eq!(
        sampled(&first),
        [("/".to_string(), true), ("/nfs".to_string(), false)]
    );
    assert_eq!(w.stuck().collect::<Vec<_>>(), ["/nfs"]);
    for _ in 0..3 {
        let t = Instant::now();
        let got = w.sample().unwrap();
        assert!(
            t.elapsed() < timeout,
            "a stuck mount is not waited for again"
        );
        assert_eq!(
            sampled(&got),
            [
                ("/".to_string(), true),
                ("/nfs".to_string(), false),
                ("/data".to_string(), true)
            ]
        );
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "statvfs is not called on it again"
    );
    drop(release); // the server is back: this and every later call returns
    let recovered = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(20));
        w.sample().unwrap().iter().all(|(_, s)| s.is_some())
    });
    assert!(recovered, "sampled again once its call returned");
    assert_eq!(w.stuck().count(), 0);
}

#[test]
fn too_many_hung_mounts_stop_the_sampling_instead_of_piling_up_threads() {
    let proc = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(proc.path().join("1")).unwrap();
    let table: String = (0..MAX_STUCK + 2)
        .map(|i| format!("server:/{i} /nfs{i} nfs4 rw 0 0\n"))
        .collect();
    std::fs::write(proc.path().join("1/mounts"), table).unwrap();
    let (_release, hang) = std::sync::mpsc::channel::<()>();
    let hang = std::sync::Mutex::new(hang);
    let stat: StatFn = Arc::new(move |_: &Path| {
        let _ = hang.lock().unwrap().recv();
        Err(io::Error::other("released"))
    });
    let mut w =
        FsWorker::start_with(proc.path(), Path::new("/"), Duration::from_millis(20), stat).unwrap();
    for _ in 0..MAX_STUCK {
        w.sample().unwrap();
    }
    assert_eq!(w.stuck().count(), MAX_STUCK);
    assert!(w.sample().is_err());
}

#[test]
fn a_missing_mount_table_is_an_error_not_a_hang() {
    let proc = tempfile::tempdir().unwrap();
    let mut w = FsWorker::start(proc.path(), Path::new("/"), Duration::from_secs(5)).unwrap();
    assert!(w.sample().is_err());
}

proptest! {
    #[test]
    fn garbage_mount_tables_never_panic(text in "\\PC*", root in "(/|/[a-z\\\\0-9]{0,6}/?)") {
        let _ = parse_mounts(&text, Path::new(&root), &Exclusions::default());
        let _ = unescape(&text);
    }
}
