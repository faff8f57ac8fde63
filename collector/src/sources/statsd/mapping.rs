//! The mapping file: StatsD names into Prometheus names and labels, in the spirit of statsd_exporter's
//! mapping config so that users moving from it can keep theirs.
//!
//! ```yaml
//! defaults:
//!   ttl: 10m
//!   histogram_options: { buckets: [0.01, 0.1, 1] }
//! mappings:
//!   - match: "api.*.requests"          # glob: `*` matches within one dot-separated segment
//!     name: "api_requests"             # `_total` is added for counters
//!     labels: { service: "$1" }
//!   - match: "^db\\.(\\w+)\\.time$"
//!     match_type: regex
//!     name: "db_query"
//!     labels: { table: "${1}" }
//!     histogram_options: { buckets: [0.001, 0.01, 0.1] }
//!   - match: "debug.*"
//!     action: drop
//! ```
//! The first mapping that matches wins (file order). Parsing is strict: every unknown field, bad value
//! and invalid name is reported at once as `file:line:col: message`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::yaml::{self, scalar_text, Decoder, Node, SourceErrors};

use super::parse::Kind;

/// A loaded, validated mapping file.
#[derive(Debug, Default)]
pub struct Mapper {
    pub defaults: Defaults,
    rules: Vec<Rule>,
}

/// The file's `defaults:`, overriding the receiver's settings for every metric.
#[derive(Debug, Default, Clone)]
pub struct Defaults {
    pub ttl: Option<Duration>,
    pub buckets: Option<Arc<[f64]>>,
}

/// Which StatsD types a mapping applies to (`match_metric_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeFilter {
    Counter,
    Gauge,
    /// Timers, histograms and distributions.
    Observer,
}

impl TypeFilter {
    fn accepts(self, kind: Kind) -> bool {
        match self {
            TypeFilter::Counter => kind == Kind::Counter,
            TypeFilter::Gauge => kind == Kind::Gauge || kind == Kind::Set,
            TypeFilter::Observer => kind.is_observer(),
        }
    }
}

/// One entry of `mappings:`.
#[derive(Debug)]
pub struct Rule {
    matcher: Matcher,
    type_filter: Option<TypeFilter>,
    drop: bool,
    name: Template,
    labels: Vec<(String, Template)>,
    /// Tags win over the mapping's labels of the same name (statsd_exporter's `honor_labels`).
    pub honor_labels: bool,
    pub ttl: Option<Duration>,
    pub buckets: Option<Arc<[f64]>>,
    pub help: Option<Arc<str>>,
    /// Every value is multiplied by it (e.g. 0.001 for a histogram sent in bytes, shown in kB).
    pub scale: Option<f64>,
}

#[derive(Debug)]
enum Matcher {
    Glob(Vec<Vec<Piece>>),
    Regex(regex::Regex),
}

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Lit(String),
    Star,
}

/// A name or label value with `$N` / `${N}` references to the match's captures (`$0`: the whole name).
#[derive(Debug, Default, Clone, PartialEq)]
struct Template(Vec<TPart>);

#[derive(Debug, Clone, PartialEq)]
enum TPart {
    Lit(String),
    Cap(usize),
}

impl Template {
    fn expand(&self, name: &str, caps: &[(usize, usize)], out: &mut String) {
        for p in &self.0 {
            match p {
                TPart::Lit(s) => out.push_str(s),
                TPart::Cap(0) => out.push_str(name),
                TPart::Cap(i) => {
                    if let Some(&(a, b)) = caps.get(i - 1) {
                        out.push_str(&name[a..b]);
                    }
                }
            }
        }
    }

    fn max_ref(&self) -> usize {
        self.0
            .iter()
            .map(|p| match p {
                TPart::Cap(i) => *i,
                TPart::Lit(_) => 0,
            })
            .max()
            .unwrap_or(0)
    }

    fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut rest = text;
        while let Some(i) = rest.find('$') {
            lit.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            let (digits, consumed) = if let Some(inner) = after.strip_prefix('{') {
                let end = inner
                    .find('}')
                    .ok_or_else(|| format!("unclosed `${{` in `{text}`"))?;
                (&inner[..end], end + 2)
            } else {
                let n = after.bytes().take_while(u8::is_ascii_digit).count();
                (&after[..n], n)
            };
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!(
                    "`${digits}` in `{text}`: only numbered references ($1, ${{2}}) are supported"
                ));
            }
            if !lit.is_empty() {
                parts.push(TPart::Lit(std::mem::take(&mut lit)));
            }
            parts.push(TPart::Cap(
                digits
                    .parse()
                    .map_err(|_| format!("reference `${digits}` is too large"))?,
            ));
            rest = &after[consumed..];
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            parts.push(TPart::Lit(lit));
        }
        Ok(Template(parts))
    }
}

