//! The Prometheus text format 0.0.4 and OpenMetrics 1.0 text, read one line at a time: each line is
//! scanned once, left to right, so a body costs time in proportion to its length.
//!
//! Hand-written because no well-kept crate does this right (checked 2026-11-29): openmetrics-parser
//! 0.5.1 is LGPL-3.0 (this project is Apache-2.0), refuses samples without a `# TYPE` and is
//! quadratic in a family's series; prometheus-parse 0.2.5 cuts label sets at every `,`, `=` and `}`
//! with a regex (a value holding one, or an escaped quote, is misread) and knows no OpenMetrics;
//! prom_text_format_parser 0.1.0 is a single 2023 release, Prometheus text only, and panics on a
//! value it cannot read. What is read here: HELP (with its escapes), TYPE (every type of both
//! formats), UNIT, samples with escaped label values, NaN and ±Inf, optional timestamps (integer
//! milliseconds or OpenMetrics' float seconds, checked and ignored), OpenMetrics exemplars (checked
//! and skipped) and `# EOF`. A body is not trusted: every problem is an error naming its line, never a
//! panic.

use std::borrow::Cow;

/// A family's type as a `# TYPE` line gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    Counter,
    Gauge,
    Histogram,
    GaugeHistogram,
    Summary,
    Info,
    StateSet,
    /// `untyped` (Prometheus), `unknown` (OpenMetrics), or no `# TYPE` at all.
    Untyped,
}

impl Type {
    fn parse(s: &str, openmetrics: bool) -> Option<Type> {
        Some(match s {
            "counter" => Type::Counter,
            "gauge" => Type::Gauge,
            "histogram" => Type::Histogram,
            "summary" => Type::Summary,
            "untyped" if !openmetrics => Type::Untyped,
            "unknown" if openmetrics => Type::Untyped,
            "gaugehistogram" if openmetrics => Type::GaugeHistogram,
            "info" if openmetrics => Type::Info,
            "stateset" if openmetrics => Type::StateSet,
            _ => return None,
        })
    }
}

/// Label pairs of a sample, in the order exposed; values are borrowed unless they had escapes.
pub type Labels<'a> = Vec<(&'a str, Cow<'a, str>)>;

/// What one line says.
#[derive(Debug, Clone, PartialEq)]
pub enum Line<'a> {
    Help {
        name: &'a str,
        text: Cow<'a, str>,
    },
    Type {
        name: &'a str,
        kind: Type,
    },
    Sample {
        name: &'a str,
        labels: Labels<'a>,
        value: f64,
    },
    /// OpenMetrics' `# EOF`.
    Eof,
    /// Blank lines, other comments, `# UNIT`.
    Nothing,
}

/// What is wrong with a line.
pub type Problem = &'static str;

/// Reads one line (without its `\n`).
pub fn line(line: &str, openmetrics: bool) -> Result<Line<'_>, Problem> {
    let line = line.strip_suffix('\r').unwrap_or(line);
    let mut c = Cursor { s: line, at: 0 };
    c.skip_ws();
    match c.peek() {
        None => Ok(Line::Nothing),
        Some(b'#') => {
            c.at += 1;
            comment(c, openmetrics)
        }
        Some(_) => sample(c, openmetrics),
    }
}

