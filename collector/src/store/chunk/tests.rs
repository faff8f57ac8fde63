use super::*;
use proptest::prelude::*;

fn round_trip<C: ValueCodec>(first: (i64, C::V), rest: &[(i64, C::V)]) -> Vec<(i64, C::V)> {
    let mut c = Chunk::<C>::new(first.0, first.1);
    for (t, v) in rest {
        c.push(*t, v);
    }
    let mut out = Vec::new();
    let mut cur = c.cursor();
    while cur.advance() {
        out.push((cur.ts(), cur.value().clone()));
    }
    out
}

/// Floats compared bit for bit, so NaN payloads and -0.0 count.
fn bits(v: &[(i64, f64)]) -> Vec<(i64, u64)> {
    v.iter().map(|(t, x)| (*t, x.to_bits())).collect()
}

/// Any f64 bit pattern, with the special values and integers over-represented.
fn any_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<u64>().prop_map(f64::from_bits),
        any::<i32>().prop_map(f64::from),
        any::<i64>().prop_map(|v| v as f64),
        Just(f64::NAN),
        Just(f64::from_bits(0x7ff8_0000_dead_beef)),
        Just(f64::from_bits(0xfff0_0000_0000_0001)),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(0.0),
        Just(-0.0),
        Just(f64::MAX),
        Just(f64::MIN_POSITIVE),
        Just(9_007_199_254_740_992.0),
    ]
}

const MAX_REST: usize = CHUNK_SAMPLES as usize - 1;

proptest! {
    #[test]
    fn int_codec_round_trips_any_samples(first in any::<(i64, i64)>(), rest in proptest::collection::vec(any::<(i64, i64)>(), 0..MAX_REST)) {
        let got = round_trip::<IntCodec>(first, &rest);
        let mut want = vec![first];
        want.extend(rest);
        prop_assert_eq!(got, want);
    }

    #[test]
    fn float_codec_round_trips_any_bit_pattern(first in (any::<i64>(), any_f64()), rest in proptest::collection::vec((any::<i64>(), any_f64()), 0..MAX_REST)) {
        let got = round_trip::<FloatCodec>(first, &rest);
        let mut want = vec![first];
        want.extend(rest);
        prop_assert_eq!(bits(&got), bits(&want));
    }

    #[test]
    fn float_codec_round_trips_counters_with_huge_steps(start in any::<i64>(), steps in proptest::collection::vec(any::<i64>(), 0..MAX_REST)) {
        // Integral values whose steps overflow, exceed 2^53 or lose precision take the XOR path.
        let mut v = start as f64;
        let mut want = vec![(0, v)];
        for (k, s) in steps.iter().enumerate() {
            v += *s as f64;
            want.push(((k as i64 + 1) * 1000, v));
        }
        let got = round_trip::<FloatCodec>(want[0], &want[1..]);
        prop_assert_eq!(bits(&got), bits(&want));
    }
}

proptest! {
    // Rows are wide: fewer cases cover as many values as the scalar tests.
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn multi_codec_round_trips_rows(rows in (1usize..40).prop_flat_map(|w| proptest::collection::vec(proptest::collection::vec(any_f64(), w), 1..40))) {
        let rows: Vec<(i64, Box<[f64]>)> = rows
            .into_iter()
            .enumerate()
            .map(|(k, r)| (k as i64 * 1000, r.into()))
            .collect();
        let got = round_trip::<MultiCodec>(rows[0].clone(), &rows[1..]);
        prop_assert_eq!(got.len(), rows.len());
        for ((t1, a), (t2, b)) in got.iter().zip(&rows) {
            prop_assert_eq!(t1, t2);
            let (a, b): (Vec<u64>, Vec<u64>) = (a.iter().map(|x| x.to_bits()).collect(), b.iter().map(|x| x.to_bits()).collect());
            prop_assert_eq!(a, b);
        }
    }
}

#[test]
fn special_float_transitions_round_trip() {
    let vals = [
        0.0,
        -0.0,
        0.0,
        f64::NAN,
        f64::NAN,
        f64::from_bits(0x7ff8_0000_0000_0001),
        f64::INFINITY,
        f64::NEG_INFINITY,
        1.0,
        -1.0,
        9_007_199_254_740_991.0,
        -9_007_199_254_740_991.0,
        1e300,
        -1e-300,
        5e-324,
    ];
    let pts: Vec<(i64, f64)> = vals
        .iter()
        .enumerate()
        .map(|(k, v)| (k as i64, *v))
        .collect();
    assert_eq!(
        bits(&round_trip::<FloatCodec>(pts[0], &pts[1..])),
        bits(&pts)
    );
}

#[test]
fn regular_idle_samples_take_two_bytes() {
    let mut c = Chunk::<IntCodec>::new(1_000, 5);
    for k in 1..CHUNK_SAMPLES as i64 {
        c.push(1_000 + k * 1_000, &5);
    }
    assert!(c.is_full());
    // first dod is 1000 (2 bytes), all later ones 0.
    assert_eq!(c.payload_len(), 2 * (CHUNK_SAMPLES as usize - 1) + 1);
}

/// Payload bytes per sample after the first of a full chunk of `values` at a regular 1 s.
fn float_bytes_per_sample(values: impl Fn(i64) -> f64) -> f64 {
    let mut c = Chunk::<FloatCodec>::new(0, values(0));
    for k in 1..CHUNK_SAMPLES as i64 {
        c.push(k * 1000, &values(k));
    }
    c.payload_len() as f64 / (CHUNK_SAMPLES - 1) as f64
}

#[test]
fn float_codec_sizes_of_typical_series() {
    // A steady gauge and a slow counter: two bytes a sample, like the int codec.
    assert!(float_bytes_per_sample(|_| 42.5) < 2.05);
    assert!(float_bytes_per_sample(|k| (k * 3) as f64) < 2.05);
    // A counter moving by a few hundred a second: a varint step.
    assert!(float_bytes_per_sample(|k| (k * 300) as f64) < 4.05);
    // A noisy fractional gauge costs the XOR bytes: at most a tag and eight bytes.
    let noisy = float_bytes_per_sample(|k| (k as f64 * 0.37).sin() * 100.0);
    assert!(noisy <= 10.05, "{noisy}");
}

#[test]
fn an_unchanged_histogram_row_takes_two_bytes() {
    let row: Box<[f64]> = (0..18).map(|i| i as f64).collect();
    let mut c = Chunk::<MultiCodec>::new(0, row.clone());
    for k in 1..CHUNK_SAMPLES as i64 {
        c.push(k * 1000, &row);
    }
    assert_eq!(c.payload_len(), 2 * (CHUNK_SAMPLES as usize - 1) + 1);
}
