use super::*;

#[test]
fn sums_conntrack_stat_over_cpus() {
    let s = b"entries  searched found new invalid ignore delete delete_list insert insert_failed drop early_drop icmp_error  expect_new expect_create expect_delete search_restart\n00000010  00000000 00000001 00000000 00000002 00000003 00000000 00000000 00000004 00000005 00000006 00000007 00000000  00000000 00000000 00000000 00000008\n00000010  00000000 0000000a 00000000 00000002 00000003 00000000 00000000 00000004 00000005 00000006 00000007 00000000  00000000 00000000 00000000 00000008\n";
    assert_eq!(conntrack_stat(s), [11, 4, 6, 8, 10, 12, 14, 16]);
    assert_eq!(conntrack_stat(b""), [0; 8]);
}

#[test]
fn parses_softnet_arp_and_udp_queues() {
    let s = b"0000a2c1 00000002 0000000f 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000\n00000010 00000000 00000001 00000000\nbroken\n";
    assert_eq!(
        softnet(s).collect::<Vec<_>>(),
        [[0xa2c1, 2, 15], [16, 0, 1]]
    );
    let arp = b"IP address       HW type     Flags       HW address            Mask     Device\n172.17.0.2       0x1         0x2         02:42:ac:11:00:02     *        docker0\n10.0.0.1         0x1         0x2         52:54:00:12:34:56     *        eth0\n172.17.0.3       0x1         0x2         02:42:ac:11:00:03     *        docker0\n";
    let got = arp_entries(arp);
    assert_eq!(got.get("docker0"), Some(&2));
    assert_eq!(got.get("eth0"), Some(&1));
    let udp = b"  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n  1: 00000000:1FBD 00000000:0000 07 00000000:00000300 00:00000000 00000000     0        0 1 2 0\n  2: 0100007F:0035 00000000:0000 07 00000010:00000001 00:00000000 00000000     0        0 1 2 0\n";
    assert_eq!(udp_queues(udp), (0x10, 0x301));
}

#[test]
fn reads_os_release_as_node_exporter() {
    let (labels, version) = os_release(
        "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nVERSION_CODENAME=bookworm\nID=debian\n# comment\n",
    );
    let get = |k: &str| labels.iter().find(|(l, _)| *l == k).unwrap().1.as_str();
    assert_eq!(get("pretty_name"), "Debian GNU/Linux 12 (bookworm)");
    assert_eq!(get("id"), "debian");
    assert_eq!(get("version_codename"), "bookworm");
    assert_eq!(get("id_like"), "");
    assert_eq!(labels.len(), 12);
    assert_eq!(version, 12_000);
    assert_eq!(os_release("VERSION_ID=22.04.3\n").1, 22_040);
    assert_eq!(os_release("VERSION_ID=rolling\n").1, 0);
}

proptest::proptest! {
    #[test]
    fn garbage_never_panics(s in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
        let _ = conntrack_stat(&s);
        let _ = softnet(&s).count();
        let _ = arp_entries(&s);
        let _ = udp_queues(&s);
        let _ = os_release(&String::from_utf8_lossy(&s));
    }
}
