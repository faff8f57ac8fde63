//! The StatsD / DogStatsD line parser: one line in, borrowed fields out, no allocation.
//!
//! ```text
//! <name>:<value>[:<value>...]|<type>[|@<rate>][|#<tag>[:<v>],...][|c:<container>][|T<unix s>]
//! _e{<title len>,<text len>}:<title>|<text>|...     (DogStatsD event: counted, skipped)
//! _sc|<name>|<status>|...                            (DogStatsD service check: counted, skipped)
//! ```
//! Types: `c` counter, `g` gauge (`+n`/`-n` are deltas), `ms` timer, `h` histogram, `d` distribution,
//! `s` set. Values are validated here, so the aggregator never sees a malformed one.

use std::fmt;

/// The StatsD metric type of a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Counter,
    Gauge,
    Timer,
    Histogram,
    Distribution,
    Set,
}

impl Kind {
    /// The type as written on the wire.
    pub fn code(self) -> &'static str {
        match self {
            Kind::Counter => "c",
            Kind::Gauge => "g",
            Kind::Timer => "ms",
            Kind::Histogram => "h",
            Kind::Distribution => "d",
            Kind::Set => "s",
        }
    }

    fn from_code(b: &[u8]) -> Option<Kind> {
        Some(match b {
            b"c" => Kind::Counter,
            b"g" => Kind::Gauge,
            b"ms" => Kind::Timer,
            b"h" => Kind::Histogram,
            b"d" => Kind::Distribution,
            b"s" => Kind::Set,
            _ => return None,
        })
    }

    /// Timers, histograms and distributions are all observed into a histogram.
    pub fn is_observer(self) -> bool {
        matches!(self, Kind::Timer | Kind::Histogram | Kind::Distribution)
    }
}

/// One value of a metric line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    Number(f64),
    /// A gauge value written with a sign: added to the current value.
    Delta(f64),
    /// A set member.
    Member(&'a [u8]),
}

/// A parsed metric line; every slice borrows the packet.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Metric<'a> {
    pub name: &'a [u8],
    pub kind: Kind,
    /// The first value.
    pub value: Value<'a>,
    /// Further DogStatsD packed values (`v2:v3...`), already validated; empty when there are none.
    pub more: &'a [u8],
    /// In (0, 1]; 1 when absent.
    pub sample_rate: f64,
    /// The tag list after `#` (`k:v,bare,...`); empty when absent.
    pub tags: &'a [u8],
    /// The DogStatsD container field after `c:`; empty when absent.
    pub container: &'a [u8],
    /// The DogStatsD timestamp (`|T`, Unix seconds), accepted and reported; aggregation ignores it.
    pub timestamp: Option<i64>,
}

impl<'a> Metric<'a> {
    /// Every value of the line: the first, then the packed ones.
    pub fn values(&self) -> Values<'a> {
        Values {
            first: Some(self.value),
            rest: self.more,
            gauge: self.kind == Kind::Gauge,
        }
    }

    /// The tags as (key, value) pairs; a bare tag has no value. Empty tags are reported as `None`.
    pub fn tag_pairs(&self) -> impl Iterator<Item = Option<(&'a [u8], Option<&'a [u8]>)>> + 'a {
        tag_pairs(self.tags)
    }
}

/// Splits a DogStatsD tag list; `None` for an empty tag (`a:1,,b:2`).
pub fn tag_pairs(tags: &[u8]) -> impl Iterator<Item = Option<(&[u8], Option<&[u8]>)>> {
    let n = if tags.is_empty() { 0 } else { usize::MAX };
    tags.split(|&b| b == b',').take(n).map(|tag| {
        // Some clients repeat the `#` on every tag.
        let tag = tag.strip_prefix(b"#").unwrap_or(tag);
        if tag.is_empty() {
            return None;
        }
        Some(match memchr::memchr(b':', tag) {
            Some(i) => (&tag[..i], Some(&tag[i + 1..])),
            None => (tag, None),
        })
    })
}

/// The values of one line.
pub struct Values<'a> {
    first: Option<Value<'a>>,
    rest: &'a [u8],
    gauge: bool,
}

