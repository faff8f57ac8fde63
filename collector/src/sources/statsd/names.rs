//! StatsD names and tags into Prometheus metric and label names.
//!
//! Escaping follows statsd_exporter (`mapper/escape.go`), so users moving from it keep their names:
//! every character outside `[a-zA-Z0-9_]` (dots included) becomes `_`, a run of `-` becomes one `_`,
//! and a leading digit gets a `_` in front. Then the Prometheus suffix conventions are applied by type:
//! counters end in `_total`, timers (milliseconds on the wire, seconds here) in `_seconds`.

use super::parse::Kind;

/// Appends `raw` escaped to a valid metric or label name.
pub fn escape(raw: &str, out: &mut String) {
    if raw.starts_with(|c: char| c.is_ascii_digit()) {
        out.push('_');
    }
    let mut prev = '\0';
    for c in raw.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            out.push(c);
        } else if !(c == '-' && prev == '-') {
            out.push('_');
        }
        prev = c;
    }
}

/// The suffix a family of this StatsD type must end with.
pub fn suffix(kind: Kind) -> &'static str {
    match kind {
        Kind::Counter => "_total",
        Kind::Timer => "_seconds",
        Kind::Gauge | Kind::Set | Kind::Histogram | Kind::Distribution => "",
    }
}

/// Adds the type's suffix unless the name already ends with it.
pub fn with_suffix(mut name: String, kind: Kind) -> String {
    let s = suffix(kind);
    if !name.ends_with(s) {
        name.push_str(s);
    }
    name
}

/// The family name of a StatsD metric name that no mapping matched.
pub fn metric_name(raw: &str, kind: Kind) -> String {
    let mut out = String::with_capacity(raw.len() + 8);
    escape(raw, &mut out);
    with_suffix(out, kind)
}

/// A tag key as a label name; `None` for the names Prometheus reserves (`__*`) and an empty key.
pub fn label_name(raw: &str) -> Option<String> {
    let mut out = String::with_capacity(raw.len() + 1);
    escape(raw, &mut out);
    (!out.is_empty() && !out.starts_with("__")).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn escapes_as_statsd_exporter_does() {
        let cases = [
            ("api.requests", "api_requests"),
            ("api-requests", "api_requests"),
            ("api--requests", "api_requests"),
            ("api---requests", "api_requests"),
            ("1api", "_1api"),
            ("café.hits", "caf__hits"),
            ("a b/c", "a_b_c"),
            ("ok_name", "ok_name"),
        ];
        for (raw, want) in cases {
            let mut out = String::new();
            escape(raw, &mut out);
            assert_eq!(out, want, "{raw}");
        }
    }

    #[test]
    fn suffixes_follow_the_type() {
        assert_eq!(metric_name("orders", Kind::Counter), "orders_total");
        assert_eq!(metric_name("orders.total", Kind::Counter), "orders_total");
        assert_eq!(metric_name("db.query", Kind::Timer), "db_query_seconds");
        assert_eq!(
            metric_name("db.query_seconds", Kind::Timer),
            "db_query_seconds"
        );
        assert_eq!(metric_name("queue.depth", Kind::Gauge), "queue_depth");
        assert_eq!(metric_name("payload", Kind::Histogram), "payload");
        assert_eq!(metric_name("payload", Kind::Distribution), "payload");
        assert_eq!(metric_name("users", Kind::Set), "users");
    }

    #[test]
    fn reserved_and_empty_label_names_are_refused() {
        assert_eq!(label_name("__name__"), None);
        assert_eq!(label_name(""), None);
        assert_eq!(label_name("env").as_deref(), Some("env"));
        assert_eq!(label_name("k8s.pod").as_deref(), Some("k8s_pod"));
        assert_eq!(label_name("9lives").as_deref(), Some("_9lives"));
    }

    proptest! {
        #[test]
        fn any_name_escapes_to_a_valid_prometheus_name(raw in "\\PC{1,40}", k in 0usize..6) {
            let kinds = [Kind::Counter, Kind::Gauge, Kind::Timer, Kind::Histogram, Kind::Distribution, Kind::Set];
            let name = metric_name(&raw, kinds[k]);
            prop_assert!(crate::store::is_metric_name(&name), "{raw:?} -> {name:?}");
            if let Some(l) = label_name(&raw) {
                prop_assert!(crate::store::check_label_name(&l).is_ok(), "{raw:?} -> {l:?}");
            }
        }
    }
}
