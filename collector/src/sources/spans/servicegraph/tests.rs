use std::time::Duration;

use super::{ConnectionType, ServiceGraph};
use crate::http::exposition::render;
use crate::sources::spans::tests::{rs, s, CLIENT, CONSUMER, PRODUCER, S, SERVER};
use crate::sources::spans::{visit, Spans, SpansConfig};
use crate::store::Ingest;

const T0: i64 = 1_700_000_000_000;

/// Feeds `(service, span, at ms after T0)` in order, then expires at `end` ms after T0.
fn run(cfg: &SpansConfig, steps: &[(&str, S, i64)], end: i64) -> ServiceGraph {
    let mut g = cfg.servicegraph();
    for (svc, sp, at) in steps {
        let req = [rs(svc, std::slice::from_ref(sp))];
        visit(&req, |v| {
            if let Some(h) = g.half(v) {
                g.add(h, T0 + at);
            }
        });
    }
    g.expire(T0 + end);
    g
}

type Row = (&'static str, &'static str, &'static str, f64, f64);
/// (case, steps, expire at, edges, [paired, database, expired, virtual edges])
type Case = (
    &'static str,
    Vec<(&'static str, S, i64)>,
    i64,
    Vec<Row>,
    [u64; 4],
);

fn rows(g: &ServiceGraph) -> Vec<Row> {
    let mut v: Vec<Row> = g
        .totals()
        .map(|(c, s, t, r, f)| {
            (
                &*String::from(c).leak(),
                &*String::from(s).leak(),
                t.as_str(),
                r,
                f,
            )
        })
        .collect();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v
}

#[test]
fn edges_pair_expire_and_name_virtual_nodes_as_the_connector_does() {
    let cfg = SpansConfig::default();
    let cases: Vec<Case> = vec![
        (
            "client then server pair",
            vec![
                ("front", s(1, 10, 0, CLIENT, 20), 0),
                ("back", s(1, 11, 10, SERVER, 15), 5),
            ],
            0,
            vec![("front", "back", "", 1.0, 0.0)],
            [1, 0, 0, 0],
        ),
        (
            "server first, failed on either side",
            vec![
                ("back", s(1, 11, 10, SERVER, 15).error(), 0),
                ("front", s(1, 10, 0, CLIENT, 20), 100),
                ("front", s(2, 10, 0, CLIENT, 20).error(), 100),
                ("back", s(2, 11, 10, SERVER, 15), 100),
            ],
            0,
            vec![("front", "back", "", 2.0, 2.0)],
            [2, 0, 0, 0],
        ),
        (
            "producer and consumer",
            vec![
                ("orders", s(1, 10, 0, PRODUCER, 1), 0),
                ("mailer", s(1, 11, 10, CONSUMER, 9), 0),
            ],
            0,
            vec![("orders", "mailer", "messaging_system", 1.0, 0.0)],
            [1, 0, 0, 0],
        ),
        (
            "a root server span expires into user",
            vec![("front", s(1, 10, 0, SERVER, 20), 0)],
            2000,
            vec![("user", "front", "virtual_node", 1.0, 0.0)],
            [0, 0, 1, 1],
        ),
        (
            "nothing expires before the wait",
            vec![("front", s(1, 10, 0, SERVER, 20), 0)],
            1999,
            vec![],
            [0, 0, 0, 0],
        ),
        (
            "a client without server: peer.service first",
            vec![(
                "front",
                s(1, 10, 0, CLIENT, 20)
                    .attr("server.address", "pay.example")
                    .attr("peer.service", "payments"),
                0,
            )],
            5000,
            vec![("front", "payments", "virtual_node", 1.0, 0.0)],
            [0, 0, 1, 1],
        ),
        (
            "server.address and net.peer.name, beyond the connector",
            vec![
                (
                    "front",
                    s(1, 10, 0, CLIENT, 20).attr("server.address", "pay.example"),
                    0,
                ),
                (
                    "front",
                    s(2, 10, 0, CLIENT, 20).attr("net.peer.name", "old.example"),
                    0,
                ),
            ],
            5000,
            vec![
                ("front", "old.example", "virtual_node", 1.0, 0.0),
                ("front", "pay.example", "virtual_node", 1.0, 0.0),
            ],
            [0, 0, 2, 2],
        ),
        (
            "no peer attribute: unknown",
            vec![("front", s(1, 10, 0, CLIENT, 20).error(), 0)],
            5000,
            vec![("front", "unknown", "virtual_node", 1.0, 1.0)],
            [0, 0, 1, 1],
        ),
        (
            "db.name: a database edge at once",
            vec![(
                "back",
                s(1, 10, 0, CLIENT, 3)
                    .attr("db.name", "orders")
                    .attr("db.system", "postgresql"),
                0,
            )],
            0,
            vec![("back", "orders", "database", 1.0, 0.0)],
            [0, 1, 0, 0],
        ),
        (
            "db.system alone: an uninstrumented database becomes a virtual node",
            vec![("back", s(1, 10, 0, CLIENT, 3).attr("db.system", "redis"), 0)],
            2000,
            vec![("back", "redis", "virtual_node", 1.0, 0.0)],
            [0, 0, 1, 1],
        ),
        (
            "a server span whose client never came only expires",
            vec![("back", s(1, 11, 10, SERVER, 15), 0)],
            2000,
            vec![],
            [0, 0, 1, 0],
        ),
        (
            "internal spans are no side of a call",
            vec![("back", s(1, 11, 10, 1, 15), 0)],
            2000,
            vec![],
            [0, 0, 0, 0],
        ),
    ];
    for (name, steps, end, want, counts) in cases {
        let mut g = run(&cfg, &steps, end);
        assert_eq!(rows(&g), want, "{name}");
        let c = g.take_counts();
        assert_eq!(
            [c.paired, c.database, c.expired, c.virtual_edges],
            counts,
            "{name}: {c:?}"
        );
    }
}

#[test]
fn a_full_store_evicts_expired_halves_then_drops_and_counts() {
    let cfg = SpansConfig {
        graph_max_items: 2,
        ..Default::default()
    };
    let steps = [
        ("a", s(1, 1, 0, CLIENT, 1), 0),
        ("a", s(2, 1, 0, CLIENT, 1), 0),
        ("a", s(3, 1, 0, CLIENT, 1), 10), // full, nothing expired: dropped
        ("a", s(4, 1, 0, CLIENT, 1), 2500), // the first two expire to make room
    ];
    let mut g = run(&cfg, &steps, 2500);
    let c = g.take_counts();
    assert_eq!((c.dropped_store_full, c.expired), (1, 2), "{c:?}");
    assert_eq!(g.pending(), 1);
    // A half whose other half comes pairs even when the store is full.
    let steps = [
        ("a", s(1, 1, 0, CLIENT, 1), 0),
        ("a", s(2, 1, 0, CLIENT, 1), 0),
        ("b", s(2, 2, 1, SERVER, 1), 10),
    ];
    let mut g = run(&cfg, &steps, 10);
    let c = g.take_counts();
    assert_eq!((c.dropped_store_full, c.paired), (0, 1), "{c:?}");
}

#[test]
fn edge_series_stop_at_their_limit_and_count_the_rest() {
    let cfg = SpansConfig {
        graph_max_series: 1,
        ..Default::default()
    };
    let steps = [
        ("a", s(1, 1, 0, CLIENT, 1).attr("db.name", "x"), 0),
        ("a", s(2, 1, 0, CLIENT, 1).attr("db.name", "y"), 0),
        ("a", s(3, 1, 0, CLIENT, 1).attr("db.name", "x"), 0),
    ];
    let mut g = run(&cfg, &steps, 0);
    assert_eq!(rows(&g), vec![("a", "x", "database", 2.0, 0.0)]);
    assert_eq!(g.take_counts().dropped_series_limit, 1);
    assert_eq!(ConnectionType::Plain.as_str(), "");
}

#[test]
fn the_stale_queue_stays_bounded_under_many_paired_calls() {
    let cfg = SpansConfig {
        graph_max_items: 10,
        ..Default::default()
    };
    let mut g = cfg.servicegraph();
    for i in 0..10_000u32 {
        let t = (i % 250) as u8 + 1;
        let id = (i / 250) as u8 + 1;
        let req = [
            rs("a", &[s(t, id, 0, CLIENT, 1)]),
            rs("b", &[s(t, id.wrapping_add(100), id, SERVER, 1)]),
        ];
        visit(&req, |v| {
            if let Some(h) = g.half(v) {
                g.add(h, T0);
            }
        });
    }
    assert_eq!(g.pending(), 0);
    let (queued, slots) = g.pending.sizes();
    assert!(queued <= 4 * 10 + 64, "{queued}");
    assert!(slots <= 10, "{slots}");
}

#[test]
fn the_graph_series_reach_the_store_with_the_connector_names() {
    let ingest = Ingest::new(Duration::from_secs(600));
    let sp = Spans::new(&SpansConfig::default(), &ingest, Duration::from_secs(1)).unwrap();
    sp.consume(
        &[
            rs("front", &[s(1, 10, 0, CLIENT, 20), s(1, 9, 0, SERVER, 30)]),
            rs("back", &[s(1, 11, 10, SERVER, 15).error()]),
        ],
        T0,
    );
    sp.flush(T0 + 3000);
    let mut text = String::new();
    render(&ingest.read(), &mut text);
    for line in [
        r#"traces_service_graph_request_total{client="front",server="back",connection_type=""} 1"#,
        r#"traces_service_graph_request_failed_total{client="front",server="back",connection_type=""} 1"#,
        r#"traces_service_graph_request_total{client="user",server="front",connection_type="virtual_node"} 1"#,
        r#"traces_service_graph_request_failed_total{client="user",server="front",connection_type="virtual_node"} 0"#,
        r#"traces_service_graph_request_server_seconds_bucket{client="front",server="back",connection_type="",le="0.01"} 0"#,
        r#"traces_service_graph_request_server_seconds_bucket{client="front",server="back",connection_type="",le="0.05"} 1"#,
        r#"traces_service_graph_request_client_seconds_sum{client="front",server="back",connection_type=""} 0.02"#,
        "# TYPE traces_service_graph_request_server_seconds histogram",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing\n  {line}\nin\n{text}"
        );
    }
}
