use std::net::SocketAddr;
use std::time::Duration;

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
    let batches = out.batches(1000, |_| false);
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
    let mut b = out.batches(2, |_| false);
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

#[test]
fn a_busy_peer_gets_no_second_batch_and_a_taken_queue_is_routed_again() {
    let mut out = Outbox::new(10);
    out.push(addr(2), half(1, Side::Client, "a"));
    out.push(addr(3), half(2, Side::Client, "a"));
    let b = out.batches(10, |p| *p == addr(2));
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].0, addr(3));
    assert_eq!(out.peers(), vec![addr(2)]);
    assert_eq!(out.take(addr(2)).len(), 1);
    assert!(out.take(addr(2)).is_empty());
    assert!(out.is_empty());
}

#[test]
fn a_failed_peer_is_down_until_a_retry_after_its_backoff_goes_through() {
    let live = [addr(1), addr(2), addr(3)];
    let mut h = PeerHealth::default();
    assert_eq!(h.up(&live, Some(addr(1))), live.to_vec());
    assert!(h.due(0).is_empty());
    // jitter 0.5 is the middle of the ±20%: exactly 2 s after one failure.
    assert_eq!(
        h.failed(addr(2), 1_000, 0.5),
        Some(PeerChange::Down {
            retry_in: Duration::from_secs(2)
        })
    );
    assert!(!h.is_up(&addr(2)));
    assert_eq!(h.up(&live, Some(addr(1))), vec![addr(1), addr(3)]);
    assert!(h.due(2_999).is_empty());
    assert_eq!(h.due(3_000), vec![addr(2)]);
    // A failed retry is no new change: it waits 4 s, and stays down meanwhile.
    assert_eq!(h.failed(addr(2), 3_000, 0.5), None);
    assert!(h.due(6_999).is_empty());
    assert_eq!(h.due(7_000), vec![addr(2)]);
    assert!(!h.is_up(&addr(2)));
    // Up to the cap however long it keeps failing, with its jitter.
    for _ in 0..40 {
        h.failed(addr(2), 10_000, 0.0);
    }
    assert!(h.due(10_000 + 47_999).is_empty());
    assert_eq!(h.due(10_000 + 48_000), vec![addr(2)]);
    assert_eq!(h.succeeded(addr(2)), Some(PeerChange::Up));
    assert_eq!(h.succeeded(addr(2)), None, "logged once");
    assert!(h.is_up(&addr(2)));
    // This collector always owns traces, even when it appears failed (it never sends to itself).
    h.failed(addr(1), 0, 0.5);
    assert!(h.up(&live, Some(addr(1))).contains(&addr(1)));
    h.retain(&[addr(3)]);
    assert!(h.is_up(&addr(1)), "peers that left are forgotten");
}

#[test]
fn while_a_peer_is_down_only_its_traces_move_and_both_halves_meet() {
    let live = [addr(1), addr(2), addr(3)];
    let mut h = PeerHealth::default();
    h.failed(addr(3), 0, 0.5);
    let up = h.up(&live, Some(addr(1)));
    let mut moved = 0;
    for t in 0..1000 {
        let before = owner(&trace(t), &live).unwrap();
        let client = forward_to(&trace(t), Some(addr(1)), &up);
        let server = route(
            vec![half(t, Side::Server, "b")],
            Some(addr(1)),
            &up,
            &mut Outbox::new(10),
        );
        assert_eq!(
            client.is_none(),
            server.len() == 1,
            "both halves of trace {t} go one way"
        );
        assert_ne!(
            client,
            Some(addr(3)),
            "nothing goes to the peer that is down"
        );
        if before == addr(3) {
            moved += 1;
            assert!(client.is_none() || client == Some(addr(2)));
        } else {
            assert_eq!(
                client,
                Some(before).filter(|o| *o != addr(1)),
                "trace {t} moved"
            );
        }
    }
    assert!(
        moved > 250 && moved < 420,
        "a third of the traces were the dead peer's: {moved}"
    );
}
