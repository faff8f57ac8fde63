use std::net::SocketAddr;

use super::*;
use crate::sources::spans::servicegraph::{ConnectionType, Side};
use crate::sources::spans::SpansConfig;

fn addr(i: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, i], 9180))
}

fn trace(i: u32) -> TraceId {
    let mut t = [0u8; 16];
    t[..4].copy_from_slice(&i.to_be_bytes());
    t[15] = 1;
    t
}

fn half(t: u32, side: Side, service: &str) -> EdgeHalf {
    EdgeHalf {
        trace_id: trace(t),
        span_id: Some([7; 8]),
        side,
        service: service.into(),
        messaging: false,
        seconds: 0.01,
        failed: false,
        peer: None,
        database: None,
    }
}

#[test]
fn peers_parse_as_dns_names_or_address_lists() {
    assert_eq!(
        "dns:tasks.plimsoll:9180".parse::<Peers>(),
        Ok(Peers::Dns {
            name: "tasks.plimsoll".into(),
            port: 9180
        })
    );
    assert_eq!(
        "10.0.0.1:9180, 10.0.0.2:9180".parse::<Peers>(),
        Ok(Peers::Static(vec![addr(1), addr(2)]))
    );
    for bad in ["dns:tasks.x", "dns::9180", "dns:x:0", "node1:9180", ""] {
        assert!(bad.parse::<Peers>().is_err(), "{bad}");
    }
    let p: Peers = "dns:tasks.x:1".parse().unwrap();
    assert_eq!(p.to_string(), "dns:tasks.x:1");
}

#[test]
fn every_collector_picks_the_same_owner_in_any_order() {
    let a = [addr(1), addr(2), addr(3)];
    let b = [addr(3), addr(1), addr(2)];
    for t in 0..1000 {
        assert_eq!(owner(&trace(t), &a), owner(&trace(t), &b));
    }
    assert_eq!(owner(&trace(1), &[]), None);
    assert_eq!(owner(&trace(1), &[addr(9)]), Some(addr(9)));
}

#[test]
fn traces_spread_evenly_and_only_a_leaving_collectors_traces_move() {
    let all: Vec<SocketAddr> = (1..=4).map(addr).collect();
    let mut per = [0u32; 4];
    let n = 20_000;
    for t in 0..n {
        let o = owner(&trace(t), &all).unwrap();
        per[all.iter().position(|a| *a == o).unwrap()] += 1;
    }
    for c in per {
        assert!((4000..6000).contains(&c), "{per:?}");
    }
    let without: Vec<SocketAddr> = all.iter().copied().filter(|a| *a != addr(2)).collect();
    for t in 0..n {
        let before = owner(&trace(t), &all).unwrap();
        let after = owner(&trace(t), &without).unwrap();
        if before != addr(2) {
            assert_eq!(before, after, "trace {t} moved although its owner stayed");
        }
    }
}

#[test]
fn halves_stay_when_owned_here_and_queue_for_their_owner_otherwise() {
    let live = [addr(1), addr(2)];
    let mut out = Outbox::new(100);
    let halves: Vec<EdgeHalf> = (0..100).map(|t| half(t, Side::Client, "a")).collect();
    let kept = route(halves.clone(), Some(addr(1)), &live, &mut out);
    assert!(kept
        .iter()
        .all(|h| owner(&h.trace_id, &live) == Some(addr(1))));
    assert_eq!(kept.len() + out.len(), 100);
    assert!(!kept.is_empty() && !out.is_empty());
    let batches = out.batches(1000);
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].0, addr(2));
    assert!(out.is_empty());
    // Alone, or not knowing itself yet, a collector owns everything.
    assert_eq!(
        route(halves.clone(), Some(addr(1)), &[addr(1)], &mut out).len(),
        100
    );
    assert_eq!(route(halves, None, &live, &mut out).len(), 100);
}

#[test]
fn a_full_queue_drops_its_oldest_halves_and_counts_them() {
    let mut out = Outbox::new(3);
    for t in 0..5 {
        out.push(addr(2), half(t, Side::Client, "a"));
    }
    out.push(addr(3), half(9, Side::Client, "a"));
    assert_eq!(out.take_counts().dropped_queue_full, 2);
    let mut b = out.batches(2);
    b.sort_by_key(|(a, _)| *a);
    assert_eq!(
        b[0].1.iter().map(|h| h.trace_id).collect::<Vec<_>>(),
        vec![trace(2), trace(3)]
    );
    assert_eq!(out.len(), 1, "the rest waits for the next batch");
}

#[test]
fn halves_from_a_peer_pair_with_local_ones_and_expire_like_them() {
    let cfg = SpansConfig::default();
    let mut g = cfg.servicegraph();
    // The client span was received here; its server span's half comes from a peer, through JSON.
    g.add(half(1, Side::Client, "front"), 0);
    let wire = serde_json::to_string(&vec![
        half(1, Side::Server, "back"),
        half(2, Side::Client, "front"),
    ])
    .unwrap();
    for h in serde_json::from_str::<Vec<EdgeHalf>>(&wire).unwrap() {
        g.add(h, 100);
    }
    g.expire(5000);
    let mut rows: Vec<_> = g
        .totals()
        .map(|(c, s, t, r, _)| (c.to_string(), s.to_string(), t, r))
        .collect();
    rows.sort_by(|a, b| a.partial_cmp(b).unwrap());
    assert_eq!(
        rows,
        vec![
            ("front".into(), "back".into(), ConnectionType::Plain, 1.0),
            (
                "front".into(),
                "unknown".into(),
                ConnectionType::VirtualNode,
                1.0
            ),
        ]
    );
}