/// The result of mapping one StatsD name.
#[derive(Debug, PartialEq)]
pub enum Mapped<'m> {
    /// No mapping matched: the name is escaped by the default rules.
    Unmapped,
    /// A `drop` mapping matched.
    Drop,
    /// `name` is the expanded (not yet escaped) name; `labels` the mapping's labels, expanded.
    Map {
        rule: &'m Rule,
        name: String,
        labels: Vec<(&'m str, String)>,
    },
}

impl PartialEq for Rule {
    fn eq(&self, other: &Rule) -> bool {
        std::ptr::eq(self, other)
    }
}

impl Mapper {
    /// Reads and validates a mapping file.
    pub fn load(path: &Path) -> Result<Mapper, SourceErrors> {
        let source = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| SourceErrors {
            source_name: source.clone(),
            diagnostics: vec![yaml::Diagnostic {
                location: yaml::Location::Position { line: 1, col: 1 },
                message: format!("cannot read the mapping file: {e}"),
            }],
        })?;
        Mapper::parse(&source, &text)
    }

    /// Parses and validates a mapping document; `source_name` is only used in diagnostics.
    pub fn parse(source_name: &str, text: &str) -> Result<Mapper, SourceErrors> {
        let mut d = Decoder::default();
        let mapper = match yaml::load_one(text, "a mapping with `mappings:`") {
            Ok(doc) => mapper(&mut d, &doc),
            Err(diag) => {
                d.diags.push(diag);
                None
            }
        };
        d.finish(source_name, mapper)
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Maps one StatsD name of type `kind`. `caps` is scratch space, reused across calls.
    pub fn map(&self, name: &str, kind: Kind, caps: &mut Vec<(usize, usize)>) -> Mapped<'_> {
        for rule in &self.rules {
            if rule.type_filter.is_some_and(|f| !f.accepts(kind)) {
                continue;
            }
            caps.clear();
            let matched = match &rule.matcher {
                Matcher::Glob(segments) => glob_match(segments, name, caps),
                Matcher::Regex(re) => match re.captures(name) {
                    Some(c) => {
                        caps.extend(
                            c.iter()
                                .skip(1)
                                .map(|m| m.map_or((0, 0), |m| (m.start(), m.end()))),
                        );
                        true
                    }
                    None => false,
                },
            };
            if !matched {
                continue;
            }
            if rule.drop {
                return Mapped::Drop;
            }
            let mut out = String::new();
            rule.name.expand(name, caps, &mut out);
            let labels = rule
                .labels
                .iter()
                .map(|(k, t)| {
                    let mut v = String::new();
                    t.expand(name, caps, &mut v);
                    (k.as_str(), v)
                })
                .collect();
            return Mapped::Map {
                rule,
                name: out,
                labels,
            };
        }
        Mapped::Unmapped
    }
}

/// Matches `name` segment by segment; each `*` captures one or more characters of its segment.
fn glob_match(segments: &[Vec<Piece>], name: &str, caps: &mut Vec<(usize, usize)>) -> bool {
    let mut start = 0;
    let mut parts = name.split('.');
    for seg in segments {
        let Some(part) = parts.next() else {
            return false;
        };
        if !match_segment(seg, part, start, caps) {
            return false;
        }
        start += part.len() + 1;
    }
    parts.next().is_none()
}

fn match_segment(
    pieces: &[Piece],
    text: &str,
    offset: usize,
    caps: &mut Vec<(usize, usize)>,
) -> bool {
    match pieces.split_first() {
        None => text.is_empty(),
        Some((Piece::Lit(l), rest)) => {
            text.starts_with(l.as_str())
                && match_segment(rest, &text[l.len()..], offset + l.len(), caps)
        }
        Some((Piece::Star, rest)) => {
            // Shortest first, as statsd_exporter's matcher does for partial segments.
            let ends = text.char_indices().map(|(i, c)| i + c.len_utf8());
            for end in ends {
                let mark = caps.len();
                caps.push((offset, offset + end));
                if match_segment(rest, &text[end..], offset + end, caps) {
                    return true;
                }
                caps.truncate(mark);
            }
            false
        }
    }
}

