//! The compact view of a span that spanmetrics and servicegraph read: borrowed from the decoded
//! OTLP request (no copy), with the service name of its resource, its kind and status as enums and
//! its ids checked.

use std::borrow::Cow;

use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span};

/// The resource attribute that names the service.
pub const SERVICE_NAME: &str = "service.name";

/// A span's kind, as OTLP numbers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SpanKind {
    Unspecified,
    Internal,
    Server,
    Client,
    Producer,
    Consumer,
}

impl SpanKind {
    /// From the wire; a number OTLP does not define is taken as unspecified.
    pub fn from_i32(k: i32) -> SpanKind {
        match k {
            1 => SpanKind::Internal,
            2 => SpanKind::Server,
            3 => SpanKind::Client,
            4 => SpanKind::Producer,
            5 => SpanKind::Consumer,
            _ => SpanKind::Unspecified,
        }
    }

    /// The enum name, as the spanmetrics connector labels it.
    pub fn as_str(self) -> &'static str {
        match self {
            SpanKind::Unspecified => "SPAN_KIND_UNSPECIFIED",
            SpanKind::Internal => "SPAN_KIND_INTERNAL",
            SpanKind::Server => "SPAN_KIND_SERVER",
            SpanKind::Client => "SPAN_KIND_CLIENT",
            SpanKind::Producer => "SPAN_KIND_PRODUCER",
            SpanKind::Consumer => "SPAN_KIND_CONSUMER",
        }
    }
}

/// A span's status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusCode {
    Unset,
    Ok,
    Error,
}

impl StatusCode {
    pub fn from_i32(c: i32) -> StatusCode {
        match c {
            1 => StatusCode::Ok,
            2 => StatusCode::Error,
            _ => StatusCode::Unset,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StatusCode::Unset => "STATUS_CODE_UNSET",
            StatusCode::Ok => "STATUS_CODE_OK",
            StatusCode::Error => "STATUS_CODE_ERROR",
        }
    }
}

pub type TraceId = [u8; 16];
pub type SpanId = [u8; 8];

/// One span of a request, as the connectors read it.
#[derive(Debug, Clone, Copy)]
pub struct SpanView<'a> {
    pub service: &'a str,
    pub resource: &'a [KeyValue],
    pub span: &'a Span,
    pub kind: SpanKind,
    pub status: StatusCode,
    pub trace_id: TraceId,
    pub span_id: SpanId,
    /// None for a root span (empty or all-zero parent id).
    pub parent: Option<SpanId>,
}

impl<'a> SpanView<'a> {
    pub fn name(&self) -> &'a str {
        &self.span.name
    }

    /// End minus start; 0 when the end is before the start (as the connectors do).
    pub fn duration_ns(&self) -> u64 {
        self.span
            .end_time_unix_nano
            .saturating_sub(self.span.start_time_unix_nano)
    }

    /// A span attribute as a string.
    pub fn span_attr(&self, key: &str) -> Option<Cow<'a, str>> {
        find(&self.span.attributes, key)
    }

    /// A span attribute, else a resource attribute, as a string.
    pub fn attr(&self, key: &str) -> Option<Cow<'a, str>> {
        self.span_attr(key).or_else(|| find(self.resource, key))
    }
}

/// The value of `key` among `attrs`, as a string; arrays, maps and bytes are not labels.
pub fn find<'a>(attrs: &'a [KeyValue], key: &str) -> Option<Cow<'a, str>> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(value_str)
}

fn value_str(v: &AnyValue) -> Option<Cow<'_, str>> {
    match v.value.as_ref()? {
        any_value::Value::StringValue(s) => Some(Cow::Borrowed(s)),
        any_value::Value::BoolValue(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
        any_value::Value::IntValue(i) => Some(Cow::Owned(i.to_string())),
        any_value::Value::DoubleValue(d) => Some(Cow::Owned(d.to_string())),
        _ => None,
    }
}

/// Why a span was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reject {
    /// Its resource has no `service.name` (the connectors skip such spans too).
    NoServiceName,
    /// Its trace id is not 16 bytes or all zero, or its span id not 8 bytes or all zero.
    InvalidId,
}

impl Reject {
    pub const ALL: [Reject; 2] = [Reject::NoServiceName, Reject::InvalidId];

    pub fn as_str(self) -> &'static str {
        match self {
            Reject::NoServiceName => "no_service_name",
            Reject::InvalidId => "invalid_id",
        }
    }
}

/// What a pass over a request found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Visited {
    pub accepted: u64,
    pub no_service_name: u64,
    pub invalid_id: u64,
}

impl Visited {
    pub fn rejected(&self) -> u64 {
        self.no_service_name + self.invalid_id
    }

    pub fn count(&self, r: Reject) -> u64 {
        match r {
            Reject::NoServiceName => self.no_service_name,
            Reject::InvalidId => self.invalid_id,
        }
    }

    /// The OTLP partial-success message for the rejected spans; empty when none were.
    pub fn message(&self) -> String {
        let mut parts = Vec::new();
        if self.no_service_name > 0 {
            parts.push(format!(
                "{} spans of resources without service.name",
                self.no_service_name
            ));
        }
        if self.invalid_id > 0 {
            parts.push(format!(
                "{} spans with an invalid trace or span id (trace id 16 bytes, span id 8 bytes, not all zero)",
                self.invalid_id
            ));
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!("rejected {}", parts.join(", "))
        }
    }
}

fn id<const N: usize>(b: &[u8]) -> Option<[u8; N]> {
    let a: [u8; N] = b.try_into().ok()?;
    (a != [0; N]).then_some(a)
}

/// Calls `f` with every acceptable span of `resources` and counts the others.
pub fn visit<'a>(resources: &'a [ResourceSpans], mut f: impl FnMut(&SpanView<'a>)) -> Visited {
    let mut out = Visited::default();
    for rs in resources {
        let resource: &[KeyValue] = rs.resource.as_ref().map_or(&[], |r| &r.attributes);
        let service = match find(resource, SERVICE_NAME) {
            Some(Cow::Borrowed(s)) => Some(s),
            _ => None,
        };
        for ss in &rs.scope_spans {
            let Some(service) = service else {
                out.no_service_name += ss.spans.len() as u64;
                continue;
            };
            for span in &ss.spans {
                let (Some(trace_id), Some(span_id)) = (id(&span.trace_id), id(&span.span_id))
                else {
                    out.invalid_id += 1;
                    continue;
                };
                let parent = match span.parent_span_id.len() {
                    0 => None,
                    8 => id(&span.parent_span_id),
                    _ => {
                        out.invalid_id += 1;
                        continue;
                    }
                };
                out.accepted += 1;
                f(&SpanView {
                    service,
                    resource,
                    span,
                    kind: SpanKind::from_i32(span.kind),
                    status: StatusCode::from_i32(span.status.as_ref().map_or(0, |s| s.code)),
                    trace_id,
                    span_id,
                    parent,
                });
            }
        }
    }
    out
}
