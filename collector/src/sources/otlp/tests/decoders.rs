//! Arbitrary and mutated bytes through both decoders (protobuf and JSON, with and without gzip)
//! and the translator: never a panic.

use super::fixtures::*;
use crate::sources::otlp::decode::{decode, Format};
use proptest::prelude::*;

fn feed(bytes: &[u8]) {
    let (_, r) = receiver(ContainerDirectory::new());
    for format in [Format::Protobuf, Format::Json] {
        for gz in [false, true] {
            let body = if gz { gzip(bytes) } else { bytes.to_vec() };
            if let Ok(req) = decode::<ExportMetricsServiceRequest>(format, gz, &body, 1 << 20) {
                r.export(&req, None, NOW);
            }
            let _ = decode::<ExportMetricsServiceRequest>(format, true, bytes, 1 << 20);
            let _ = decode::<ExportTraceServiceRequest>(format, gz, &body, 1 << 20);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        feed(&bytes);
    }

    /// Valid requests with one byte changed or cut short reach the translator as odd messages.
    #[test]
    fn on_mutated_requests(at in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<bool>(), scale in -12i32..24) {
        let mut p = exp_point(scale, -3, vec![1, 2, 3], 1, 1);
        p.attributes = vec![kv("k", "v")];
        let req = request(&[("service.name", "s"), ("container.id", "x")], vec![
            gauge("g", "1", vec![point(1.0, &[("a.b", "c")])]),
            sum("s", "ms", true, DELTA, vec![point(2.0, &[])]),
            metric("e", "s", Data::ExponentialHistogram(ExponentialHistogram { aggregation_temporality: CUMULATIVE, data_points: vec![p] })),
        ]);
        let mut pb = req.encode_to_vec();
        let mut json = serde_json::to_vec(&req).unwrap();
        for buf in [&mut pb, &mut json] {
            let i = at.index(buf.len());
            if cut { buf.truncate(i) } else { buf[i] = byte }
        }
        feed(&pb);
        feed(&json);
    }
}