impl<'a> Iterator for Values<'a> {
    type Item = Value<'a>;
    fn next(&mut self) -> Option<Value<'a>> {
        if let Some(v) = self.first.take() {
            return Some(v);
        }
        if self.rest.is_empty() {
            return None;
        }
        let (v, rest) = match memchr::memchr(b':', self.rest) {
            Some(i) => (&self.rest[..i], &self.rest[i + 1..]),
            None => (self.rest, &b""[..]),
        };
        self.rest = rest;
        // Validated by `parse_line`; a failure here would be a bug, so it ends the iteration.
        number_value(v, self.gauge).ok()
    }
}

/// What a line is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Line<'a> {
    Metric(Metric<'a>),
    /// A DogStatsD event (`_e{...}`): counted and skipped.
    Event,
    /// A DogStatsD service check (`_sc|...`): counted and skipped.
    ServiceCheck,
}

/// Why a line was rejected; `reason()` is the `reason` label of `plimsoll_ingest_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParseError {
    /// No `:` between name and value.
    NoValue,
    EmptyName,
    /// No `|type` after the value.
    NoType,
    UnknownType,
    /// Not a finite number (or an empty set member).
    BadValue,
    /// A counter cannot go down.
    NegativeCounter,
    /// `@rate` not a number in (0, 1].
    BadSampleRate,
    /// An empty, repeated or unknown `|` field.
    BadField,
    BadTimestamp,
    BadContainer,
}

impl ParseError {
    pub const ALL: [ParseError; 10] = [
        ParseError::NoValue,
        ParseError::EmptyName,
        ParseError::NoType,
        ParseError::UnknownType,
        ParseError::BadValue,
        ParseError::NegativeCounter,
        ParseError::BadSampleRate,
        ParseError::BadField,
        ParseError::BadTimestamp,
        ParseError::BadContainer,
    ];

    pub fn reason(self) -> &'static str {
        match self {
            ParseError::NoValue => "no_value",
            ParseError::EmptyName => "empty_name",
            ParseError::NoType => "no_type",
            ParseError::UnknownType => "unknown_type",
            ParseError::BadValue => "bad_value",
            ParseError::NegativeCounter => "negative_counter",
            ParseError::BadSampleRate => "bad_sample_rate",
            ParseError::BadField => "bad_field",
            ParseError::BadTimestamp => "bad_timestamp",
            ParseError::BadContainer => "bad_container",
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

/// Splits a packet into its lines (`\n`, with an optional `\r`), skipping empty ones.
pub fn lines(packet: &[u8]) -> impl Iterator<Item = &[u8]> {
    packet
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !l.is_empty())
}

/// Parses one line (without its newline).
pub fn parse_line(line: &[u8]) -> Result<Line<'_>, ParseError> {
    if line.starts_with(b"_e{") {
        return Ok(Line::Event);
    }
    if line.starts_with(b"_sc|") {
        return Ok(Line::ServiceCheck);
    }
    let colon = memchr::memchr(b':', line).ok_or(ParseError::NoValue)?;
    let name = &line[..colon];
    if name.is_empty() {
        return Err(ParseError::EmptyName);
    }
    let rest = &line[colon + 1..];
    let bar = memchr::memchr(b'|', rest).ok_or(ParseError::NoType)?;
    let values = &rest[..bar];
    let rest = &rest[bar + 1..];
    let (code, mut fields) = match memchr::memchr(b'|', rest) {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    let kind = Kind::from_code(code).ok_or(ParseError::UnknownType)?;
    let (value, more) = if kind == Kind::Set {
        if values.is_empty() {
            return Err(ParseError::BadValue);
        }
        (Value::Member(values), &b""[..])
    } else {
        let (first, more) = match memchr::memchr(b':', values) {
            Some(i) => (&values[..i], &values[i + 1..]),
            None => (values, &b""[..]),
        };
        let gauge = kind == Kind::Gauge;
        let value = number_value(first, gauge)?;
        check_value(kind, value)?;
        if !more.is_empty() {
            for v in more.split(|&b| b == b':') {
                check_value(kind, number_value(v, gauge)?)?;
            }
        }
        (value, more)
    };
    let mut m = Metric {
        name,
        kind,
        value,
        more,
        sample_rate: 1.0,
        tags: b"",
        container: b"",
        timestamp: None,
    };
    let (mut seen_rate, mut seen_tags) = (false, false);
    while let Some(f) = fields {
        let (field, next) = match memchr::memchr(b'|', f) {
            Some(i) => (&f[..i], Some(&f[i + 1..])),
            None => (f, None),
        };
        fields = next;
        match field {
            [b'@', rate @ ..] if !seen_rate => {
                seen_rate = true;
                m.sample_rate = match parse_f64(rate) {
                    Some(r) if r > 0.0 && r <= 1.0 => r,
                    _ => return Err(ParseError::BadSampleRate),
                };
            }
            [b'#', tags @ ..] if !seen_tags => {
                seen_tags = true;
                m.tags = tags;
            }
            [b'c', b':', id @ ..] if m.container.is_empty() => {
                if id.is_empty() {
                    return Err(ParseError::BadContainer);
                }
                m.container = id;
            }
            [b'T', ts @ ..] if m.timestamp.is_none() => {
                m.timestamp = Some(parse_i64(ts).ok_or(ParseError::BadTimestamp)?);
            }
            // Newer DogStatsD clients add origin-detection data (`e:`) and a cardinality hint
            // (`card:`); both are about Datadog's own tagging and are accepted and ignored.
            [b'e', b':', ..] | [b'c', b'a', b'r', b'd', b':', ..] => {}
            _ => return Err(ParseError::BadField),
        }
    }
    Ok(Line::Metric(m))
}

fn number_value(text: &[u8], gauge: bool) -> Result<Value<'static>, ParseError> {
    let x = parse_f64(text).ok_or(ParseError::BadValue)?;
    Ok(if gauge && matches!(text.first(), Some(b'+' | b'-')) {
        Value::Delta(x)
    } else {
        Value::Number(x)
    })
}