fn parse_glob(pattern: &str) -> Result<Vec<Vec<Piece>>, String> {
    pattern
        .split('.')
        .map(|seg| {
            if seg.is_empty() {
                return Err(format!("`{pattern}`: empty segment"));
            }
            let mut pieces = Vec::new();
            for (i, lit) in seg.split('*').enumerate() {
                if i > 0 {
                    if pieces.last() == Some(&Piece::Star) {
                        return Err(format!("`{pattern}`: `**` is not supported"));
                    }
                    pieces.push(Piece::Star);
                }
                if let Some(c) = lit
                    .chars()
                    .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
                {
                    return Err(format!(
                        "`{pattern}`: `{c}` cannot appear in a glob (letters, digits, `_`, `-`, `*` and `.`)"
                    ));
                }
                if !lit.is_empty() {
                    pieces.push(Piece::Lit(lit.to_string()));
                }
            }
            Ok(pieces)
        })
        .collect()
}

fn mapper(d: &mut Decoder, node: &Node) -> Option<Mapper> {
    let f = d.mapping(node, "mapping file", &["defaults", "mappings"])?;
    let defaults = match f.get("defaults") {
        Some(n) => defaults(d, n),
        None => Some(Defaults::default()),
    };
    let rules = match f.get("mappings") {
        Some(n) => {
            let items = d.sequence(n, "mappings")?;
            let parsed: Vec<_> = items.iter().map(|item| rule(d, item)).collect();
            parsed.into_iter().collect::<Option<Vec<_>>>()
        }
        None => Some(Vec::new()),
    };
    Some(Mapper {
        defaults: defaults?,
        rules: rules?,
    })
}

fn defaults(d: &mut Decoder, node: &Node) -> Option<Defaults> {
    let f = d.mapping(
        node,
        "defaults",
        &[
            "ttl",
            "match_type",
            "observer_type",
            "timer_type",
            "histogram_options",
        ],
    )?;
    let ttl = match f.get("ttl") {
        Some(n) => d.duration(n, "defaults.ttl", true).map(Some),
        None => Some(None),
    };
    if let Some(n) = f.get("match_type") {
        // A default other than glob would change how every `match` below is read; keep files explicit.
        if scalar_text(n).as_deref() != Some("glob") {
            d.error(n, "defaults.match_type: only `glob` can be the default; set `match_type: regex` on each regex mapping");
        }
    }
    for key in ["observer_type", "timer_type"] {
        if let Some(n) = f.get(key) {
            observer_type(d, n, &format!("defaults.{key}"));
        }
    }
    let buckets = match f.get("histogram_options") {
        Some(n) => histogram_options(d, n, "defaults.histogram_options"),
        None => Some(None),
    };
    Some(Defaults {
        ttl: ttl?,
        buckets: buckets?,
    })
}

fn observer_type(d: &mut Decoder, node: &Node, what: &str) {
    match scalar_text(node).as_deref() {
        Some("histogram") => {}
        Some("summary") => d.error(
            node,
            format!("{what}: summaries are not produced; timers are histograms (set histogram_options.buckets)"),
        ),
        _ => d.error(node, format!("{what}: expected `histogram`")),
    }
}

fn histogram_options(d: &mut Decoder, node: &Node, what: &str) -> Option<Option<Arc<[f64]>>> {
    let f = d.mapping(node, what, &["buckets"])?;
    match f.get("buckets") {
        Some(n) => d
            .increasing_numbers(n, &format!("{what}.buckets"))
            .map(|b| Some(b.into())),
        None => Some(None),
    }
}

