//! Span fixtures shared by the spans tests, and tests of the span view, name normalisation and the
//! configuration.

use std::time::Duration;

use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};

use super::normalize::span_name;
use super::*;
use crate::config::{CollectorConfig, Problems};

pub(crate) fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

/// A span built field by field in tests.
#[derive(Debug, Clone)]
pub(crate) struct S {
    pub trace: u8,
    pub id: u8,
    pub parent: u8,
    pub name: &'static str,
    pub kind: i32,
    pub status: i32,
    pub ms: u64,
    pub attrs: Vec<(&'static str, &'static str)>,
}

pub(crate) fn s(trace: u8, id: u8, parent: u8, kind: i32, ms: u64) -> S {
    S {
        trace,
        id,
        parent,
        name: "op",
        kind,
        status: 0,
        ms,
        attrs: vec![],
    }
}

pub(crate) const SERVER: i32 = 2;
pub(crate) const CLIENT: i32 = 3;
pub(crate) const PRODUCER: i32 = 4;
pub(crate) const CONSUMER: i32 = 5;
pub(crate) const ERROR: i32 = 2;

impl S {
    pub fn name(mut self, n: &'static str) -> S {
        self.name = n;
        self
    }
    pub fn error(mut self) -> S {
        self.status = ERROR;
        self
    }
    pub fn attr(mut self, k: &'static str, v: &'static str) -> S {
        self.attrs.push((k, v));
        self
    }
    pub fn proto(&self) -> Span {
        let start = 1_700_000_000_000_000_000u64;
        Span {
            trace_id: vec![self.trace; 16],
            span_id: vec![self.id; 8],
            parent_span_id: if self.parent == 0 {
                vec![]
            } else {
                vec![self.parent; 8]
            },
            name: self.name.into(),
            kind: self.kind,
            start_time_unix_nano: start,
            end_time_unix_nano: start + self.ms * 1_000_000,
            attributes: self.attrs.iter().map(|(k, v)| kv(k, v)).collect(),
            status: Some(Status {
                code: self.status,
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

/// The resource spans of one service.
pub(crate) fn rs(service: &str, spans: &[S]) -> ResourceSpans {
    ResourceSpans {
        resource: Some(Resource {
            attributes: vec![
                kv("service.name", service),
                kv("deployment.environment", "prod"),
            ],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans: spans.iter().map(S::proto).collect(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

#[test]
fn the_view_reads_service_kind_status_ids_and_attributes() {
    let req = [rs(
        "shop",
        &[
            s(1, 2, 3, SERVER, 250).error().attr("http.method", "GET"),
            s(1, 4, 0, 9, 1),
        ],
    )];
    let mut seen = Vec::new();
    let v = visit(&req, |sp| {
        seen.push((
            sp.service.to_string(),
            sp.kind,
            sp.status,
            sp.trace_id,
            sp.span_id,
            sp.parent,
            sp.duration_ns(),
            sp.attr("http.method").map(|c| c.into_owned()),
            sp.attr("deployment.environment").map(|c| c.into_owned()),
            sp.span_attr("deployment.environment").is_none(),
        ))
    });
    assert_eq!(
        v,
        Visited {
            accepted: 2,
            ..Default::default()
        }
    );
    assert_eq!(
        seen[0],
        (
            "shop".to_string(),
            SpanKind::Server,
            StatusCode::Error,
            [1; 16],
            [2; 8],
            Some([3; 8]),
            250_000_000,
            Some("GET".to_string()),
            Some("prod".to_string()),
            true
        )
    );
    // An undefined kind is unspecified; no parent is a root span.
    assert_eq!((seen[1].1, seen[1].5), (SpanKind::Unspecified, None));
    assert_eq!(SpanKind::Server.as_str(), "SPAN_KIND_SERVER");
    assert_eq!(StatusCode::Error.as_str(), "STATUS_CODE_ERROR");
}

#[test]
fn spans_without_service_or_with_bad_ids_are_rejected_and_explained() {
    let mut no_service = rs("x", &[s(1, 2, 0, SERVER, 1), s(1, 3, 0, SERVER, 1)]);
    no_service.resource = None;
    let mut bad = rs(
        "x",
        &[
            s(0, 2, 0, SERVER, 1),
            s(1, 0, 0, SERVER, 1),
            s(1, 2, 0, SERVER, 1),
        ],
    );
    bad.scope_spans[0].spans[2].parent_span_id = vec![1, 2, 3];
    let good = rs("x", &[s(5, 6, 0, SERVER, 1)]);
    let v = visit(&[no_service, bad, good], |_| {});
    assert_eq!(
        v,
        Visited {
            accepted: 1,
            no_service_name: 2,
            invalid_id: 3
        }
    );
    assert_eq!(v.rejected(), 5);
    let m = v.message();
    assert!(
        m.contains("2 spans of resources without service.name"),
        "{m}"
    );
    assert!(
        m.contains("3 spans with an invalid trace or span id"),
        "{m}"
    );
    assert_eq!(Visited::default().message(), "");
}

#[test]
fn ids_in_span_names_become_one_placeholder() {
    for (raw, want) in [
        ("GET /user/42", "GET /user/{id}"),
        ("GET /user/42/orders/7", "GET /user/{id}/orders/{id}"),
        ("/items/123e4567-e89b-12d3-a456-426614174000", "/items/{id}"),
        ("/blob/5f2b9c0e8a7d4e1f9b3c", "/blob/{id}"),
        ("GET /search?q=shoes", "GET /search"),
        ("GET /user/me", "GET /user/me"),
        ("/v2/cafe", "/v2/cafe"),
        ("/deadbeefdeadbeefdead", "/deadbeefdeadbeefdead"), // hex without a digit: a word
        ("HTTP GET", "HTTP GET"),
        ("", ""),
    ] {
        assert_eq!(span_name(raw), want, "{raw}");
    }
    assert!(matches!(
        span_name("GET /health"),
        std::borrow::Cow::Borrowed(_)
    ));
}

#[test]
fn configuration_problems_are_all_reported() {
    let c = SpansConfig {
        duration_buckets_ms: vec![5.0, 1.0],
        max_series_per_service: 0,
        series_ttl: Duration::from_millis(10),
        dimensions: vec![
            Dimension {
                name: "span.name".into(),
                default: None,
            },
            Dimension {
                name: "http.method".into(),
                default: None,
            },
            Dimension {
                name: "http_method".into(),
                default: None,
            },
        ],
        ..Default::default()
    };
    let e = CollectorConfig {
        spans: c,
        ..Default::default()
    }
    .validate()
    .unwrap_err()
    .to_string();
    for want in [
        "spans: duration_buckets_ms",
        "max_series_per_service must be at least 1",
        "series_ttl 10ms",
        "label span_name, which spanmetrics sets itself",
        "http_method gives the label http_method twice",
    ] {
        assert!(e.contains(want), "{want} not in {e}");
    }
    let mut p = Problems::default();
    SpansConfig::default().validate(&mut p);
    assert!(format!("{p:?}").contains("[]"), "{p:?}");
}

#[test]
fn configuration_parses_with_typed_durations_and_rejects_unknown_fields() {
    let c: CollectorConfig = serde_json::from_str(
        r#"{"spans": {"dimensions": [{"name": "http.method", "default": "GET"}], "series_ttl": "1h", "normalize_span_names": true}}"#,
    )
    .unwrap();
    assert_eq!(c.spans.series_ttl, Duration::from_secs(3600));
    assert_eq!(c.spans.dimensions[0].default.as_deref(), Some("GET"));
    assert!(c.spans.normalize_span_names);
    let e = serde_json::from_str::<CollectorConfig>(r#"{"spans": {"buckets": [1]}}"#).unwrap_err();
    assert!(e.to_string().contains("unknown field `buckets`"), "{e}");
}