fn check_value(kind: Kind, v: Value) -> Result<(), ParseError> {
    match (kind, v) {
        (Kind::Counter, Value::Number(x)) if x < 0.0 => Err(ParseError::NegativeCounter),
        _ => Ok(()),
    }
}

/// 10^0..=10^22 are exact in f64.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// A finite decimal number (`-12`, `0.25`, `1e3`, `.5`), or `None`. `inf`, `NaN` and anything that
/// is not plain ASCII number syntax are rejected.
///
/// Most StatsD values are short decimals: those are built exactly from an integer mantissa and one
/// division by an exact power of ten (correctly rounded, as both operands are exact), which is several
/// times faster than the general parser; everything else goes to `str::parse`.
pub fn parse_f64(s: &[u8]) -> Option<f64> {
    let (neg, digits) = match s.first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let mut mantissa: u64 = 0;
    let mut n_digits = 0usize;
    let mut frac_digits = 0usize;
    let mut seen_dot = false;
    let mut i = 0;
    while i < digits.len() {
        match digits[i] {
            c @ b'0'..=b'9' => {
                mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(c - b'0'));
                n_digits += 1;
                if seen_dot {
                    frac_digits += 1;
                }
            }
            b'.' if !seen_dot => seen_dot = true,
            _ => break,
        }
        i += 1;
    }
    if n_digits == 0 {
        return None;
    }
    if i == digits.len() && n_digits <= 15 && frac_digits < POW10.len() {
        // 15 digits < 2^53: the mantissa is exact.
        let x = mantissa as f64 / POW10[frac_digits];
        return Some(if neg { -x } else { x });
    }
    // Exponents, long mantissas: the general parser, after a syntax check that keeps out the words
    // `str::parse` also accepts.
    if !s
        .iter()
        .all(|&c| matches!(c, b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-'))
    {
        return None;
    }
    let x: f64 = std::str::from_utf8(s).ok()?.parse().ok()?;
    x.is_finite().then_some(x)
}

fn parse_i64(s: &[u8]) -> Option<i64> {
    std::str::from_utf8(s).ok()?.parse().ok()
}

#[cfg(test)]
mod tests;
