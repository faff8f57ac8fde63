use proptest::prelude::*;

use super::*;

fn triples(f: impl FnOnce(&mut dyn FnMut(&str, &str, i64))) -> Vec<(String, String, i64)> {
    let mut out = Vec::new();
    f(&mut |p, k, v| out.push((p.to_string(), k.to_string(), v)));
    out
}

#[test]
fn parses_vmstat() {
    let got: Vec<_> = vmstat(b"nr_free_pages 100\npgfault 7\nbroken\n").collect();
    assert_eq!(got, vec![("nr_free_pages", 100), ("pgfault", 7)]);
}

#[test]
fn parses_protocol_pairs_with_negative_values() {
    let text =
        b"Tcp: RtoMin MaxConn ActiveOpens\nTcp: 200 -1 12\nUdp: InDatagrams\nUdp: 5\nOdd: A\n";
    let got = triples(|f| proto_pairs(text, f));
    assert_eq!(
        got,
        vec![
            ("Tcp".into(), "RtoMin".into(), 200),
            ("Tcp".into(), "MaxConn".into(), -1),
            ("Tcp".into(), "ActiveOpens".into(), 12),
            ("Udp".into(), "InDatagrams".into(), 5),
        ]
    );
}

#[test]
fn parses_snmp6_and_sockstat() {
    let got = triples(|f| snmp6(b"Ip6InOctets   \t10\nUdpLite6InErrors 2\nnosix 1\n", f));
    assert_eq!(
        got,
        vec![
            ("Ip6".into(), "InOctets".into(), 10),
            ("UdpLite6".into(), "InErrors".into(), 2),
        ]
    );
    let mut s = Vec::new();
    sockstat(
        b"sockets: used 38\nTCP: inuse 1 orphan 0 tw 20 alloc 4 mem 3\nFRAG: inuse 0 memory 0\n",
        |p, k, v| s.push(format!("{p}_{k}={v}")),
    );
    assert_eq!(
        s,
        [
            "sockets_used=38",
            "TCP_inuse=1",
            "TCP_orphan=0",
            "TCP_tw=20",
            "TCP_alloc=4",
            "TCP_mem=3",
            "FRAG_inuse=0",
            "FRAG_memory=0"
        ]
    );
}

#[test]
fn default_filters_are_node_exporters() {
    let vm = Regex::new(VMSTAT_FIELDS).unwrap();
    for keep in [
        "pgpgin",
        "pgpgout",
        "pswpin",
        "pswpout",
        "pgfault",
        "pgmajfault",
        "oom_kill",
    ] {
        assert!(vm.is_match(keep), "{keep}");
    }
    assert!(!vm.is_match("nr_free_pages"));
    let ns = Regex::new(NETSTAT_FIELDS).unwrap();
    for keep in [
        "Tcp_CurrEstab",
        "TcpExt_ListenDrops",
        "TcpExt_TCPSynRetrans",
        "IpExt_InOctets",
        "Ip6_OutOctets",
        "Udp_InErrors",
        "Icmp_InMsgs",
        "Ip_Forwarding",
    ] {
        assert!(ns.is_match(keep), "{keep}");
    }
    assert!(!ns.is_match("Tcp_RtoMin") && !ns.is_match("TcpExt_TW"));
}

proptest! {
    #[test]
    fn garbage_never_panics(s in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = vmstat(&s).count();
        proto_pairs(&s, |_, _, _| {});
        snmp6(&s, |_, _, _| {});
        sockstat(&s, |_, _, _| {});
    }
}
