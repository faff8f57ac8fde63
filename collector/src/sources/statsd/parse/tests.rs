use super::*;
use proptest::prelude::*;

fn metric(line: &str) -> Metric<'_> {
    match parse_line(line.as_bytes()) {
        Ok(Line::Metric(m)) => m,
        other => panic!("{line:?}: {other:?}"),
    }
}

fn err(line: &str) -> ParseError {
    match parse_line(line.as_bytes()) {
        Err(e) => e,
        other => panic!("{line:?} should fail: {other:?}"),
    }
}

#[test]
fn every_type_parses() {
    let cases = [
        ("orders:1|c", Kind::Counter, Value::Number(1.0)),
        ("queue:42|g", Kind::Gauge, Value::Number(42.0)),
        ("queue:+3|g", Kind::Gauge, Value::Delta(3.0)),
        ("queue:-3.5|g", Kind::Gauge, Value::Delta(-3.5)),
        ("db.query:12.5|ms", Kind::Timer, Value::Number(12.5)),
        ("size:1024|h", Kind::Histogram, Value::Number(1024.0)),
        ("lat:0.25|d", Kind::Distribution, Value::Number(0.25)),
        ("users:alice|s", Kind::Set, Value::Member(b"alice")),
    ];
    for (line, kind, value) in cases {
        let m = metric(line);
        assert_eq!((m.kind, m.value), (kind, value), "{line}");
        assert_eq!(m.sample_rate, 1.0);
        assert!(m.tags.is_empty() && m.container.is_empty() && m.timestamp.is_none());
    }
    // A counter written with a plus sign is a plain value, not a delta.
    assert_eq!(metric("c:+2|c").value, Value::Number(2.0));
}

#[test]
fn dogstatsd_fields_parse_in_any_order() {
    let m = metric("page.views:3|c|@0.5|#env:prod,web,#region:eu|c:abc123|T1656581400");
    assert_eq!(m.name, b"page.views");
    assert_eq!(m.sample_rate, 0.5);
    assert_eq!(m.tags, b"env:prod,web,#region:eu");
    assert_eq!(m.container, b"abc123");
    assert_eq!(m.timestamp, Some(1_656_581_400));
    let tags: Vec<_> = m.tag_pairs().collect();
    assert_eq!(
        tags,
        vec![
            Some((&b"env"[..], Some(&b"prod"[..]))),
            Some((&b"web"[..], None)),
            Some((&b"region"[..], Some(&b"eu"[..]))),
        ]
    );
    let m = metric("x:1|ms|#a:b|@0.1|e:it-false,cn-web|card:high");
    assert_eq!((m.sample_rate, m.tags), (0.1, &b"a:b"[..]));
    // A tag value may itself contain colons (URLs, times): only the first one splits.
    let m = metric("x:1|c|#url:http://a:8080/b");
    assert_eq!(
        m.tag_pairs().next().unwrap(),
        Some((&b"url"[..], Some(&b"http://a:8080/b"[..])))
    );
    assert_eq!(
        metric("x:1|c|#a:1,,b:2")
            .tag_pairs()
            .filter(Option::is_none)
            .count(),
        1
    );
}

#[test]
fn packed_values_are_all_seen() {
    let m = metric("lat:1:2.5:3|ms|#a:b");
    assert_eq!(
        m.values().collect::<Vec<_>>(),
        vec![Value::Number(1.0), Value::Number(2.5), Value::Number(3.0)]
    );
    let m = metric("g:1:+2:-1|g");
    assert_eq!(
        m.values().collect::<Vec<_>>(),
        vec![Value::Number(1.0), Value::Delta(2.0), Value::Delta(-1.0)]
    );
    // A set member is taken whole.
    assert_eq!(metric("s:a:b|s").value, Value::Member(b"a:b"));
    assert_eq!(err("lat:1:x|ms"), ParseError::BadValue);
    assert_eq!(err("c:1:-1|c"), ParseError::NegativeCounter);
}

#[test]
fn events_and_service_checks_are_recognised() {
    assert_eq!(parse_line(b"_e{5,4}:title|text|#a:b"), Ok(Line::Event));
    assert_eq!(parse_line(b"_sc|db.up|0|#a:b|m:ok"), Ok(Line::ServiceCheck));
}

#[test]
fn malformed_lines_say_why() {
    let cases = [
        ("no colon here", ParseError::NoValue),
        (":1|c", ParseError::EmptyName),
        ("a:1", ParseError::NoType),
        ("a:1|x", ParseError::UnknownType),
        ("a:1|", ParseError::UnknownType),
        ("a:|c", ParseError::BadValue),
        ("a:abc|c", ParseError::BadValue),
        ("a:NaN|g", ParseError::BadValue),
        ("a:inf|ms", ParseError::BadValue),
        ("a:1e400|g", ParseError::BadValue),
        ("a:|s", ParseError::BadValue),
        ("a:-1|c", ParseError::NegativeCounter),
        ("a:1|c|@0", ParseError::BadSampleRate),
        ("a:1|c|@1.5", ParseError::BadSampleRate),
        ("a:1|c|@x", ParseError::BadSampleRate),
        ("a:1|c||#a:b", ParseError::BadField),
        ("a:1|c|x", ParseError::BadField),
        ("a:1|c|@0.5|@0.5", ParseError::BadField),
        ("a:1|c|#a|#b", ParseError::BadField),
        ("a:1|c|Tsoon", ParseError::BadTimestamp),
        ("a:1|c|c:", ParseError::BadContainer),
    ];
    for (line, want) in cases {
        assert_eq!(err(line), want, "{line}");
    }
}

