use std::time::Duration;

use super::{build, NodeKind};
use crate::query::Query;
use crate::sources::spans::tests::{rs, s, CLIENT, SERVER};
use crate::sources::spans::{Spans, SpansConfig};
use crate::store::Ingest;

const T0: i64 = 1_700_000_000_000;

fn close(a: Option<f64>, b: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() < 1e-9)
}

#[test]
fn nodes_and_edges_carry_rates_error_ratios_and_latency() {
    let ingest = Ingest::new(Duration::from_secs(600));
    let sp = Spans::new(&SpansConfig::default(), &ingest, Duration::from_secs(1)).unwrap();
    for round in 0..3u8 {
        let t = round * 10 + 1;
        let front = vec![
            s(t, 1, 0, SERVER, 100).name("GET /"),
            s(t + 1, 1, 0, SERVER, 100).name("GET /"),
            s(t + 2, 1, 0, SERVER, 100).name("GET /"),
            s(t + 3, 1, 0, SERVER, 100).name("GET /").error(),
            s(t, 2, 1, CLIENT, 40),
            s(t + 1, 2, 1, CLIENT, 40),
        ];
        let back = vec![
            s(t, 3, 2, SERVER, 30).error(),
            s(t + 1, 3, 2, SERVER, 30),
            s(t, 4, 3, CLIENT, 5).attr("db.name", "orders"),
            s(t, 5, 3, CLIENT, 5).attr("db.system", "redis"),
        ];
        let now = T0 + i64::from(round) * 10_000;
        sp.consume(&[rs("front", &front), rs("back", &back)], now);
        sp.flush(now);
    }
    let end = T0 + 30_000;
    sp.flush(end);
    let store = ingest.read();
    let t = build(&Query::new(&store), end, 60_000);
    let node = |id: &str| {
        t.nodes
            .iter()
            .find(|n| n.id == id)
            .unwrap_or_else(|| panic!("{id}: {t:#?}"))
    };
    let edge = |c: &str, s: &str| {
        t.edges
            .iter()
            .find(|e| e.client == c && e.server == s)
            .unwrap_or_else(|| panic!("{c}->{s}: {t:#?}"))
    };
    // front: 4 root server spans a round, one failed, 100 ms each (8 more over 30 s).
    let f = node("front");
    assert_eq!(f.kind, NodeKind::Service);
    assert!(close(f.request_rate, 8.0 / 30.0), "{f:?}");
    assert!(close(f.error_ratio, 0.25), "{f:?}");
    assert!(close(f.latency_ms.p50, 75.0), "{f:?}");
    let b = node("back");
    assert!(close(b.error_ratio, 0.5), "{b:?}");
    // Paired calls: 2 a round, half failed on the server.
    let e = edge("front", "back");
    assert_eq!(e.connection_type, "");
    assert!(close(e.request_rate, 4.0 / 30.0), "{e:?}");
    assert!(close(e.error_ratio, 0.5), "{e:?}");
    assert!(close(e.server_latency_ms.p50, 30.0), "{e:?}"); // 30 ms in (10, 50]: p50 at 30 ms
                                                            // The database edge is made at once; redis (db.system alone) and user expire into virtual nodes.
    assert_eq!(edge("back", "orders").connection_type, "database");
    assert_eq!(node("orders").kind, NodeKind::Database);
    assert!(close(node("orders").request_rate, 2.0 / 30.0));
    assert_eq!(edge("back", "redis").connection_type, "virtual_node");
    assert_eq!(node("redis").kind, NodeKind::Virtual);
    let u = edge("user", "front");
    assert_eq!(u.connection_type, "virtual_node");
    assert!(close(u.request_rate, 8.0 / 20.0), "{u:?}");
    assert!(close(u.error_ratio, 0.25), "{u:?}");
    assert!(close(node("user").request_rate, 8.0 / 20.0));
    assert_eq!(t.nodes.len(), 5, "{:?}", t.nodes);
    assert_eq!(t.edges.len(), 4, "{:?}", t.edges);
    // JSON as scripts read it.
    let j = serde_json::to_value(&t).unwrap();
    assert_eq!(j["window_seconds"], 60.0);
    assert!(
        j["nodes"][0]["latency_ms"]["p95"].is_number()
            || j["nodes"][0]["latency_ms"]["p95"].is_null()
    );
}

#[test]
fn an_empty_store_has_an_empty_topology() {
    let ingest = Ingest::new(Duration::from_secs(600));
    let store = ingest.read();
    let t = build(&Query::new(&store), T0, 60_000);
    assert!(t.nodes.is_empty() && t.edges.is_empty());
}

#[test]
fn replicas_go_on_the_service_nodes_of_scaled_targets_only() {
    let ingest = Ingest::new(Duration::from_secs(600));
    let sp = Spans::new(&SpansConfig::default(), &ingest, Duration::from_secs(1)).unwrap();
    for round in 0..2u8 {
        let t = round * 10 + 1;
        let front = vec![s(t, 1, 0, SERVER, 100), s(t, 2, 1, CLIENT, 40)];
        let back = vec![
            s(t, 3, 2, SERVER, 30),
            s(t, 4, 3, CLIENT, 5).attr("db.name", "orders"),
        ];
        let now = T0 + i64::from(round) * 10_000;
        sp.consume(&[rs("front", &front), rs("back", &back)], now);
        sp.flush(now);
    }
    let store = ingest.read();
    // `orders` (a database) and `user` share names with targets here: they are no deployments.
    let counts = [("back", 3), ("orders", 2), ("user", 5), ("gone", 1)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    let t = build(&Query::new(&store), T0 + 20_000, 60_000).with_replicas(&counts);
    let replicas = |id: &str| {
        t.nodes
            .iter()
            .find(|n| n.id == id)
            .unwrap_or_else(|| panic!("{id}: {t:#?}"))
            .replicas
    };
    assert_eq!(replicas("back"), Some(3));
    assert_eq!(replicas("front"), None);
    assert_eq!(replicas("orders"), None);
    assert_eq!(replicas("user"), None);
    assert!(!t.nodes.iter().any(|n| n.id == "gone"));
    // In JSON: a number on the scaled service, no key elsewhere.
    let j = serde_json::to_value(&t).unwrap();
    for n in j["nodes"].as_array().unwrap() {
        match n["id"].as_str().unwrap() {
            "back" => assert_eq!(n["replicas"], 3, "{n}"),
            _ => assert!(n.get("replicas").is_none(), "{n}"),
        }
    }
}
