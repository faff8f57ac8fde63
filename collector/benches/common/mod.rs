//! What the benches share: the Criterion run of a bench with one `bench` function, and OTLP
//! attributes.
#![allow(dead_code)] // each bench uses a different subset

use std::time::Duration;

use criterion::Criterion;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};

/// Runs `bench` with 5 s of measurement per function (and the command line's options), then the
/// summary.
pub fn run(bench: fn(&mut Criterion)) {
    let mut c = Criterion::default()
        .configure_from_args()
        .measurement_time(Duration::from_secs(5));
    bench(&mut c);
    c.final_summary();
}

/// A string attribute.
pub fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}
