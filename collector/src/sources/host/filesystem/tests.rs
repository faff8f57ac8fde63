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
        let got = w.sample().unwrap().unwrap();
        let by: Vec<(&str, bool)> = got
            .iter()
            .map(|(m, s)| (m.mountpoint.as_str(), s.is_some()))
            .collect();
        assert_eq!(by, vec![("/", true), ("/data", true), ("/gone", false)]);
    }
}

#[test]
fn a_missing_mount_table_is_an_error_not_a_hang() {
    let proc = tempfile::tempdir().unwrap();
    let mut w = FsWorker::start(proc.path(), Path::new("/"), Duration::from_secs(5)).unwrap();
    assert!(w.sample().unwrap().is_err());
}

proptest! {
    #[test]
    fn garbage_mount_tables_never_panic(text in "\\PC*", root in "(/|/[a-z\\\\0-9]{0,6}/?)") {
        let _ = parse_mounts(&text, Path::new(&root), &Exclusions::default());
        let _ = unescape(&text);
    }
}
