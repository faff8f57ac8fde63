use std::time::Duration;

use proptest::prelude::*;

use crate::http::exposition::render;
use crate::sources::spans::tests::{rs, s, CLIENT, SERVER};
use crate::sources::spans::{Dimension, Spans, SpansConfig};
use crate::store::Ingest;

const T0: i64 = 1_700_000_000_000;

fn spans(cfg: SpansConfig) -> (Spans, Ingest) {
    let ingest = Ingest::new(Duration::from_secs(600));
    let sp = Spans::new(&cfg, &ingest, Duration::from_secs(1)).unwrap();
    (sp, ingest)
}

fn exposition(ingest: &Ingest) -> String {
    let mut out = String::new();
    render(&ingest.read(), &mut out);
    out
}

fn has(text: &str, line: &str) {
    assert!(
        text.lines().any(|l| l == line),
        "missing line\n  {line}\nin\n{text}"
    );
}

const SHOP_GET: &str = r#"service_name="shop",span_name="GET /a",span_kind="SPAN_KIND_SERVER""#;

#[test]
fn calls_and_duration_buckets_carry_the_connector_names_and_labels() {
    let (sp, ingest) = spans(SpansConfig::default());
    let v = sp.consume(
        &[rs(
            "shop",
            &[
                s(1, 1, 0, SERVER, 1).name("GET /a"),
                s(1, 2, 0, SERVER, 30).name("GET /a"),
                s(1, 3, 0, SERVER, 30).name("GET /a").error(),
                s(1, 4, 2, CLIENT, 3000).name("SELECT"),
            ],
        )],
        T0,
    );
    assert_eq!(v.accepted, 4);
    sp.flush(T0);
    let text = exposition(&ingest);
    has(&text, "# TYPE traces_span_metrics_calls_total counter");
    has(
        &text,
        "# TYPE traces_span_metrics_duration_milliseconds histogram",
    );
    has(
        &text,
        &format!(
            r#"traces_span_metrics_calls_total{{{SHOP_GET},status_code="STATUS_CODE_UNSET"}} 2"#
        ),
    );
    has(
        &text,
        &format!(
            r#"traces_span_metrics_calls_total{{{SHOP_GET},status_code="STATUS_CODE_ERROR"}} 1"#
        ),
    );
    let unset = format!(r#"{SHOP_GET},status_code="STATUS_CODE_UNSET""#);
    // 1 ms and 30 ms: le=2 holds one, le=50 both; the default buckets end at 15000.
    for (le, n) in [("2", 1), ("10", 1), ("50", 2), ("15000", 2), ("+Inf", 2)] {
        has(
            &text,
            &format!(
                r#"traces_span_metrics_duration_milliseconds_bucket{{{unset},le="{le}"}} {n}"#
            ),
        );
    }
    has(
        &text,
        &format!(r#"traces_span_metrics_duration_milliseconds_sum{{{unset}}} 31"#),
    );
    has(
        &text,
        r#"traces_span_metrics_calls_total{service_name="shop",span_name="SELECT",span_kind="SPAN_KIND_CLIENT",status_code="STATUS_CODE_UNSET"} 1"#,
    );
    // Cumulative: a second request adds to the same series.
    sp.consume(
        &[rs("shop", &[s(2, 1, 0, SERVER, 5).name("GET /a")])],
        T0 + 1000,
    );
    sp.flush(T0 + 1000);
    has(
        &exposition(&ingest),
        &format!(r#"traces_span_metrics_calls_total{{{unset}}} 3"#),
    );
}

#[test]
fn dimensions_come_from_the_span_then_the_resource_then_the_default() {
    let cfg = SpansConfig {
        dimensions: vec![
            Dimension {
                name: "http.method".into(),
                default: None,
            },
            Dimension {
                name: "deployment.environment".into(),
                default: None,
            },
            Dimension {
                name: "http.route".into(),
                default: Some("none".into()),
            },
        ],
        ..Default::default()
    };
    let (sp, ingest) = spans(cfg);
    sp.consume(
        &[rs(
            "shop",
            &[
                s(1, 1, 0, SERVER, 1)
                    .attr("http.method", "GET")
                    .attr("deployment.environment", "canary"),
                s(1, 2, 0, SERVER, 1),
            ],
        )],
        T0,
    );
    sp.flush(T0);
    let text = exposition(&ingest);
    let base = r#"service_name="shop",span_name="op",span_kind="SPAN_KIND_SERVER",status_code="STATUS_CODE_UNSET""#;
    has(
        &text,
        &format!(
            r#"traces_span_metrics_calls_total{{{base},http_method="GET",deployment_environment="canary",http_route="none"}} 1"#
        ),
    );
    has(
        &text,
        &format!(
            r#"traces_span_metrics_calls_total{{{base},deployment_environment="prod",http_route="none"}} 1"#
        ),
    );
}

#[test]
fn a_service_past_its_limit_counts_into_its_overflow_series_and_spares_the_others() {
    let cfg = SpansConfig {
        max_series_per_service: 2,
        max_series: 4,
        ..Default::default()
    };
    let (sp, ingest) = spans(cfg);
    let flood: Vec<_> = (1..=6u8)
        .map(|i| s(1, i, 0, SERVER, 1).name(["a", "b", "c", "d", "e", "f"][i as usize - 1]))
        .collect();
    sp.consume(
        &[rs("noisy", &flood), rs("calm", &[s(2, 1, 0, SERVER, 1)])],
        T0,
    );
    // The existing series keep counting.
    sp.consume(&[rs("noisy", &[s(3, 1, 0, SERVER, 1).name("a")])], T0);
    sp.flush(T0);
    let text = exposition(&ingest);
    has(
        &text,
        r#"traces_span_metrics_calls_total{service_name="noisy",otel_metric_overflow="true"} 4"#,
    );
    has(
        &text,
        r#"traces_span_metrics_calls_total{service_name="noisy",span_name="a",span_kind="SPAN_KIND_SERVER",status_code="STATUS_CODE_UNSET"} 2"#,
    );
    has(
        &text,
        r#"traces_span_metrics_calls_total{service_name="calm",span_name="op",span_kind="SPAN_KIND_SERVER",status_code="STATUS_CODE_UNSET"} 1"#,
    );
    let calls = text
        .lines()
        .filter(|l| l.starts_with("traces_span_metrics_calls_total{"))
        .count();
    assert_eq!(calls, 4, "{text}");
    // All services together: past max_series a new series of any service goes to the global one.
    sp.consume(&[rs("third", &[s(4, 1, 0, SERVER, 1)])], T0 + 1000);
    sp.flush(T0 + 1000);
    has(
        &exposition(&ingest),
        r#"traces_span_metrics_calls_total{otel_metric_overflow="true"} 1"#,
    );
}

#[test]
fn ids_in_span_names_are_folded_only_when_configured() {
    for (normalize, want) in [(true, 1), (false, 3)] {
        let (sp, ingest) = spans(SpansConfig {
            normalize_span_names: normalize,
            ..Default::default()
        });
        sp.consume(
            &[rs(
                "shop",
                &[
                    s(1, 1, 0, SERVER, 1).name("GET /user/1"),
                    s(1, 2, 0, SERVER, 1).name("GET /user/2"),
                    s(1, 3, 0, SERVER, 1).name("GET /user/3"),
                ],
            )],
            T0,
        );
        sp.flush(T0);
        let text = exposition(&ingest);
        let n = text
            .lines()
            .filter(|l| l.starts_with("traces_span_metrics_calls_total{"))
            .count();
        assert_eq!(n, want, "{text}");
        if normalize {
            has(
                &text,
                r#"traces_span_metrics_calls_total{service_name="shop",span_name="GET /user/{id}",span_kind="SPAN_KIND_SERVER",status_code="STATUS_CODE_UNSET"} 3"#,
            );
        }
    }
}

#[test]
fn idle_series_expire_and_free_their_place_under_the_limit() {
    let cfg = SpansConfig {
        max_series_per_service: 1,
        series_ttl: Duration::from_secs(60),
        ..Default::default()
    };
    let mut m = cfg.spanmetrics();
    let req = [rs("svc", &[s(1, 1, 0, SERVER, 1).name("old")])];
    crate::sources::spans::visit(&req, |sp| m.observe(sp, T0));
    assert_eq!(m.len(), 1);
    m.expire(T0 + 59_000);
    assert_eq!(m.len(), 1);
    m.expire(T0 + 61_000);
    assert_eq!(m.len(), 0);
    let c = m.take_counts();
    assert_eq!((c.series_created, c.series_expired), (1, 1));
    let req = [rs("svc", &[s(1, 2, 0, SERVER, 1).name("new")])];
    crate::sources::spans::visit(&req, |sp| m.observe(sp, T0 + 62_000));
    assert_eq!(
        m.take_counts().overflowed,
        0,
        "the expired series freed its place"
    );
}

fn arb_span() -> impl Strategy<Value = opentelemetry_proto::tonic::trace::v1::Span> {
    (
        proptest::collection::vec(any::<u8>(), 0..20),
        proptest::collection::vec(any::<u8>(), 0..10),
        proptest::collection::vec(any::<u8>(), 0..10),
        ".{0,12}",
        any::<i32>(),
        any::<i32>(),
        any::<u64>(),
        any::<u64>(),
        proptest::collection::vec((".{0,6}", ".{0,6}"), 0..4),
    )
        .prop_map(|(t, i, p, name, kind, code, a, b, attrs)| {
            opentelemetry_proto::tonic::trace::v1::Span {
                trace_id: t,
                span_id: i,
                parent_span_id: p,
                name,
                kind,
                start_time_unix_nano: a,
                end_time_unix_nano: b,
                attributes: attrs
                    .iter()
                    .map(|(k, v)| crate::sources::spans::tests::kv(k, v))
                    .collect(),
                status: Some(opentelemetry_proto::tonic::trace::v1::Status {
                    code,
                    ..Default::default()
                }),
                ..Default::default()
            }
        })
}

proptest! {
    #[test]
    fn arbitrary_spans_never_panic_and_every_accepted_span_is_counted(
        services in proptest::collection::vec((proptest::option::of(".{0,8}"), proptest::collection::vec(arb_span(), 0..8)), 0..5),
        normalize in any::<bool>(),
    ) {
        let cfg = SpansConfig {
            normalize_span_names: normalize,
            max_series_per_service: 3,
            max_series: 5,
            dimensions: vec![Dimension { name: "a".into(), default: None }],
            ..Default::default()
        };
        let (sp, ingest) = spans(cfg);
        let req: Vec<_> = services
            .into_iter()
            .map(|(svc, spans)| {
                let mut r = rs(svc.as_deref().unwrap_or(""), &[]);
                if svc.is_none() {
                    r.resource = None;
                }
                r.scope_spans[0].spans = spans;
                r
            })
            .collect();
        let v = sp.consume(&req, T0);
        sp.flush(T0);
        let text = exposition(&ingest);
        let total: f64 = text
            .lines()
            .filter(|l| l.starts_with("traces_span_metrics_calls_total{"))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum();
        prop_assert_eq!(total as u64, v.accepted);
    }
}

#[test]
fn a_flood_of_unique_span_names_and_trace_ids_stays_bounded_and_the_rest_is_counted() {
    let cfg = SpansConfig {
        max_series_per_service: 100,
        max_series: 1000,
        graph_max_items: 500,
        ..Default::default()
    };
    let (sp, ingest) = spans(cfg);
    let names: Vec<String> = (0..20_000).map(|i| format!("GET /item/x{i}y")).collect();
    let mut sent = 0u64;
    for (batch, chunk) in names.chunks(1000).enumerate() {
        let svc = format!("svc{}", batch % 4);
        let req: Vec<_> = chunk
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let mut r = rs(&svc, &[s(1, 1, 0, CLIENT, 1)]);
                let sp = &mut r.scope_spans[0].spans[0];
                sp.name = n.clone();
                // A unique trace id per span: every client half waits unpaired.
                sp.trace_id = [
                    (batch as u32).to_be_bytes(),
                    (i as u32).to_be_bytes(),
                    [1; 4],
                    [1; 4],
                ]
                .concat();
                r
            })
            .collect();
        sent += sp.consume(&req, T0 + batch as i64).accepted;
    }
    sp.flush(T0 + 100);
    let text = exposition(&ingest);
    let series: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("traces_span_metrics_calls_total{"))
        .collect();
    // 4 services x 100 series, plus one overflow series each.
    assert_eq!(series.len(), 4 * 100 + 4, "{}", series.len());
    let total: f64 = series
        .iter()
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert_eq!(
        total as u64, sent,
        "every span is counted, in its series or an overflow one"
    );
    has(
        &text,
        r#"traces_span_metrics_calls_total{service_name="svc0",otel_metric_overflow="true"} 4900"#,
    );
    // The pairing store held at most its limit; the rest was dropped and counted.
    let st = sp.state.lock().unwrap();
    assert!(st.graph.pending() <= 500, "{}", st.graph.pending());
}