fn comment(mut c: Cursor<'_>, openmetrics: bool) -> Result<Line<'_>, Problem> {
    if openmetrics && c.rest() == " EOF" {
        return Ok(Line::Eof);
    }
    if !c.skip_ws() {
        return Ok(Line::Nothing);
    }
    let keyword = c.token();
    if !matches!(keyword, "HELP" | "TYPE" | "UNIT") {
        return Ok(Line::Nothing);
    }
    if !c.skip_ws() {
        return Err("no metric name after HELP, TYPE or UNIT");
    }
    let name = c.metric_name().ok_or("invalid metric name")?;
    let spaced = c.skip_ws();
    match keyword {
        "HELP" => {
            if !spaced && !c.done() {
                return Err("no space after the metric name");
            }
            Ok(Line::Help {
                name,
                text: unescape(c.rest(), openmetrics, false)?,
            })
        }
        "TYPE" => {
            let word = c.token();
            let kind = Type::parse(word, openmetrics).ok_or("unknown metric type")?;
            c.skip_ws();
            if !c.done() {
                return Err("text after the metric type");
            }
            Ok(Line::Type { name, kind })
        }
        _ => Ok(Line::Nothing),
    }
}

fn sample(mut c: Cursor<'_>, openmetrics: bool) -> Result<Line<'_>, Problem> {
    let name = c.metric_name().ok_or("invalid metric name")?;
    let mut spaced = c.skip_ws();
    let labels = if c.peek() == Some(b'{') {
        c.at += 1;
        let labels = label_set(&mut c, openmetrics)?;
        spaced = c.skip_ws();
        labels
    } else {
        Vec::new()
    };
    if !spaced || c.done() {
        return Err("no value after the metric name and labels");
    }
    let value = number(c.token()).ok_or("invalid value")?;
    if c.skip_ws() && !c.done() && c.peek() != Some(b'#') {
        let ts = c.token();
        let ok = if openmetrics {
            number(ts).is_some_and(f64::is_finite)
        } else {
            ts.parse::<i64>().is_ok()
        };
        if !ok {
            return Err("invalid timestamp");
        }
        c.skip_ws();
    }
    if openmetrics && c.peek() == Some(b'#') {
        exemplar(&mut c)?;
    }
    if !c.done() {
        return Err("text after the sample");
    }
    Ok(Line::Sample {
        name,
        labels,
        value,
    })
}

/// OpenMetrics' ` # {labels} value [timestamp]` after a sample: checked, then dropped.
fn exemplar(c: &mut Cursor<'_>) -> Result<(), Problem> {
    c.at += 1;
    c.skip_ws();
    if c.peek() != Some(b'{') {
        return Err("invalid exemplar");
    }
    c.at += 1;
    label_set(c, true)?;
    if !c.skip_ws() || number(c.token()).is_none() {
        return Err("invalid exemplar value");
    }
    if c.skip_ws() && !c.done() {
        number(c.token()).ok_or("invalid exemplar timestamp")?;
        c.skip_ws();
    }
    Ok(())
}

/// The pairs after `{`, up to and past `}`.
fn label_set<'a>(c: &mut Cursor<'a>, openmetrics: bool) -> Result<Labels<'a>, Problem> {
    let mut labels: Labels<'a> = Vec::new();
    loop {
        c.skip_ws();
        if c.peek() == Some(b'}') {
            c.at += 1;
            return Ok(labels);
        }
        let name = c.label_name().ok_or("invalid label name")?;
        c.skip_ws();
        if c.peek() != Some(b'=') {
            return Err("no = after a label name");
        }
        c.at += 1;
        c.skip_ws();
        if c.peek() != Some(b'"') {
            return Err("a label value is not quoted");
        }
        c.at += 1;
        let value = c.quoted(openmetrics)?;
        if labels.iter().any(|(n, _)| *n == name) {
            return Err("a label name repeated in one sample");
        }
        labels.push((name, value));
        c.skip_ws();
        match c.peek() {
            Some(b',') => c.at += 1,
            Some(b'}') => {}
            _ => return Err("no , or } after a label value"),
        }
    }
}

/// A sample value, bound or timestamp as Go's ParseFloat reads it (NaN, Inf, +Inf, -Inf included).
pub fn number(s: &str) -> Option<f64> {
    // Rust's parser takes "inf", "infinity" and "nan" in any case, as Go's does; it also takes
    // forms Go does not (none that a correct exposition holds), which is harmless here.
    if s.is_empty() || s.len() > 64 {
        return None;
    }
    s.parse().ok()
}

/// `\\`, `\n` (and in OpenMetrics or label values, `\"`) replaced; other escapes kept as they are,
/// as Prometheus does.
fn unescape(s: &str, openmetrics: bool, quoted: bool) -> Result<Cow<'_, str>, Problem> {
    if !s.contains('\\') {
        return Ok(Cow::Borrowed(s));
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(ch) = chars.next() {
        if ch != '\\' {
            out.push(ch);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('"') if openmetrics || quoted => out.push('"'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    Ok(Cow::Owned(out))
}

struct Cursor<'a> {
    s: &'a str,
    at: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.at).copied()
    }

    fn done(&self) -> bool {
        self.at >= self.s.len()
    }

    fn rest(&self) -> &'a str {
        &self.s[self.at..]
    }

    /// Skips spaces and tabs; whether there were any.
    fn skip_ws(&mut self) -> bool {
        let start = self.at;
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.at += 1;
        }
        self.at > start
    }

    /// Up to the next space, tab or end.
    fn token(&mut self) -> &'a str {
        let start = self.at;
        while !matches!(self.peek(), None | Some(b' ' | b'\t')) {
            self.at += 1;
        }
        &self.s[start..self.at]
    }

    fn name(&mut self, colon: bool) -> Option<&'a str> {
        let start = self.at;
        while let Some(b) = self.peek() {
            let ok = b.is_ascii_alphabetic()
                || b == b'_'
                || (colon && b == b':')
                || (self.at > start && b.is_ascii_digit());
            if !ok {
                break;
            }
            self.at += 1;
        }
        (self.at > start).then(|| &self.s[start..self.at])
    }

    fn metric_name(&mut self) -> Option<&'a str> {
        self.name(true)
    }

    fn label_name(&mut self) -> Option<&'a str> {
        self.name(false)
    }

    /// A label value after its opening quote, up to and past the closing one.
    fn quoted(&mut self, openmetrics: bool) -> Result<Cow<'a, str>, Problem> {
        let start = self.at;
        let bytes = self.s.as_bytes();
        loop {
            match bytes.get(self.at) {
                None => return Err("a label value is not closed"),
                Some(b'\\') => self.at += 2,
                Some(b'"') => break,
                Some(_) => self.at += 1,
            }
        }
        // Escapes are ASCII, so `start..at` falls on character boundaries.
        let raw = &self.s[start..self.at];
        self.at += 1;
        unescape(raw, openmetrics, true)
    }
}

#[cfg(test)]
mod tests;