#[test]
fn packets_split_into_lines() {
    let got: Vec<_> = lines(b"a:1|c\nb:2|g\r\n\n\nc:3|ms\n").collect();
    assert_eq!(got, vec![&b"a:1|c"[..], b"b:2|g", b"c:3|ms"]);
    assert_eq!(lines(b"").count(), 0);
    assert_eq!(lines(b"\n\r\n").count(), 0);
}

#[test]
fn numbers_parse_exactly() {
    for s in [
        "0",
        "1",
        "-1",
        "0.1",
        "12.5",
        ".5",
        "5.",
        "123456789012345",
        "1e3",
        "2.5E-3",
        "-0",
    ] {
        assert_eq!(
            parse_f64(s.as_bytes()).map(f64::to_bits),
            Some(s.parse::<f64>().unwrap().to_bits()),
            "{s}"
        );
    }
    for s in [
        "",
        "-",
        ".",
        "+",
        "1.2.3",
        "0x10",
        "inf",
        "-infinity",
        "NaN",
        "1e",
        "1 ",
        " 1",
        "1_000",
    ] {
        assert_eq!(parse_f64(s.as_bytes()), None, "{s:?}");
    }
}

/// A line as a client would write it; the inverse of `parse_line` for valid metrics.
fn format(m: &Metric) -> Vec<u8> {
    let mut out = m.name.to_vec();
    out.push(b':');
    let mut first = true;
    for v in m.values() {
        if !first {
            out.push(b':');
        }
        first = false;
        match v {
            Value::Number(x) => out.extend(format!("{x:?}").bytes()),
            Value::Delta(x) => {
                out.extend(format!("{}{:?}", if x < 0.0 { "" } else { "+" }, x).bytes())
            }
            Value::Member(b) => out.extend_from_slice(b),
        }
    }
    out.push(b'|');
    out.extend(m.kind.code().bytes());
    if m.sample_rate != 1.0 {
        out.extend(format!("|@{:?}", m.sample_rate).bytes());
    }
    if !m.tags.is_empty() {
        out.extend_from_slice(b"|#");
        out.extend_from_slice(m.tags);
    }
    if !m.container.is_empty() {
        out.extend_from_slice(b"|c:");
        out.extend_from_slice(m.container);
    }
    if let Some(t) = m.timestamp {
        out.extend(format!("|T{t}").bytes());
    }
    out
}

fn kind_strategy() -> impl Strategy<Value = Kind> {
    prop_oneof![
        Just(Kind::Counter),
        Just(Kind::Gauge),
        Just(Kind::Timer),
        Just(Kind::Histogram),
        Just(Kind::Distribution),
        Just(Kind::Set),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        for line in lines(&bytes) {
            if let Ok(Line::Metric(m)) = parse_line(line) {
                // Everything a parsed line exposes is usable.
                prop_assert!(m.values().count() >= 1);
                let _ = m.tag_pairs().count();
                prop_assert!(m.sample_rate > 0.0 && m.sample_rate <= 1.0);
            }
        }
    }

    #[test]
    fn statsd_shaped_noise_never_panics(line in "[a-z.:|#@,cgmshdT0-9+\\-e]{0,60}") {
        let _ = parse_line(line.as_bytes());
    }

    #[test]
    fn parse_of_format_round_trips(
        name in "[a-zA-Z_][a-zA-Z0-9_.\\-]{0,30}",
        kind in kind_strategy(),
        nums in proptest::collection::vec(0.0f64..1e12, 1..4),
        delta in any::<bool>(),
        member in "[a-zA-Z0-9_]{1,10}",
        rate in prop_oneof![Just(1.0f64), 0.001f64..1.0],
        tags in "([a-z]{1,5}(:[a-zA-Z0-9_:/.]{1,8})?)(,[a-z]{1,5}(:[a-z0-9]{1,8})?){0,3}|",
        container in "[0-9a-f]{12,64}|",
        ts in proptest::option::of(0i64..4_000_000_000),
    ) {
        let values: Vec<String> = nums.iter().map(|x| {
            if kind == Kind::Gauge && delta { format!("+{x:?}") } else { format!("{x:?}") }
        }).collect();
        let value_text = if kind == Kind::Set { member.clone() } else { values.join(":") };
        let first = match kind {
            Kind::Set => Value::Member(member.as_bytes()),
            Kind::Gauge if delta => Value::Delta(nums[0]),
            _ => Value::Number(nums[0]),
        };
        let more_start = values[0].len() + 1;
        let more = if kind == Kind::Set || nums.len() == 1 { "" } else { &value_text[more_start..] };
        let m = Metric {
            name: name.as_bytes(),
            kind,
            value: first,
            more: more.as_bytes(),
            sample_rate: rate,
            tags: tags.as_bytes(),
            container: container.as_bytes(),
            timestamp: ts,
        };
        let text = format(&m);
        let parsed = parse_line(&text);
        prop_assert_eq!(parsed, Ok(Line::Metric(m)), "{}", String::from_utf8_lossy(&text));
        if let Ok(Line::Metric(p)) = parse_line(&text) {
            let want: Vec<Value> = match kind {
                Kind::Set => vec![Value::Member(member.as_bytes())],
                Kind::Gauge if delta => nums.iter().map(|x| Value::Delta(*x)).collect(),
                _ => nums.iter().map(|x| Value::Number(*x)).collect(),
            };
            prop_assert_eq!(p.values().collect::<Vec<_>>(), want);
        }
    }

    #[test]
    fn fast_float_path_agrees_with_std(s in "-?[0-9]{1,18}(\\.[0-9]{0,12})?") {
        prop_assert_eq!(
            parse_f64(s.as_bytes()).map(f64::to_bits),
            Some(s.parse::<f64>().unwrap().to_bits())
        );
    }
}
