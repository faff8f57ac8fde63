//! OTLP metric names, units and attribute keys into Prometheus names, as the OpenTelemetry
//! Collector's Prometheus exporter builds them (collector-contrib `pkg/translator/prometheus`,
//! with metric suffixes on):
//!
//! - the name is split into words at every character outside `[a-zA-Z0-9]` and the words are joined
//!   with `_` (`http.server.duration` → `http_server_duration`);
//! - the unit becomes a suffix word unless the name has it already: `s` → `seconds`,
//!   `ms` → `milliseconds`, `By` → `bytes`, ... (see [`unit_word`]); units in braces (`{request}`)
//!   are annotations and add nothing; `X/Y` adds `X_per_Y` with `Y` spelt out for time (`s` → `second`);
//! - a monotonic sum ends in `total` (moved to the end if the name has it elsewhere);
//! - a gauge with unit `1` ends in `ratio`;
//! - a name starting with a digit gets a `_` in front.
//!
//! Attribute keys become label names by replacing every character outside `[a-zA-Z0-9_]` with `_`,
//! with `key_` in front of a leading digit and `key` in front of a leading `_`.

use std::borrow::Cow;

/// The Prometheus type a name is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    /// Monotonic sums: `_total`.
    Counter,
    /// Gauges (and non-monotonic sums exposed as gauges when `ratio` is wanted): unit `1` → `_ratio`.
    Gauge,
    /// Non-monotonic sums, histograms, summaries: the unit suffix only.
    Other,
}

/// The word a unit adds to a metric name (unknown units are kept as they are, then cleaned).
pub fn unit_word(unit: &str) -> &str {
    match unit {
        // Time
        "d" => "days",
        "h" => "hours",
        "min" => "minutes",
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "ns" => "nanoseconds",
        // Bytes
        "By" => "bytes",
        "KiBy" => "kibibytes",
        "MiBy" => "mebibytes",
        "GiBy" => "gibibytes",
        "TiBy" => "tibibytes",
        "KBy" => "kilobytes",
        "MBy" => "megabytes",
        "GBy" => "gigabytes",
        "TBy" => "terabytes",
        // SI
        "m" => "meters",
        "V" => "volts",
        "A" => "amperes",
        "J" => "joules",
        "W" => "watts",
        "g" => "grams",
        // Misc
        "Cel" => "celsius",
        "Hz" => "hertz",
        "1" => "",
        "%" => "percent",
        other => other,
    }
}

/// The word a unit adds after `per` (`m/s` → `meters_per_second`).
pub fn per_unit_word(unit: &str) -> &str {
    match unit {
        "s" => "second",
        "m" => "minute",
        "h" => "hour",
        "d" => "day",
        "w" => "week",
        "mo" => "month",
        "y" => "year",
        other => other,
    }
}

/// Words of `s`: the runs of ASCII letters and digits.
fn words(s: &str) -> impl Iterator<Item = &str> {
    s.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
}

/// A unit word cleaned to name characters: its words joined with `_`.
fn clean_unit(word: &str) -> String {
    words(word).collect::<Vec<_>>().join("_")
}

/// The Prometheus metric name of an OTLP metric (see the module documentation).
pub fn metric_name(name: &str, unit: &str, kind: NameKind) -> String {
    let mut tokens: Vec<String> = words(name).map(str::to_string).collect();
    let mut parts = unit.splitn(2, '/');
    let main = parts.next().unwrap_or("").trim();
    let per = parts.next().map(str::trim).unwrap_or("");
    if !main.is_empty() && !main.contains(['{', '}']) {
        let w = clean_unit(unit_word(main));
        if !w.is_empty() && !tokens.contains(&w) {
            tokens.push(w);
        }
    }
    if !per.is_empty() && !per.contains(['{', '}']) {
        let w = clean_unit(per_unit_word(per));
        if !w.is_empty() && !tokens.contains(&w) {
            tokens.push("per".into());
            tokens.push(w);
        }
    }
    let suffix = match kind {
        NameKind::Counter => Some("total"),
        NameKind::Gauge if unit == "1" => Some("ratio"),
        _ => None,
    };
    if let Some(s) = suffix {
        tokens.retain(|t| t != s);
        tokens.push(s.into());
    }
    let mut out = tokens.join("_");
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// An attribute key as a Prometheus label name (borrowed when it is one already); `None` for an
/// empty key.
pub fn label_name(key: &str) -> Option<Cow<'_, str>> {
    if key.is_empty() {
        return None;
    }
    let valid = key.starts_with(|c: char| c.is_ascii_alphabetic())
        && key.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_');
    if valid {
        return Some(Cow::Borrowed(key));
    }
    let mut out = String::with_capacity(key.len() + 4);
    if key.starts_with(|c: char| c.is_ascii_digit()) {
        out.push_str("key_");
    } else if key.starts_with('_') {
        // `_x` and the reserved `__x` alike.
        out.push_str("key");
    }
    out.extend(key.chars().map(|c| {
        if c.is_ascii_alphanumeric() || c == '_' {
            c
        } else {
            '_'
        }
    }));
    Some(Cow::Owned(out))
}
