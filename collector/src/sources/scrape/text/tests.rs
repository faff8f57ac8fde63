use proptest::prelude::*;

use super::*;

fn sample(l: &str, om: bool) -> (String, Vec<(String, String)>, f64) {
    match line(l, om).unwrap() {
        Line::Sample {
            name,
            labels,
            value,
        } => (
            name.to_string(),
            labels
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.into_owned()))
                .collect(),
            value,
        ),
        other => panic!("{l:?} is {other:?}"),
    }
}

fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn label_values_keep_what_a_regex_split_would_cut_and_their_escapes_are_read() {
    let (name, l, v) = sample(
        r#"http_requests_total{path="/a,b=c}",msg="say \"hi\"\\n",nl="x\ny", le="+Inf",} 3"#,
        false,
    );
    assert_eq!(name, "http_requests_total");
    assert_eq!(
        l,
        labels(&[
            ("path", "/a,b=c}"),
            ("msg", "say \"hi\"\\n"),
            ("nl", "x\ny"),
            ("le", "+Inf")
        ])
    );
    assert_eq!(v, 3.0);
    // Any UTF-8 in a value, and an escape before a multi-byte character kept as it is.
    let (_, l, _) = sample("m{a=\"é\\ü\"} 1", false);
    assert_eq!(l, labels(&[("a", "é\\ü")]));
}

#[test]
fn values_and_timestamps_as_prometheus_and_openmetrics_write_them() {
    for (text, want) in [
        ("m 1", 1.0),
        ("m -0.5e3", -500.0),
        ("m +Inf", f64::INFINITY),
        ("m -Inf", f64::NEG_INFINITY),
        ("m Inf", f64::INFINITY),
        ("m 1 1700000000000", 1.0),
        ("m{a=\"b\"}\t7 -12", 7.0),
        ("  m 2  ", 2.0),
        ("m:rule_total 4\r", 4.0),
    ] {
        assert_eq!(sample(text, false).2, want, "{text}");
    }
    assert!(sample("m NaN", false).2.is_nan());
    // OpenMetrics: float timestamps in seconds, exemplars checked and skipped.
    assert_eq!(sample("c_total 17 1520879607.789", true).2, 17.0);
    assert_eq!(
        sample(
            r#"h_bucket{le="0.1"} 8 # {trace_id="KOO5S4vxi0o"} 0.067 1520879607.789"#,
            true
        )
        .1,
        labels(&[("le", "0.1")])
    );
    assert_eq!(sample("c_total 1 # {} 0.5", true).2, 1.0);
}

#[test]
fn comments_give_help_type_and_eof() {
    assert_eq!(
        line(r"# HELP m A \\ and a\nnew line.", false).unwrap(),
        Line::Help {
            name: "m",
            text: Cow::Owned("A \\ and a\nnew line.".into())
        }
    );
    assert_eq!(
        line("# HELP m", false).unwrap(),
        Line::Help {
            name: "m",
            text: Cow::Borrowed("")
        }
    );
    for (t, om, kind) in [
        ("counter", false, Type::Counter),
        ("untyped", false, Type::Untyped),
        ("unknown", true, Type::Untyped),
        ("gaugehistogram", true, Type::GaugeHistogram),
        ("info", true, Type::Info),
        ("stateset", true, Type::StateSet),
        ("summary", true, Type::Summary),
    ] {
        assert_eq!(
            line(&format!("# TYPE m {t}"), om).unwrap(),
            Line::Type { name: "m", kind }
        );
    }
    assert_eq!(line("# EOF", true).unwrap(), Line::Eof);
    assert_eq!(line("# EOF", false).unwrap(), Line::Nothing);
    for other in ["", "   ", "# a comment", "#HELP m x", "# UNIT m seconds"] {
        assert_eq!(line(other, false).unwrap(), Line::Nothing, "{other:?}");
    }
}

#[test]
fn every_malformed_line_is_a_named_problem() {
    for (text, om) in [
        ("m", false),
        ("m{a=\"b\"}", false),
        ("m{a=\"b\"}1", false),
        ("1m 1", false),
        ("m{a=b} 1", false),
        ("m{a=\"b} 1", false),
        ("m{a=\"b\" c=\"d\"} 1", false),
        ("m{a=\"b\",a=\"c\"} 1", false),
        ("m{1a=\"b\"} 1", false),
        ("m{a=\"b\\\"} 1", false),
        ("m one", false),
        ("m 1 2.5", false),
        ("m 1 2 3", false),
        ("m 1 # {a=\"b\"} 1", false),
        ("m 1 # {a=\"b\"}", true),
        ("m 1 # a", true),
        ("m 1 # {a=\"b\"} 1 x", true),
        ("# TYPE m histogramm", false),
        ("# TYPE m info", false),
        ("# TYPE m gauge extra", false),
        ("# TYPE 1m gauge", false),
        ("# HELP m.x help", false),
    ] {
        assert!(
            line(text, om).is_err(),
            "{text:?} (openmetrics: {om}) is accepted"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// Arbitrary text never panics the line reader.
    #[test]
    fn any_text_is_a_line_or_a_problem(s in "\\PC{0,80}", om in any::<bool>()) {
        let _ = line(&s, om);
    }

    /// Text made of the format's own characters, where a problem is likely to hide.
    #[test]
    fn format_like_text_is_a_line_or_a_problem(
        s in "[a-z_:{}=\",#\\\\ \tE0-9.+\\-InfNaéü]{0,60}",
        om in any::<bool>(),
    ) {
        let _ = line(&s, om);
    }

    /// Any label value written with the format's escapes is read back as it was.
    #[test]
    fn escaped_label_values_round_trip(v in "\\PC{0,30}", x in -1e9f64..1e9) {
        let escaped = v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
        let text = format!("m{{k=\"{escaped}\"}} {x}");
        let (_, l, value) = sample(&text, false);
        prop_assert_eq!(l, labels(&[("k", &v)]));
        prop_assert_eq!(value, x);
    }
}
