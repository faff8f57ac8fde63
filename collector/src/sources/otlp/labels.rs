//! Resource and point attributes into label sets: names as `names::label_name` makes them, values
//! as text.

use std::borrow::Cow;
use std::fmt::Write as _;

use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};

use super::names;

/// The labels of a point: the resource's, then its attributes as label names (values of keys that
/// become the same name joined with `;` in key order, as the Prometheus exporter does). An attribute
/// whose name the resource labels use already is renamed `exported_<name>`; empty values are left out.
/// Names and values that need no change are borrowed, not copied.
pub fn labels<'a>(
    base: &'a [(String, String)],
    attrs: &'a [KeyValue],
) -> Vec<(Cow<'a, str>, Cow<'a, str>)> {
    let mut out: Vec<(Cow<str>, Cow<str>)> = Vec::with_capacity(base.len() + attrs.len());
    out.extend(
        base.iter()
            .map(|(k, v)| (Cow::from(k.as_str()), Cow::from(v.as_str()))),
    );
    let n = out.len();
    let mut sorted: Vec<&KeyValue> = attrs.iter().collect();
    if !sorted.is_sorted_by(|a, b| a.key <= b.key) {
        sorted.sort_by(|a, b| a.key.cmp(&b.key));
    }
    for kv in sorted {
        let Some(mut name) = names::label_name(&kv.key) else {
            continue;
        };
        let value = kv.value.as_ref().map_or(Cow::Borrowed(""), value_str);
        if value.is_empty() {
            continue;
        }
        if out[..n].iter().any(|(k, _)| *k == name) {
            name = Cow::Owned(format!("exported_{name}"));
        }
        match out[n..].iter_mut().find(|(k, _)| *k == name) {
            Some((_, v)) => {
                let v = v.to_mut();
                v.push(';');
                v.push_str(&value);
            }
            None => out.push((name, value)),
        }
    }
    out
}

/// [`value_string`], borrowing string values.
fn value_str(v: &AnyValue) -> Cow<'_, str> {
    match &v.value {
        Some(any_value::Value::StringValue(s)) => Cow::Borrowed(s),
        _ => Cow::Owned(value_string(v)),
    }
}

/// An attribute value as a label value: strings as they are, numbers and booleans as text, arrays
/// and maps as JSON, bytes as hex.
pub fn value_string(v: &AnyValue) -> String {
    let mut s = String::new();
    write_value(&mut s, v.value.as_ref(), false);
    s
}

fn write_value(out: &mut String, v: Option<&any_value::Value>, quoted: bool) {
    use any_value::Value as V;
    match v {
        None => {
            if quoted {
                out.push_str("null")
            }
        }
        Some(V::StringValue(s)) if quoted => {
            out.push_str(&serde_json::Value::String(s.clone()).to_string())
        }
        Some(V::StringValue(s)) => out.push_str(s),
        Some(V::BoolValue(b)) => {
            let _ = write!(out, "{b}");
        }
        Some(V::IntValue(i)) => {
            let _ = write!(out, "{i}");
        }
        Some(V::DoubleValue(d)) => {
            let _ = write!(out, "{d}");
        }
        Some(V::BytesValue(b)) => {
            if quoted {
                out.push('"');
            }
            for x in b {
                let _ = write!(out, "{x:02x}");
            }
            if quoted {
                out.push('"');
            }
        }
        Some(V::ArrayValue(a)) => {
            out.push('[');
            for (i, x) in a.values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, x.value.as_ref(), true);
            }
            out.push(']');
        }
        Some(V::KvlistValue(l)) => {
            out.push('{');
            for (i, kv) in l.values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::Value::String(kv.key.clone()).to_string());
                out.push(':');
                write_value(out, kv.value.as_ref().and_then(|x| x.value.as_ref()), true);
            }
            out.push('}');
        }
        Some(_) => {}
    }
}