fn rule(d: &mut Decoder, node: &Node) -> Option<Rule> {
    const FIELDS: &[&str] = &[
        "match",
        "name",
        "labels",
        "match_type",
        "match_metric_type",
        "action",
        "honor_labels",
        "ttl",
        "help",
        "observer_type",
        "timer_type",
        "histogram_options",
        "scale",
    ];
    let f = d.mapping(node, "mapping", FIELDS)?;
    let regex = match f.get("match_type") {
        Some(n) => match scalar_text(n).as_deref() {
            Some("glob") => Some(false),
            Some("regex") => Some(true),
            _ => {
                d.error(n, "match_type: expected glob or regex");
                None
            }
        },
        None => Some(false),
    };
    let match_node = d.required(&f, "match", "mapping");
    let pattern = match_node.and_then(|n| d.string(n, "match"));
    let matcher = match (regex, pattern, match_node) {
        (Some(false), Some(p), Some(n)) => match parse_glob(&p) {
            Ok(g) => Some(Matcher::Glob(g)),
            Err(e) => {
                d.error(n, format!("match: {e}"));
                None
            }
        },
        (Some(true), Some(p), Some(n)) => match regex::Regex::new(&p) {
            Ok(re) => Some(Matcher::Regex(re)),
            Err(e) => {
                // The regex crate draws a multi-line caret diagram; its last line says what is wrong.
                let text = e.to_string();
                let why = text
                    .lines()
                    .last()
                    .unwrap_or_default()
                    .trim_start_matches("error: ");
                d.error(n, format!("match: invalid regex `{p}`: {why}"));
                None
            }
        },
        _ => None,
    };
    let captures = match &matcher {
        Some(Matcher::Glob(g)) => Some(g.iter().flatten().filter(|p| **p == Piece::Star).count()),
        Some(Matcher::Regex(re)) => Some(re.captures_len() - 1),
        None => None,
    };
    let drop = match f.get("action") {
        Some(n) => match scalar_text(n).as_deref() {
            Some("map") => Some(false),
            Some("drop") => Some(true),
            _ => {
                d.error(n, "action: expected map or drop");
                None
            }
        },
        None => Some(false),
    };
    let type_filter = match f.get("match_metric_type") {
        Some(n) => match scalar_text(n).as_deref() {
            Some("counter") => Some(Some(TypeFilter::Counter)),
            Some("gauge") => Some(Some(TypeFilter::Gauge)),
            Some("observer" | "timer" | "histogram" | "distribution") => {
                Some(Some(TypeFilter::Observer))
            }
            _ => {
                d.error(n, "match_metric_type: expected counter, gauge or observer");
                None
            }
        },
        None => Some(None),
    };
    let check_refs = |d: &mut Decoder, t: &Template, n: &Node, what: &str| {
        if let Some(caps) = captures {
            if t.max_ref() > caps {
                d.error(
                    n,
                    format!(
                        "{what}: refers to ${} but the match has {caps} capture(s)",
                        t.max_ref()
                    ),
                );
            }
        }
    };
    let name = match (drop, f.get("name")) {
        (Some(true), None) => Some(Template::default()),
        (_, None) => {
            d.error(node, "mapping: missing field `name`");
            None
        }
        (_, Some(n)) => d
            .string(n, "name")
            .and_then(|text| match Template::parse(&text) {
                Ok(t) => {
                    if let Some(bad) = t.0.iter().find_map(|p| match p {
                        TPart::Lit(s) => s
                            .chars()
                            .find(|c| !(c.is_ascii_alphanumeric() || *c == '_')),
                        TPart::Cap(_) => None,
                    }) {
                        d.error(n, format!("name: `{bad}` cannot appear in a metric name"));
                        return None;
                    }
                    check_refs(d, &t, n, "name");
                    Some(t)
                }
                Err(e) => {
                    d.error(n, format!("name: {e}"));
                    None
                }
            }),
    };
    let labels = match f.get("labels") {
        Some(n) => {
            let entries = d.string_map(n, "labels")?;
            let mut out = Vec::with_capacity(entries.len());
            let mut ok = true;
            for (key, knode, vnode) in entries {
                if crate::store::check_label_name(&key).is_err() {
                    d.error(knode, format!("labels: `{key}` is not a valid label name"));
                    ok = false;
                    continue;
                }
                match d
                    .scalar_string(vnode, &format!("labels.{key}"))
                    .map(|v| Template::parse(&v))
                {
                    Some(Ok(t)) => {
                        check_refs(d, &t, vnode, &format!("labels.{key}"));
                        out.push((key, t));
                    }
                    Some(Err(e)) => {
                        d.error(vnode, format!("labels.{key}: {e}"));
                        ok = false;
                    }
                    None => ok = false,
                }
            }
            ok.then_some(out)
        }
        None => Some(Vec::new()),
    };
    let honor_labels = match f.get("honor_labels") {
        Some(n) => d.boolean(n, "honor_labels"),
        None => Some(false),
    };
    let ttl = match f.get("ttl") {
        Some(n) => d.duration(n, "ttl", true).map(Some),
        None => Some(None),
    };
    let help = match f.get("help") {
        Some(n) => d.string(n, "help").map(|h| Some(Arc::from(h))),
        None => Some(None),
    };
    for key in ["observer_type", "timer_type"] {
        if let Some(n) = f.get(key) {
            observer_type(d, n, key);
        }
    }
    let buckets = match f.get("histogram_options") {
        Some(n) => histogram_options(d, n, "histogram_options"),
        None => Some(None),
    };
    let scale = match f.get("scale") {
        Some(n) => d.positive_number(n, "scale").map(Some),
        None => Some(None),
    };
    Some(Rule {
        matcher: matcher?,
        type_filter: type_filter?,
        drop: drop?,
        name: name?,
        labels: labels?,
        honor_labels: honor_labels?,
        ttl: ttl?,
        buckets: buckets?,
        help: help?,
        scale: scale?,
    })
}

#[cfg(test)]
mod tests;
